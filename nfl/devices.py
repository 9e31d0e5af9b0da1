"""What measurement needs from a device: synchronisation, timing events, peak memory.

Timing and memory code talk to a :class:`Clock` / :class:`Accelerator`, never to ``torch.cuda``
directly, so a test can hand them a fake device whose events report known times and exercise
the CUDA back end's logic on a CPU-only machine.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Union

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
    backend: str  # how the time is taken, for the record

    def synchronize(self) -> None: ...

    def event(self) -> Event: ...


class Accelerator(Clock, Protocol):
    """A clock whose allocator also reports a peak of allocated memory."""

    def reset_peak_memory(self) -> None: ...

    def peak_memory_bytes(self) -> int: ...


DeviceLike = Union[str, torch.device, Accelerator]


@dataclass(frozen=True)
class Cuda:
    """A CUDA device: ``torch.cuda`` events, synchronisation and allocator statistics."""

    device: torch.device
    backend = "cuda_events"

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


class _HostEvent:
    def __init__(self) -> None:
        self.seconds = float("nan")

    def record(self) -> None:
        self.seconds = time.perf_counter()

    def elapsed_time(self, end: _HostEvent) -> float:
        return (end.seconds - self.seconds) * 1e3


class HostClock:
    """The CPU as a clock: work is synchronous, events read ``time.perf_counter``."""

    backend = "host_clock"

    @property
    def name(self) -> str:
        return cpu_name()

    def synchronize(self) -> None:
        """Nothing to wait for: CPU work has finished when the call returns."""

    def event(self) -> Event:
        return _HostEvent()


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
