"""A study process's memory policy: glibc's malloc keeps freed memory for the next tensor instead of handing
it back to the OS, and Python's cyclic collector leaves alone what lives as long as the process.

Torch's CPU tensors come from malloc. glibc serves a request above its mmap threshold with a fresh
mapping and gives free memory at the top of its heap back to the OS once it exceeds the trim
threshold; both thresholds start at 128 KiB and grow with the largest mapped block freed, the trim
one to twice it. The batched engine allocates and frees buffers of a few MB every step (K = 70 runs
x 200 evaluation rows x width 64: 3.6 MB each), more than twice the largest block at a time, so the
heap is trimmed after a step and the next step's pages are faulted in and zeroed by the kernel
again. Measured, 11 methods x 70 runs x 100 steps batched (one thread, 2-core AMD EPYC, load 2,
2026-12-05): 13.1 s of CPU with glibc's defaults, 10.3 s with these thresholds; an evaluation of 70
runs went from 6.5-8.4 ms to 4.0-4.4 ms. The thresholds are glibc's own upper bound for the mmap
one (32 MiB on 64-bit) and twice it for the trim one, what the adaptive rule would reach: a study
keeps at most that much freed memory for reuse. Set once a process, before any work, so that every
measurement of a run (quality or timing) is made under the same allocator settings, whatever ran
before it in the process; records name them (``nfl.results.environment``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import sys

MMAP_THRESHOLD = 32 * 1024**2  # glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (malloc.h)
_set: str | None = None  # what keep_freed_memory set in this process


def keep_freed_memory() -> str | None:
    """Set the thresholds where the C library is glibc; what was set, in words, or None where nothing
    was (another libc or platform: its allocator keeps its own policy)."""
    global _set
    if _set is None:
        _set = _set_thresholds()
    return _set


def settings() -> str | None:
    """The thresholds this process runs under, if :func:`keep_freed_memory` set them (None: the C
    library's own policy)."""
    return _set


def _set_thresholds() -> str | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        version = libc.gnu_get_libc_version
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no gnu_get_libc_version)
        return None
    version.restype = ctypes.c_char_p
    if not (mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)):
        return None
    mib = 1024**2
    return (f"glibc {version().decode()} malloc: mmap threshold {MMAP_THRESHOLD // mib} MiB, "
            f"trim threshold {TRIM_THRESHOLD // mib} MiB")


def exempt_from_collection() -> None:
    """Every object alive now out of reach of the cyclic collector's passes (``gc.freeze``): the modules,
    classes and functions a study imports (torch, its compiler, matplotlib: about 300,000 objects) live
    until the process exits, and each full collection -- one at the interpreter's exit among them --
    walks them all again. Measured, ``python -m studies.pareto --quick --threads 1`` (2-core AMD EPYC,
    load 3-3.5, 2026-12-05): 0.97 s of its 10 s CPU in the collector; frozen after start-up, 0.47 s;
    also after each quality sweep (its records, and torch's compiler, which the first Adam step
    imports), 0.31 s. Objects made later are collected as before; timed blocks run with the collector
    paused either way (``nfl.measure.clocks.paused_gc``)."""
    gc.freeze()
