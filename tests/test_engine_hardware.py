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


def test_llama_extra_buffers_are_left_unused_on_a_cpu_with_amx(monkeypatch):
    """llama.cpp's AMX kernel crashes the 270M worker on AMX CPUs; elsewhere the extra buffers stay on."""
    from auditdesk.core.engine import hardware

    monkeypatch.delenv("AUDITDESK_LLAMA_EXTRA_BUFFERS", raising=False)
    monkeypatch.setattr(hardware, "cpu_flags", lambda: {"avx2", "avx512f", "amx_tile", "amx_int8"})
    assert not hardware.llama_extra_buffers_allowed()
    monkeypatch.setattr(hardware, "cpu_flags", lambda: {"avx2", "fma", "f16c"})
    assert hardware.llama_extra_buffers_allowed()
    monkeypatch.setenv("AUDITDESK_LLAMA_EXTRA_BUFFERS", "0")
    assert not hardware.llama_extra_buffers_allowed()


def test_cpu_flags_are_read_from_cpuinfo():
    from auditdesk.core.engine.hardware import cpu_flags

    flags = cpu_flags()
    if os.path.exists("/proc/cpuinfo") and os.uname().machine == "x86_64":
        assert "sse2" in flags
