"""Memory of a training run: analytic bytes of parameters, gradients and Adam state, the same on
every device (the measured peak, where the device's allocator keeps statistics, is
:func:`nfl.measure.devices.measured_peak_bytes`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from nfl.params import trainable_parameters


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
