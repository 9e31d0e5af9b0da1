"""One timing API, two back ends (docs/design.md, "Measurement").

* CPU: ``torch.utils.benchmark.Timer.adaptive_autorange`` -- blocks of calls, at least four of
  them, until the spread settles or the time budget is spent -- with the thread count passed
  explicitly (the Timer's own default is 1) and recorded.
* CUDA: ``torch.cuda.Event`` pairs around each call, the device synchronised before and after,
  after warm-up calls that are not measured.

Both report the median and the interquartile range of their repeats, never a single reading.
The CUDA logic talks to a :class:`~nfl.devices.Clock`, so a test drives it with a fake device.

A ``setup`` callable, run before every timed call and outside the timed region, is for work that
must start from a fresh state each time. ``torch.utils.benchmark`` runs its ``setup`` once per
block (and ``Timer.timeit`` adds unmeasured calls of its own), so on the CPU a ``setup`` switches
to the per-call event loop with the host clock.
"""

from __future__ import annotations

import copy
import dataclasses
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
import torch.utils.benchmark as benchmark
from torch import nn

import adapters as registry
from adapters.base import Adapter
from nfl.config import TrainConfig
from nfl.devices import Clock, DeviceLike, HostClock, accelerator_for, cpu_name
from nfl.memory import measured_peak_bytes
from nfl.params import trainable_parameters
from nfl.tasks import Dataset
from nfl.training import optimisation_step


@dataclass(frozen=True)
class TimingOptions:
    """How hard to measure. ``min_run_time`` / ``max_run_time`` bound the CPU autorange (seconds);
    ``repeats`` is the number of timed calls of the per-call loop (CUDA, or CPU with a setup).
    ``autorange=False`` makes the CPU use the per-call loop with the host clock too: far quicker
    than the autorange (whose block-size estimate alone takes ~0.05 s), noisier for very short
    calls; studies use it for ``--quick``."""

    min_run_time: float = 0.1
    max_run_time: float = 1.0
    repeats: int = 30
    warmup: int = 3
    num_threads: int | None = None  # None: torch.get_num_threads() when measuring
    autorange: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.min_run_time <= self.max_run_time:
            raise ValueError(f"need 0 < min_run_time <= max_run_time, got {self.min_run_time}, {self.max_run_time}")
        if self.repeats < 1 or self.warmup < 0:
            raise ValueError(f"need repeats >= 1 and warmup >= 0, got {self.repeats}, {self.warmup}")
        if self.num_threads is not None and self.num_threads < 1:
            raise ValueError(f"num_threads must be >= 1, got {self.num_threads}")


@dataclass(frozen=True)
class Timing:
    """Median and interquartile range (seconds per call) over ``repeats`` timed repeats, each the
    mean of ``calls_per_repeat`` calls, and how they were taken."""

    median_s: float
    iqr_s: float
    repeats: int
    calls_per_repeat: int
    backend: str
    num_threads: int
    device_name: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Timing:
        return cls(**data)


def measure(fn: Callable[[], Any], device: DeviceLike = "cpu", options: TimingOptions = TimingOptions(), setup: Callable[[], Any] | None = None) -> Timing:
    """Time ``fn()`` on ``device`` ("cpu", "cuda", a torch.device, or an accelerator object)."""
    threads = options.num_threads or torch.get_num_threads()
    accelerator = accelerator_for(device)
    with _torch_threads(threads):
        if accelerator is None and setup is None and options.autorange:
            return _autorange(fn, options, threads)
        clock: Clock = HostClock() if accelerator is None else accelerator
        times = _event_times(fn, clock, setup, options.warmup, options.repeats)
    median, iqr = median_iqr(times)
    return Timing(median, iqr, len(times), 1, clock.backend, threads, clock.name)


def median_iqr(times: Sequence[float]) -> tuple[float, float]:
    """Median and interquartile range (linear interpolation, as torch.utils.benchmark's)."""
    p25, p50, p75 = np.percentile(np.asarray(times, dtype=np.float64), [25, 50, 75])
    return float(p50), float(p75 - p25)


@contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _autorange(fn: Callable[[], Any], options: TimingOptions, threads: int) -> Timing:
    """The CPU back end: explicit warm-up, then torch.utils.benchmark's adaptive autorange."""
    for _ in range(options.warmup):
        fn()
    timer = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads)
    m = timer.adaptive_autorange(min_run_time=options.min_run_time, max_run_time=options.max_run_time)
    return Timing(m.median, m.iqr, len(m.times), m.number_per_run, "torch.utils.benchmark", threads, cpu_name())


def _event_times(fn: Callable[[], Any], clock: Clock, setup: Callable[[], Any] | None, warmup: int, repeats: int) -> list[float]:
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


# --- what the studies time -------------------------------------------------------------------


def time_init(method: str, layers: nn.Linear | Sequence[nn.Linear], rank: int | None, device: str | torch.device, *, seed: int = 0, options: TimingOptions = TimingOptions(), **hparams: Any) -> Timing:
    """Time ``adapters.registry.build_all(method, layers, rank)`` on ``device``: everything the
    method does before its first step (argument checks, SVDs, random projections, shared state).

    The layers are copied to ``device`` once, outside the timed region. Building never mutates
    the layers it wraps (docs/design.md), so every timed call starts from the same fresh layers and
    needs no per-call setup; the CPU back end can therefore time the calls in blocks.
    """
    fresh = [copy.deepcopy(layer).to(device) for layer in ([layers] if isinstance(layers, nn.Linear) else layers)]
    return measure(lambda: registry.build_all(method, fresh, rank, seed=seed, **hparams), device, options)


def prepared_train_step(model: nn.Module, hooks: Sequence[Adapter], data: Dataset, lr: float, device: str | torch.device, *, step: int | None = None, total_steps: int | None = None) -> Callable[[], None]:
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
        optimisation_step(model, optimizer, data.x_train, data.y_train, hooks, step, total_steps)

    one_step()
    return one_step


def time_train_step(model: nn.Module, hooks: Sequence[Adapter], data: Dataset, lr: float, device: str | torch.device, *, step: int | None = None, total_steps: int | None = None, options: TimingOptions = TimingOptions()) -> Timing:
    """Time one full optimisation step (see :func:`prepared_train_step`; trains ``model``)."""
    one_step = prepared_train_step(model, hooks, data, lr, device, step=step, total_steps=total_steps)
    return measure(one_step, device, options)


def train_step_peak_bytes(model: nn.Module, hooks: Sequence[Adapter], data: Dataset, lr: float, device: str | torch.device, *, step: int | None = None, total_steps: int | None = None) -> int | None:
    """Measured peak allocated memory of one optimisation step after warm-up (CUDA); None on
    the CPU, where torch has no allocator statistics to read (nothing is run there)."""
    if accelerator_for(device) is None:
        return None
    one_step = prepared_train_step(model, hooks, data, lr, device, step=step, total_steps=total_steps)
    return measured_peak_bytes(one_step, device)
