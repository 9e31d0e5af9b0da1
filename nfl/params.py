"""Trainable parameters: which, how many, and the norm of their gradient (one definition for every
engine and for Figure 1)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters an optimiser updates: exactly those with requires_grad (shared ones once)."""
    return [p for p in model.parameters() if p.requires_grad]


def count_trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in trainable_parameters(model))


def gradient_norm(grads: Iterable[torch.Tensor | None], run_dims: int = 0) -> torch.Tensor:
    """L2 norm of the gradients together, sqrt(sum_g ||g||^2) (None counts 0); with ``run_dims``
    leading dimensions kept apart (the stacked engine's runs), one norm per run."""
    parts = [g.reshape(*g.shape[:run_dims], -1).norm(dim=-1) for g in grads if g is not None]
    if not parts:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack(parts), dim=0)
