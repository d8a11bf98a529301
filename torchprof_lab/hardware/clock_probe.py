"""The clock a CPU core really runs at, measured: a KVM guest has no cpufreq and its
/proc/cpuinfo 'cpu MHz' is the nominal (TSC) clock, not the turbo clock the cores run at (this
project's AMD EPYC reads 2596 MHz and runs at about 4.3 GHz). A chain of dependent integer adds,
one cycle each on every x86-64 core, timed on one core, gives the clock.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys
import time
import threading

# long chain(long n) { rax = n; do { 96 x "add rax, rax" } while (--rdi); return rax; }
# System V x86-64 ABI (n in rdi). Each add depends on the one before: 1 cycle each on every
# x86-64 core (no core folds a register-register add), so time = 96 n cycles / clock.
_CHAIN_ADDS = 96
_LOOP = bytes((0x48, 0x01, 0xC0)) * _CHAIN_ADDS + bytes((0x48, 0xFF, 0xCF))  # add rax, rax ...; dec rdi
_CHAIN_CODE = (bytes((0xF3, 0x0F, 0x1E, 0xFA))  # endbr64: a valid indirect-call target under CET/IBT
               + bytes((0x48, 0x89, 0xF8))  # mov rax, rdi
               + _LOOP + bytes((0x0F, 0x85)) + (-(len(_LOOP) + 6)).to_bytes(4, "little", signed=True)  # jnz
               + bytes((0xC3,)))  # ret


def _probe(runs: int, iterations: int = 50_000) -> float | None:
    """The clock one core runs at now, in MHz: a chain of dependent adds (1 cycle each) timed.

    The highest of ``runs`` runs (about 1 ms each at 4 GHz, shorter than a scheduler slice, so
    some run whole even on a loaded machine): being descheduled only makes a run slower, never
    faster, so the maximum is the clock. One thread, so it reads the one-core boost,
    at or above the all-core clock: a peak from it is an upper bound. Linux x86-64 only (the code
    is x86 machine code run through ctypes, in a page made executable after it is written, never
    both, starting with endbr64 for CET); None elsewhere, in a 32-bit Python, where the system
    refuses executable memory (SELinux execmem), or with TORCHPROF_LAB_NO_CLOCK_PROBE=1 set.
    """
    if (os.environ.get("TORCHPROF_LAB_NO_CLOCK_PROBE") or not sys.platform.startswith("linux")
            or platform.machine().lower() not in ("x86_64", "amd64") or ctypes.sizeof(ctypes.c_void_p) != 8):
        return None  # opted out, or not 64-bit x86 Linux (a 32-bit Python would read the bytes otherwise)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                              ctypes.c_long]
        libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    except (OSError, AttributeError):
        return None
    size = 4096
    prot_read, prot_write, prot_exec, map_private, map_anonymous = 1, 2, 4, 0x02, 0x20
    page = libc.mmap(None, size, prot_read | prot_write, map_private | map_anonymous, -1, 0)
    if page in (None, ctypes.c_void_p(-1).value):
        return None
    try:
        ctypes.memmove(page, _CHAIN_CODE, len(_CHAIN_CODE))
        if libc.mprotect(page, size, prot_read | prot_exec) != 0:
            return None
        chain = ctypes.CFUNCTYPE(ctypes.c_long, ctypes.c_long)(page)
        chain(1000)  # warm-up: page in, wake the core up
        best = 0.0
        for _ in range(runs):
            t0 = time.perf_counter_ns()
            chain(iterations)
            elapsed = time.perf_counter_ns() - t0
            best = max(best, iterations * _CHAIN_ADDS / elapsed * 1e3)  # cycles per ns = GHz -> MHz
        return round(best, 1) or None
    finally:
        libc.munmap(page, size)


_highest: list[float | None] = []  # the highest reading so far, once probed
_lock = threading.Lock()


def measure_core_mhz() -> float | None:
    """The core clock in MHz (``_probe``, 15 runs of about 1 ms), probed once per process; a later
    ``measure_core_mhz_again`` can only raise it."""
    with _lock:
        if not _highest:
            _highest.append(_probe(15))
        return _highest[0]


def measure_core_mhz_again(runs: int = 60) -> float | None:
    """The clock probed once more, with more runs, and the highest reading kept: for a figure that
    passed the peak the first reading allowed (a host that slowed this guest's core while the
    first probe ran reads low, and a low clock is a low peak)."""
    measure_core_mhz()  # the first reading exists before a second is compared with it
    again = _probe(runs)
    with _lock:  # the highest now, which another thread may have raised meanwhile
        _highest[0] = max((r for r in (_highest[0], again) if r), default=None)
        return _highest[0]
