"""Hardware facts the engine records: physical cores, GPU support, llama.cpp version."""

from __future__ import annotations

import os

from auditdesk.core.engine.hardware import default_threads, gpu_offload_supported, llama_cpp_version, physical_cores


def test_physical_cores_is_within_what_the_process_may_use():
    cores = physical_cores()
    assert 1 <= cores <= len(os.sched_getaffinity(0))


def test_default_threads_is_never_llama_cpps_default_of_one_on_a_multicore_machine():
    assert default_threads(None) == physical_cores()
    assert default_threads(3) == 3


def test_version_and_gpu_flag_come_from_the_installed_library():
    import llama_cpp

    assert llama_cpp.__version__ in llama_cpp_version()
    assert gpu_offload_supported() == bool(llama_cpp.llama_supports_gpu_offload())
