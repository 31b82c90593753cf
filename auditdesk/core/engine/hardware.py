"""What the machine offers the engine: physical cores, GPU offload, llama.cpp version.

Used to pick defaults (threads = physical cores, never llama.cpp's one-thread
default) and to record what a run actually used. Must never import llama_cpp at
module level, and never guess a GPU exists: ask the installed library.
"""

from __future__ import annotations

import os
from functools import lru_cache


@lru_cache(maxsize=1)
def physical_cores() -> int:
    """Physical CPU cores this process may use (hyper-threads counted once)."""
    try:
        allowed = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        allowed = os.cpu_count() or 1
    cores = _physical_cores_from_cpuinfo()
    if cores is None:
        return max(1, allowed)
    # A container may pin us to fewer CPUs than the machine has.
    return max(1, min(cores, allowed))


@lru_cache(maxsize=1)
def _cpuinfo_text() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            return handle.read(4_000_000)
    except OSError:
        return None


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is no such file)."""
    for line in (_cpuinfo_text() or "").splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bfloat16 natively (AVX512-BF16 or AMX)."""
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def llama_extra_buffers_allowed() -> bool:
    """Whether llama.cpp may put weights in its extra CPU buffer types (AMX tiles, repacked blocks).

    On a CPU with AMX, llama.cpp's AMX matrix kernel (llama-cpp-python 0.3.36, built
    for the machine) stops the process with a general protection fault at the first
    answer of the bundled Gemma 3 270M (seen 2026-12-01 on an Intel Xeon with
    amx_int8; CPUs without AMX were never affected). Without the extra buffers
    llama.cpp uses its ordinary AVX-512 kernels. AUDITDESK_LLAMA_EXTRA_BUFFERS=1 (or 0)
    overrides the choice.
    """
    forced = os.environ.get("AUDITDESK_LLAMA_EXTRA_BUFFERS", "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    return not (cpu_flags() & {"amx_tile", "amx_int8"})


def available_memory_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (None where there is no such file)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def _physical_cores_from_cpuinfo() -> int | None:
    text = _cpuinfo_text()
    if text is None:
        return None
    pairs: set[tuple[str, str]] = set()
    physical_id = core_id = None
    for line in text.splitlines() + [""]:
        if not line.strip():
            if core_id is not None:
                pairs.add((physical_id or "0", core_id))
            physical_id = core_id = None
            continue
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "physical id":
            physical_id = value.strip()
        elif key == "core id":
            core_id = value.strip()
    return len(pairs) or None


def default_threads(requested: int | None) -> int:
    """Threads to give llama.cpp: the user's choice, else the physical cores."""
    if requested is not None and requested > 0:
        return requested
    return physical_cores()


def gpu_offload_supported() -> bool:
    """Whether the installed llama.cpp build can put layers on a GPU."""
    import llama_cpp

    return bool(llama_cpp.llama_supports_gpu_offload())


def llama_cpp_version() -> str:
    """The llama-cpp-python version and, when it tells us, the llama.cpp build."""
    import llama_cpp

    version = f"llama-cpp-python {getattr(llama_cpp, '__version__', '?')}"
    try:
        info = llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip()
    except Exception:  # an old build without it is still usable
        info = ""
    return f"{version} ({info})" if info else version
