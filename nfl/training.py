"""Pretraining and adaptation: the sequential training loop, a History of every step, and the
rule that says a run diverged."""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass, field
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

import adapters as registry
from adapters.base import Adapter, merged
from adapters.step import LossFn, regularizers
from adapters.step import step as adapter_step
from nfl import seeds
from nfl.config import ExperimentConfig
from nfl.params import count_trainable, gradient_norm, trainable_parameters
from nfl.model import MLP, make_mlp, target_layer_names
from nfl.tasks import Dataset, TaskData


class DegenerateTaskWarning(UserWarning):
    """The pretrained model is no better than predicting zero: adaptation results mean little."""


# A run is stopped as diverged once its validation loss exceeds this many times its loss before the
# first step: at --adapt-lr 10 the losses grew to ~1e15 and stayed finite, and a loss 100x the start is
# far past anything a run recovers from here (the zero predictor of the MLP's tasks is ~10x the start).
BLOWUP = 100.0


@dataclass
class History:
    """Per-step record of one training run.

    ``val_loss[0]`` is measured before the first step and ``val_loss[i]`` after step i, and
    ``test_loss`` alike on the held-out test split (it never selects anything);
    ``train_loss[i-1]`` and ``grad_norm[i-1]`` belong to step i (the loss it minimised, regulariser
    included, and the L2 norm of its gradient over the trainable parameters).

    A run diverges when its loss, gradient norm or validation loss stops being finite, or its
    validation loss exceeds ``BLOWUP`` times the loss before the first step (:meth:`record`). It is
    stopped there: ``diverged_at`` is that step (0: the model was not finite to begin with) and each
    list ends with its last finite, unblown value.
    """

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    diverged_at: int | None = None

    @classmethod
    def start(cls, val_loss: float, test_loss: float) -> History:
        """The losses before the first step; a model not finite there is diverged at step 0."""
        if math.isfinite(val_loss):
            return cls(val_loss=[val_loss], test_loss=[test_loss])
        return cls(diverged_at=0)

    def record(self, train_loss: float, grad_norm: float, val_loss: float, test_loss: float) -> bool:
        """Append one step; True (and ``diverged_at`` set to the step) when the run diverged there. A
        diverged step keeps its finite loss and gradient norm, not its validation and test losses."""
        step = len(self.train_loss) + 1
        row = (train_loss, grad_norm, val_loss, test_loss)
        blown = self.val_loss[0] > 0 and val_loss > BLOWUP * self.val_loss[0]
        finite = [math.isfinite(value) for value in row]
        diverged = blown or not all(finite)
        for values, value, keep in zip(self.lists(), row, (finite[0], finite[1], not diverged, not diverged)):
            if keep:
                values.append(value)
        if diverged:
            self.diverged_at = step
        return diverged

    def lists(self) -> tuple[list[float], ...]:
        return self.train_loss, self.grad_norm, self.val_loss, self.test_loss

    @property
    def min_val_loss(self) -> float:
        return min(self.val_loss)

    @property
    def selected_step(self) -> int:
        """The step validation selects: the lowest validation loss, the earliest on a tie."""
        return min(range(len(self.val_loss)), key=self.val_loss.__getitem__)

    @property
    def final_val_loss(self) -> float:
        return self.val_loss[-1]

    def to_dict(self) -> dict[str, list[float] | int | None]:
        return {
            "train_loss": self.train_loss, "val_loss": self.val_loss, "test_loss": self.test_loss,
            "grad_norm": self.grad_norm, "diverged_at": self.diverged_at,
        }


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: LossFn = F.mse_loss) -> float:
    """``loss_fn`` of ``model`` on (x, y), its adapters merged (``adapters.merged``)."""
    with merged(model):
        return float(loss_fn(model(x), y))


def initial_gradient_norms(
    model: nn.Module, data: Dataset, hooks: Sequence[Adapter] = (), loss_fn: LossFn = F.mse_loss
) -> tuple[float, float | None]:
    """L2 norms over the trainable parameters, before the first step, of the task loss's gradient and
    of the regularisers' alone (None without one): Figure 1 measures the task, never the two summed."""
    params = trainable_parameters(model)

    def norm(loss: torch.Tensor) -> float:
        return float(gradient_norm(torch.autograd.grad(loss, params, allow_unused=True)))

    terms = regularizers(hooks)
    return norm(loss_fn(model(data.x_train), data.y_train)), (norm(sum(terms)) if terms else None)


