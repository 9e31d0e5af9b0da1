"""K training runs of one method at once: the quality studies' engine.

:class:`adapters.stacked.StackedRuns` trains one (method, rank)'s runs -- other seeds (pretrained
weights, data, adapter initialisation) and other learning rates, the same shapes -- in one pass;
this loop adds what :func:`nfl.training.train` adds to one step: each run's History (the same
:meth:`History.record`, so the same divergence rule), evaluation after every step with merged
adapters, and each run's model left at the step its validation selects.

:func:`nfl.training.train` stays the reference: each run's History equals it up to rounding, as
batched matrix products sum in another order (tests/test_batched.py holds every method to it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from adapters.base import Adapter
from adapters.stacked import StackedRuns, unstackable
from adapters.step import LossFn
from nfl.params import gradient_norm
from nfl.tasks import Dataset
from nfl.training import Batches, History


def can_batch(hooks: list[Adapter]) -> bool:
    """Whether one run's adapters can be trained stacked (every ``on_step`` has a stacked form; an
    external adapter without one is trained by the sequential reference instead)."""
    return not unstackable(hooks)


def train_batched(
    models: list[nn.Module], hooks: list[list[Adapter]], data: list[Dataset], epochs: int, lrs: list[float],
    loss_fn: LossFn = F.mse_loss, keep: str = "selected", batches: list[Batches] | None = None, eval_every: int = 1,
) -> list[History]:
    """``[train(models[i], data[i], epochs, lrs[i], hooks[i], loss_fn, keep, batches[i], eval_every) for i in
    range(K)]``, in one pass: each run its own minibatches (``batches[i](step)``) when given.

    The runs must share shapes and method. Each run's parameters at the step its validation selects
    (``keep="final"``: after the last step) are written back into ``models[i]``, as ``train`` leaves
    them. A run that diverges is
    recorded at its step and no longer recorded; the others go on.
    """
    if len(data) != len(models) or (batches is not None and len(batches) != len(models)):
        raise ValueError(f"train_batched needs one dataset (and batch source) per model, got {len(data)} "
                         f"for {len(models)}")
    with sdpa_kernel(SDPBackend.MATH):  # vmap batches attention's math form; fused kernels have no batched backward
        runs = StackedRuns(models, hooks, lrs, loss_fn)
        return _train_stacked(runs, data, epochs, loss_fn, keep, batches, eval_every)


def _train_stacked(
    runs: StackedRuns, data: list[Dataset], epochs: int, loss_fn: LossFn, keep: str, batches: list[Batches] | None,
    eval_every: int,
) -> list[History]:
    n_val = data[0].x_val.shape[0]
    x_eval = torch.stack([torch.cat([d.x_val, d.x_test]) for d in data])
    y_val, y_test = torch.stack([d.y_val for d in data]), torch.stack([d.y_test for d in data])

    def losses(model, x: Tensor, y_v: Tensor, y_t: Tensor) -> Tensor:  # validation and test, one forward
        out = model(x)
        return torch.stack([loss_fn(out[:n_val], y_v), loss_fn(out[n_val:], y_t)])

    def evaluate() -> Tensor:  # (K, 2): each run's validation and test loss
        return runs.evaluate(losses, x_eval, y_val, y_test)

    def training_batch(step: int) -> tuple[Tensor, Tensor]:  # (K, ...) each run's own
        if batches is None:
            return full_batch
        xs, ys = zip(*(source(step) for source in batches))
        return torch.stack(xs), torch.stack(ys)

    if batches is None:
        full_batch = torch.stack([d.x_train for d in data]), torch.stack([d.y_train for d in data])
    histories = [History.start(val, test, eval_every) for val, test in evaluate().tolist()]
    selected = runs.snapshot()
    active = [i for i, h in enumerate(histories) if h.diverged_at is None]
    for step in range(epochs):
        if not active:
            break
        train_loss, grads = runs.step(*training_batch(step), step, epochs)
        norms = gradient_norm(grads, run_dims=1)
        if not histories[0].evaluates(step + 1):
            for i, row in enumerate(torch.stack([train_loss, norms], dim=1).tolist()):
                if i in active:
                    histories[i].record(*row)
            active = [i for i in active if histories[i].diverged_at is None]
            continue
        rows = torch.cat([train_loss[None], norms[None], evaluate().T]).T.tolist()
        improved = []
        for i in active:
            best = histories[i].min_val_loss
            if not histories[i].record(*rows[i]) and histories[i].val_loss[-1] < best:
                improved.append(i)
        if improved:
            with torch.no_grad():
                for name, tensor in runs.trainable.items():
                    selected[name][improved] = tensor[improved]
        active = [i for i in active if histories[i].diverged_at is None]
    runs.write_back(selected if keep == "selected" else None)
    return histories
