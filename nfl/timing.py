"""One timing API: which clock, and two ways to use it.

Clocks (every number records which one it is):

* ``thread_cpu`` -- the calling thread's CPU time (``time.thread_time``), on the CPU with one torch
  thread. Time the thread spends waiting while other processes hold the cores is not counted, so
  a busy machine cannot inflate it the way it inflates wall time. With one intra-op thread torch
  runs the forward, the backward (the CPU autograd engine works on the calling thread) and Adam on
  that thread, so its CPU time is the step's.
* ``wall`` -- ``time.perf_counter``: the CPU with several threads, whose work the caller's CPU
  time would miss.
* ``cuda_events`` -- CUDA event pairs with the device synchronised before and after.

Two ways to use them:

* :func:`measure` times one callable on its own: on the CPU ``torch.utils.benchmark``'s adaptive
  autorange (with ``timer=time.thread_time`` under one thread), elsewhere a per-call event loop.
* :class:`BlockTimer` times one block of calls whenever it is called, on the primary clock and
  on the wall clock at once. Studies call one per (method, rank) cell in interleaved rounds
  (:mod:`nfl.rounds`), so that a burst of load lands on every cell alike.

The CUDA logic talks to a :class:`~nfl.devices.Clock`, so a test drives it with a fake device.
"""

from __future__ import annotations

import copy
import dataclasses
import gc
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
import torch.utils.benchmark as benchmark
from torch import nn

import adapters as registry
from adapters.base import Adapter
from adapters.step import step as adapter_step
from nfl.config import TrainConfig
from nfl.devices import Clock, DeviceLike, HostClock, accelerator_for, cpu_name
from nfl.memory import measured_peak_bytes
from nfl.params import trainable_parameters
from nfl.tasks import Dataset

CALIBRATION_MARGIN = 1.1  # a calibrated block aims this far above its target, so it stays above it
CLOCK_LABELS = {"thread_cpu": "thread CPU time", "wall": "wall time", "cuda_events": "CUDA events"}


def clock_for(device: DeviceLike, num_threads: int) -> str:
    """The clock a measurement on ``device`` with ``num_threads`` CPU threads uses."""
    if accelerator_for(device) is not None:
        return "cuda_events"
    return "thread_cpu" if num_threads == 1 else "wall"


@dataclass(frozen=True)
class TimingOptions:
    """How hard :func:`measure` measures. ``min_run_time`` / ``max_run_time`` bound the CPU
    autorange (seconds); ``repeats`` is the number of timed calls of the per-call loop (CUDA, or
    CPU with a setup or ``autorange=False``)."""

    min_run_time: float = 0.1
    max_run_time: float = 1.0
    repeats: int = 30
    warmup: int = 3
    num_threads: int | None = None  # None: torch.get_num_threads() when measuring
    autorange: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.min_run_time <= self.max_run_time:
            raise ValueError(
                f"need 0 < min_run_time <= max_run_time, got {self.min_run_time}, {self.max_run_time}"
            )
        if self.repeats < 1 or self.warmup < 0:
            raise ValueError(f"need repeats >= 1 and warmup >= 0, got {self.repeats}, {self.warmup}")
        if self.num_threads is not None and self.num_threads < 1:
            raise ValueError(f"num_threads must be >= 1, got {self.num_threads}")


@dataclass(frozen=True)
class Timing:
    """Median and interquartile range (seconds per call) over ``repeats`` timed repeats, each the
    mean of ``calls_per_repeat`` calls, on ``clock``, and how they were taken."""

    median_s: float
    iqr_s: float
    repeats: int
    calls_per_repeat: int
    backend: str
    num_threads: int
    device_name: str
    clock: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Timing:
        return cls(**data)


def measure(
    fn: Callable[[], Any], device: DeviceLike = "cpu", options: TimingOptions = TimingOptions(),
    setup: Callable[[], Any] | None = None,
) -> Timing:
    """Time ``fn()`` on ``device`` ("cpu", "cuda", a torch.device, or an accelerator object).

    A ``setup``, run before every timed call outside the timed region, makes the CPU use the
    per-call loop (``torch.utils.benchmark`` runs its setup once per block of calls).
    """
    threads = options.num_threads or torch.get_num_threads()
    accelerator = accelerator_for(device)
    with torch_threads(threads):
        if accelerator is None and setup is None and options.autorange:
            return _autorange(fn, options, threads)
        clock: Clock = HostClock() if accelerator is None else accelerator
        times = _event_times(fn, clock, setup, options.warmup, options.repeats)
    median, iqr = median_iqr(times)
    name = "wall" if accelerator is None else "cuda_events"
    return Timing(median, iqr, len(times), 1, clock.backend, threads, clock.name, name)


def median_iqr(times: Sequence[float]) -> tuple[float, float]:
    """Median and interquartile range (linear interpolation, as torch.utils.benchmark's)."""
    p25, p50, p75 = quartiles(times)
    return p50, p75 - p25


def quartiles(times: Sequence[float]) -> tuple[float, float, float]:
    """First quartile, median, third quartile (linear interpolation)."""
    p25, p50, p75 = np.percentile(np.asarray(times, dtype=np.float64), [25, 50, 75])
    return float(p25), float(p50), float(p75)


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
def _no_gc() -> Iterator[None]:
    """The garbage collector paused, as ``timeit`` does, so a collection never lands in a timing."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _autorange(fn: Callable[[], Any], options: TimingOptions, threads: int) -> Timing:
    """The CPU back end: explicit warm-up, then torch.utils.benchmark's adaptive autorange, on the
    thread's CPU time under one thread and on the wall clock under several."""
    for _ in range(options.warmup):
        fn()
    clock = clock_for("cpu", threads)
    timer_fn = time.thread_time if clock == "thread_cpu" else time.perf_counter
    timer = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads, timer=timer_fn)
    m = timer.adaptive_autorange(min_run_time=options.min_run_time, max_run_time=options.max_run_time)
    return Timing(m.median, m.iqr, len(m.times), m.number_per_run, "torch.utils.benchmark", threads, cpu_name(), clock)


