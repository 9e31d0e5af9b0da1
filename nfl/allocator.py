"""glibc's malloc told to keep freed memory for the next tensor instead of handing it back to the OS.

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
