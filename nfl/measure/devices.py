"""What measurement needs from a device: its name, synchronisation, timing events, peak memory.

Timing and memory code talk to a :class:`Clock` / :class:`Accelerator`, never to ``torch.cuda``
directly, so a test can hand them a fake device whose events report known times and exercise
the CUDA back end's logic on a CPU-only machine.
"""

from __future__ import annotations

import functools
import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch


class Event(Protocol):
    """A point on the device's timeline, as ``torch.cuda.Event(enable_timing=True)``."""

    def record(self) -> None: ...

    def elapsed_time(self, end: Event) -> float:
        """Milliseconds from this event to ``end`` (both recorded)."""
        ...


class Clock(Protocol):
    """Something whose work can be waited for and timed by a pair of events."""

    name: str  # the device's name, for the record

    def synchronize(self) -> None: ...

    def event(self) -> Event: ...


class Accelerator(Clock, Protocol):
    """A clock whose allocator also reports a peak of allocated memory."""

    def reset_peak_memory(self) -> None: ...

    def peak_memory_bytes(self) -> int: ...


DeviceLike = str | torch.device | Accelerator


@dataclass(frozen=True)
class Cuda:
    """A CUDA device: ``torch.cuda`` events, synchronisation and allocator statistics."""

    device: torch.device

    @property
    def name(self) -> str:
        return torch.cuda.get_device_name(self.device)

    def synchronize(self) -> None:
        torch.cuda.synchronize(self.device)

    def event(self) -> Event:
        return torch.cuda.Event(enable_timing=True)

    def reset_peak_memory(self) -> None:
        torch.cuda.reset_peak_memory_stats(self.device)

    def peak_memory_bytes(self) -> int:
        return torch.cuda.max_memory_allocated(self.device)


@functools.cache
def cpu_name(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """The processor's model, e.g. "AMD EPYC 7763 64-Core Processor": the first "model name" of
    ``cpuinfo`` (Linux), else what ``platform`` reports (often only the architecture)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            return " ".join(value.split())
    return platform.processor() or platform.machine()


def accelerator_for(device: DeviceLike) -> Accelerator | None:
    """The accelerator behind ``device``: None for the CPU, :class:`Cuda` for a CUDA device,
    and ``device`` itself when it already is an accelerator (a test's fake)."""
    if not isinstance(device, (str, torch.device)):
        return device
    device = torch.device(device)
    if device.type == "cpu":
        return None
    if device.type == "cuda":
        return Cuda(device)
    raise ValueError(f"no measurement back end for device {device}; use cpu or cuda")


def device_name(device: DeviceLike) -> str:
    """The name a record gives ``device``: the processor's model on the CPU, the accelerator's name else."""
    accelerator = accelerator_for(device)
    return cpu_name() if accelerator is None else accelerator.name


def synchronize(device: DeviceLike) -> None:
    """Wait for the work queued on ``device`` (nothing to wait for on the CPU)."""
    accelerator = accelerator_for(device)
    if accelerator is not None:
        accelerator.synchronize()


def measured_peak_bytes(fn: Callable[[], Any], device: DeviceLike) -> int | None:
    """Peak memory the device's allocator held while ``fn()`` ran (its baseline included).

    None on the CPU: torch keeps no allocator statistics there, and a guess is not a measurement.
    """
    accelerator = accelerator_for(device)
    if accelerator is None:
        return None
    accelerator.synchronize()
    accelerator.reset_peak_memory()
    fn()
    accelerator.synchronize()
    return accelerator.peak_memory_bytes()