def train(
    model: nn.Module, data: Dataset, epochs: int, lr: float, hooks: Sequence[Adapter] = (),
    loss_fn: LossFn = F.mse_loss, keep: str = "selected",
) -> History:
    """Full-batch Adam on ``data`` for ``epochs`` steps of :func:`adapters.step.step`, the reference
    the stacked engine (:mod:`nfl.batched`) is held to.

    Updates the parameters with requires_grad; records every step's loss, gradient norm and the
    validation and test losses after it. ``keep="selected"`` leaves ``model`` as it was at the step
    validation selects (so that every number a study reports of a run is measured on one model),
    ``"final"`` as after the last step (pretraining).
    """
    params = trainable_parameters(model)
    optimizer = torch.optim.Adam(params, lr=lr)
    history = History.start(evaluate(model, data.x_val, data.y_val, loss_fn),
                            evaluate(model, data.x_test, data.y_test, loss_fn))
    norms: list[float] = []
    selected = {id(p): p.detach().clone() for p in params}
    for step in range(epochs):
        if history.diverged_at is not None:
            break
        loss = adapter_step(model, optimizer, hooks, loss_fn, data.x_train, data.y_train, step, epochs,
                            lambda: norms.append(float(gradient_norm([p.grad for p in params]))))
        best = history.min_val_loss
        history.record(float(loss), norms[-1], evaluate(model, data.x_val, data.y_val, loss_fn),
                       evaluate(model, data.x_test, data.y_test, loss_fn))
        if history.diverged_at is None and history.val_loss[-1] < best:
            selected = {id(p): p.detach().clone() for p in params}
    if keep == "selected":
        with torch.no_grad():
            for p in params:
                p.copy_(selected[id(p)])
    return history


def set_determinism(device: str | torch.device) -> None:
    """Same seed, same numbers: deterministic kernels where torch offers a choice, on CUDA. On the
    CPU the kernels nfl runs repeat bit for bit already (tests/test_protocol.py holds records to
    it), and the switch would import torch's compiler stack: 1.5 s of every study's start-up."""
    if torch.device(device).type == "cuda":
        torch.use_deterministic_algorithms(True, warn_only=True)


def pretrain(cfg: ExperimentConfig, data: TaskData, seed: int, device: str | torch.device = "cpu") -> tuple[MLP, History]:
    """Train a fresh MLP on the base task; warn when it ends no better than the zero predictor."""
    set_determinism(device)
    model = make_mlp(cfg.model, seeds.derive(seed, "model"), device=device)
    history = train(model, data.base.to(device), cfg.train.pretrain_epochs, cfg.train.lr, keep="final")
    if history.diverged_at is not None:
        warnings.warn(DegenerateTaskWarning(f"pretraining diverged at step {history.diverged_at} (lr {cfg.train.lr}): every adaptation will too"), stacklevel=2)
    elif history.final_val_loss >= data.base.zero_loss:
        warnings.warn(
            DegenerateTaskWarning(
                f"the pretrained model's base-task validation loss {history.final_val_loss:.3f} is no better "
                f"than predicting zero ({data.base.zero_loss:.3f}): it has learnt nothing to adapt "
                f"(preset {cfg.preset!r}; see docs/design.md)"
            ),
            stacklevel=2,
        )
    return model, history


@dataclass
class Adapted:
    """An adapted copy of the pretrained model and what happened on the way."""

    model: nn.Module
    adapters: list[Adapter]
    history: History
    trainable_params: int


def prepare(pretrained: nn.Module, method: str, cfg: ExperimentConfig, rank: int | None, seed: int, **hparams) -> tuple[nn.Module, list[Adapter]]:
    """A copy of ``pretrained`` with ``method`` attached from run ``seed``'s stream for this method;
    the pretrained model is left as it was."""
    model = copy.deepcopy(pretrained)
    attached = registry.attach(
        model, method, target_layer_names(cfg.targets), rank=rank, seed=seeds.derive(seed, "adapter", method), **hparams
    )
    if cfg.train_unadapted_layers:
        covered = set(target_layer_names(cfg.targets))
        for name, module in model.named_children():
            if isinstance(module, nn.Linear) and name not in covered:
                module.requires_grad_(True)
    return model, attached


def adapt(
    pretrained: nn.Module, method: str, cfg: ExperimentConfig, data: Dataset, rank: int | None = None,
    seed: int | None = None, lr: float | None = None, **hparams,
) -> Adapted:
    """Adapt a copy of ``pretrained`` to ``data`` (the shifted task) with ``method`` at ``lr``
    (default: the config's adaptation lr)."""
    seed = cfg.seed if seed is None else seed
    model, attached = prepare(pretrained, method, cfg, rank, seed, **hparams)
    device = next(model.parameters()).device
    set_determinism(device)
    lr = cfg.train.adaptation_lr if lr is None else lr
    history = train(model, data.to(device), cfg.train.adapt_epochs, lr, hooks=attached)
    return Adapted(model, attached, history, count_trainable(model))
