"""Quantities measured on a model or its adapters."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence, TypeVar

import torch
from torch import nn

from nfl.devices import DeviceLike, accelerator_for


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters an optimiser updates: exactly those with requires_grad (shared ones once)."""
    return [p for p in model.parameters() if p.requires_grad]


def count_trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in trainable_parameters(model))


def grad_norm(params: Iterable[torch.Tensor]) -> torch.Tensor:
    """L2 norm of all gradients together, sqrt(sum_p ||grad p||^2); parameters without one count 0."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))


# --- memory ------------------------------------------------------------------------------------


def tensor_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Bytes of the tensors' elements."""
    return sum(t.numel() * t.element_size() for t in tensors)


def adam_state_bytes(params: Iterable[torch.Tensor]) -> int:
    """Bytes of the state ``torch.optim.Adam(params)`` keeps with its default settings.

    Per parameter tensor (torch 2.x, checked against ``optimizer.state`` by a test): ``exp_avg``
    and ``exp_avg_sq`` shaped and typed like it, and a scalar ``step`` -- float32 (float64 under
    a float64 default dtype) and held on the CPU, as Adam does unless fused or capturable.
    """
    params = list(params)
    step_dtype = torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32
    return 2 * tensor_bytes(params) + len(params) * step_dtype.itemsize


@dataclass(frozen=True)
class TrainingMemory:
    """Bytes an Adam run holds for the trainable parameters: the parameters, their gradients and
    the optimiser state (activations and frozen weights excluded)."""

    parameters: int
    gradients: int
    optimizer_state: int

    @property
    def total(self) -> int:
        return self.parameters + self.gradients + self.optimizer_state

    def to_dict(self) -> dict[str, int]:
        return {**dataclasses.asdict(self), "total": self.total}


def training_memory(model: nn.Module) -> TrainingMemory:
    """Analytic :class:`TrainingMemory` of training ``model``'s trainable parameters with Adam,
    the same on every device."""
    params = trainable_parameters(model)
    size = tensor_bytes(params)
    return TrainingMemory(parameters=size, gradients=size, optimizer_state=adam_state_bytes(params))


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


# --- Pareto front ------------------------------------------------------------------------------

Point = TypeVar("Point", bound=Sequence[Any])


def pareto_front(points: Iterable[Point]) -> list[Point]:
    """The points no other point dominates, minimising both cost and loss, sorted by cost.

    A point is a sequence ``(cost, loss, *labels)``. One point dominates another when it is no
    worse in both and better in one, so identical points never dominate each other and all stay.
    A NaN cost or loss is a ValueError: it cannot be compared.
    """
    ordered = sorted(points, key=lambda p: (p[0], p[1]))
    for p in ordered:
        if math.isnan(p[0]) or math.isnan(p[1]):
            raise ValueError(f"point {p!r} has a NaN cost or loss; a Pareto front needs comparable points")
    front: list[Point] = []
    for p in ordered:
        # ``front[-1]`` has the lowest loss so far, at a cost <= p's: p survives only by beating
        # that loss, or by being the same point.
        if not front or p[1] < front[-1][1] or (p[0], p[1]) == (front[-1][0], front[-1][1]):
            front.append(p)
    return front