def _event_times(
    fn: Callable[[], Any], clock: Clock, setup: Callable[[], Any] | None, warmup: int, repeats: int
) -> list[float]:
    """Seconds of each of ``repeats`` calls, after ``warmup`` unmeasured ones.

    The clock is synchronised before the start event, so no earlier work (warm-up, setup) is
    still queued, and after the end event, so the call's work has finished when it is read.
    """
    for _ in range(warmup):
        if setup is not None:
            setup()
        fn()
    times = []
    for _ in range(repeats):
        if setup is not None:
            setup()
        start, end = clock.event(), clock.event()
        clock.synchronize()
        start.record()
        fn()
        end.record()
        clock.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return times


# --- blocks of calls, for interleaved rounds --------------------------------------------------


class BlockTimer:
    """Times blocks of ``calls`` calls of ``fn``; each call of the timer returns the fastest of
    ``repeats`` blocks.

    At construction: ``warmup`` unmeasured calls (past Adam's lazy state, the first BLAS or
    cuSOLVER call), then the block size is doubled until a block takes at least ``target_s`` on
    the primary clock, so that even a 0.1 ms call is timed well above the clock's resolution, and
    trimmed to the calls that take ``CALIBRATION_MARGIN`` times the target at the rate measured.
    Each call of the timer makes one unmeasured call, to start warm, then times ``repeats`` blocks
    and returns the fastest: seconds per call on the primary clock and on the wall clock, the
    block size and the repeats. The garbage collector is paused inside a block.

    Why the fastest: on a loaded machine a block is either run through or cut by the scheduler,
    and a cut one runs on cold caches afterwards, which even the thread's CPU time counts. Load
    only ever adds time, so the fastest of a few short blocks is the step's cost (as ``timeit``
    advises); the rounds' median and quartiles of these then vary with the load that remains.
    """

    def __init__(
        self, fn: Callable[[], Any], device: DeviceLike, num_threads: int, *, warmup: int = 2,
        target_s: float = 0.01, max_calls: int = 4096, repeats: int = 3,
    ):
        if repeats < 1:
            raise ValueError(f"repeats must be >= 1, got {repeats}")
        self.fn, self.num_threads, self.repeats = fn, num_threads, repeats
        self.accelerator = accelerator_for(device)
        self.clock = clock_for(device, num_threads)
        self.device_name = cpu_name() if self.accelerator is None else self.accelerator.name
        with torch_threads(num_threads):
            for _ in range(warmup):
                fn()
            self.calls = 1
            while self.calls < max_calls:
                seconds = self._block(self.calls)[0]
                if seconds >= target_s:
                    # Doubling overshoots the target by 1.44x on average: trim to 10% above it at the rate seen.
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
        with _no_gc():
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


# --- what the studies time -------------------------------------------------------------------


def prepared_init(
    method: str, layers: nn.Linear | Sequence[nn.Linear], rank: int | None, device: str | torch.device, *,
    seed: int = 0, **hparams: Any,
) -> Callable[[], Any]:
    """``adapters.registry.build_all(method, layers, rank)`` on ``device``, ready to be timed:
    everything the method does before its first step (argument checks, SVDs, random projections,
    shared state).

    The layers are copied to ``device`` once, here. Building never mutates the layers it wraps,
    so every timed call starts from the same fresh layers and needs no per-call setup.
    """
    fresh = [copy.deepcopy(layer).to(device) for layer in ([layers] if isinstance(layers, nn.Linear) else layers)]
    return lambda: registry.build_all(method, fresh, rank, seed=seed, **hparams)


def prepared_train_step(
    model: nn.Module, hooks: Sequence[Adapter], data: Dataset, lr: float, device: str | torch.device, *,
    step: int | None = None, total_steps: int | None = None,
) -> Callable[[], None]:
    """One full optimisation step on ``data`` as the pipeline takes it, ready to be measured.

    Moves ``model`` and the data to ``device``, creates Adam over the trainable parameters and
    takes one step, so Adam's lazily created state exists before anything is measured. Every
    call trains ``model`` in place: pass a copy. ``total_steps`` defaults to the adaptation's
    epochs and ``step`` to its middle: under AdaLoRA's default schedule (budgeting from 10% to
    70% of training) that is a step which updates importance and masks ranks, its costliest kind.
    """
    model.to(device)
    data = data.to(device)
    optimizer = torch.optim.Adam(trainable_parameters(model), lr=lr)
    total_steps = TrainConfig().adapt_epochs if total_steps is None else total_steps
    step = total_steps // 2 if step is None else step

    def one_step() -> None:
        adapter_step(model, optimizer, hooks, F.mse_loss, data.x_train, data.y_train, step, total_steps)

    one_step()
    return one_step


def train_step_peak_bytes(
    model: nn.Module, hooks: Sequence[Adapter], data: Dataset, lr: float, device: str | torch.device, *,
    step: int | None = None, total_steps: int | None = None,
) -> int | None:
    """Measured peak allocated memory of one optimisation step after warm-up (CUDA); None on
    the CPU, where torch has no allocator statistics to read (nothing is run there)."""
    if accelerator_for(device) is None:
        return None
    one_step = prepared_train_step(model, hooks, data, lr, device, step=step, total_steps=total_steps)
    return measured_peak_bytes(one_step, device)
