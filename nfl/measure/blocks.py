"""A block timer: the primitive every timing study is made of.

:class:`BlockTimer` times one block of calls whenever it is called, on the primary clock
(:mod:`nfl.measure.clocks`) and on the wall clock at once. Studies call one per (method, rank)
cell in interleaved rounds (:mod:`nfl.measure.rounds`), so that a burst of load lands on every
cell alike. The CUDA logic talks to a :class:`~nfl.measure.devices.Clock`, so a test drives it
with a fake device.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from nfl.measure.clocks import clock_for, paused_gc, torch_threads
from nfl.measure.devices import DeviceLike, accelerator_for
from nfl.measure.policy import BLOCK_S, CALIBRATION_MARGIN, REPEATS, WARMUP


class BlockTimer:
    """Times blocks of ``calls`` calls of ``fn``; each call of the timer returns the fastest of
    ``repeats`` blocks.

    At construction: ``warmup`` calls, each timed alone but kept out of every result (past Adam's
    lazy state, the first BLAS or cuSOLVER call). The block starts at the calls that the fastest of
    them says take ``CALIBRATION_MARGIN`` times ``target_s`` and is doubled until it takes at least
    ``target_s`` on the primary clock, so that even a 0.1 ms call is timed well above the clock's
    resolution (``timeit``'s autorange grows its loop the same way), then trimmed to the calls that
    take ``CALIBRATION_MARGIN`` times the target at the rate measured.
    Each call of the timer makes one unmeasured call, to start warm, then times ``repeats`` blocks
    and returns the fastest: seconds per call on the primary clock and on the wall clock, the
    block size and the repeats. The garbage collector is paused inside a block.

    Why the fastest: on a loaded machine a block is either run through or cut by the scheduler,
    and a cut one runs on cold caches afterwards, which even the thread's CPU time counts. Load
    only ever adds time, so the fastest of a few short blocks is the step's cost (as ``timeit``
    advises); the rounds' median and quartiles of these then vary with the load that remains.
    """

    def __init__(
        self, fn: Callable[[], Any], device: DeviceLike, num_threads: int, *, warmup: int = WARMUP,
        target_s: float = BLOCK_S, max_calls: int = 4096, repeats: int = REPEATS,
    ):
        if repeats < 1:
            raise ValueError(f"repeats must be >= 1, got {repeats}")
        self.fn, self.num_threads, self.repeats = fn, num_threads, repeats
        self.accelerator = accelerator_for(device)
        self.clock = clock_for(device, num_threads)
        with torch_threads(num_threads):
            warm = min((self._block(1)[0] for _ in range(warmup)), default=0.0)
            self.calls = max(1, min(max_calls, math.ceil(CALIBRATION_MARGIN * target_s / warm))) if warm > 0 else 1
            while self.calls < max_calls:
                seconds = self._block(self.calls)[0]
                if seconds >= target_s:
                    if seconds > 0:
                        trimmed = math.ceil(CALIBRATION_MARGIN * target_s * self.calls / seconds)
                        self.calls = max(1, min(self.calls, trimmed))
                    break
                self.calls *= 2

    def __call__(self) -> dict[str, Any]:
        with torch_threads(self.num_threads):
            # Unmeasured: in a round the other cells ran in between and evicted this one's caches; a
            # cold first call would weigh 1/calls of the block, biasing cells by their block size.
            self.fn()
            seconds, wall = min(self._block(self.calls) for _ in range(self.repeats))
        return {"clock": self.clock, "seconds": seconds / self.calls, "wall_s": wall / self.calls, "calls": self.calls,
                "repeats": self.repeats}

    def _block(self, calls: int) -> tuple[float, float]:
        """Total seconds of ``calls`` calls on the primary clock and on the wall clock."""
        fn = self.fn
        with paused_gc():
            if self.accelerator is not None:
                start, end = self.accelerator.event(), self.accelerator.event()
                self.accelerator.synchronize()
                wall = time.perf_counter()
                start.record()
                for _ in range(calls):
                    fn()
                end.record()
                self.accelerator.synchronize()
                return start.elapsed_time(end) / 1e3, time.perf_counter() - wall
            cpu, wall = time.thread_time(), time.perf_counter()
            for _ in range(calls):
                fn()
            wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
        return (cpu if self.clock == "thread_cpu" else wall), wall
