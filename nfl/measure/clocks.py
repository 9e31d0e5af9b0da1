"""Which clock a measurement uses, and the conditions every timed region runs under.

Clocks (every number records which one it is):

* ``thread_cpu`` -- the calling thread's CPU time (``time.thread_time``), on the CPU with one torch
  thread. Time the thread spends waiting while other processes hold the cores is not counted, so
  a busy machine cannot inflate it the way it inflates wall time. With one intra-op thread torch
  runs the forward, the backward (the CPU autograd engine works on the calling thread) and Adam on
  that thread, so its CPU time is the step's.
* ``wall`` -- ``time.perf_counter``: the CPU with several threads, whose work the caller's CPU
  time would miss.
* ``cuda_events`` -- CUDA event pairs with the device synchronised before and after.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

from nfl.measure.devices import DeviceLike, accelerator_for, synchronize

CLOCK_LABELS = {"thread_cpu": "thread CPU time", "wall": "wall time", "cuda_events": "CUDA events"}


def clock_for(device: DeviceLike, num_threads: int) -> str:
    """The clock a measurement on ``device`` with ``num_threads`` CPU threads uses."""
    if accelerator_for(device) is not None:
        return "cuda_events"
    return "thread_cpu" if num_threads == 1 else "wall"


def wall_seconds(fn: Callable[[], Any], device: DeviceLike = "cpu") -> float:
    """Wall seconds of one ``fn()`` on ``device``, its queued work included (synchronised before and
    after): for estimates and whole-program benchmarks, where the wall time is what a user waits."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch's intra-op thread count set to ``n`` for the block, restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def paused_gc() -> Iterator[None]:
    """The garbage collector paused, as ``timeit`` does, so a collection never lands in a timing."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
