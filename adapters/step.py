"""How an adapted model trains: the objective and one optimisation step, the same for every engine.

The objective is the task loss plus each adapter's ``regularization()`` (None adds nothing); after
the optimiser step each adapter's ``on_step(step, total_steps)`` runs while the gradients are still
there. The sequential loop, the stacked engine (:mod:`adapters.stacked`), the timing of a step and
the contract's checks all train through these functions, so no two of them can drift apart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
from torch import Tensor, nn

from adapters.base import Adapter

LossFn = Callable[[Tensor, Tensor], Tensor]  # (model output, target) -> scalar task loss


def regularizers(hooks: Iterable[Adapter]) -> list[Tensor]:
    """Every adapter's extra loss term, those that return None left out."""
    return [term for term in (hook.regularization() for hook in hooks) if term is not None]


def objective(model: nn.Module, hooks: Sequence[Adapter], loss_fn: LossFn, x: Tensor, y: Tensor) -> Tensor:
    """What an optimisation step minimises: ``loss_fn(model(x), y)`` plus every regulariser."""
    loss = loss_fn(model(x), y)
    for term in regularizers(hooks):
        loss = loss + term
    return loss


def step(
    model: nn.Module, optimizer: torch.optim.Optimizer, hooks: Sequence[Adapter], loss_fn: LossFn, x: Tensor,
    y: Tensor, step: int, total_steps: int, on_gradients: Callable[[], None] | None = None,
) -> Tensor:
    """One full optimisation step: zero_grad, :func:`objective`, backward, ``on_gradients()`` (where a
    loop reads the gradient norm), the optimiser step, then every ``on_step``. Returns the detached
    loss without reading it, so that a timed step never synchronises."""
    optimizer.zero_grad(set_to_none=True)
    loss = objective(model, hooks, loss_fn, x, y)
    loss.backward()
    if on_gradients is not None:
        on_gradients()
    optimizer.step()
    for hook in hooks:
        hook.on_step(step, total_steps)
    return loss.detach()
