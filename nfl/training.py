"""Pretraining and adaptation loops: full-batch Adam, a History of every step."""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

import adapters as registry
from adapters.base import Adapter, merged
from nfl import seeds
from nfl.config import ExperimentConfig
from nfl.params import count_trainable, grad_norm, trainable_parameters
from nfl.model import MLP, make_mlp, target_layer_names
from nfl.tasks import Dataset, TaskData


class DegenerateTaskWarning(UserWarning):
    """The pretrained model is no better than predicting zero: adaptation results mean little."""


@dataclass
class History:
    """Per-step record of one training run.

    ``val_loss[0]`` is measured before the first step and ``val_loss[i]`` after step i, and
    ``test_loss`` alike on the held-out test split (it never selects anything);
    ``train_loss[i-1]`` and ``grad_norm[i-1]`` belong to step i (the loss it minimised, regulariser
    included, and the L2 norm of its gradient over the trainable parameters).

    A run whose loss, gradient norm or validation loss stops being finite is stopped:
    ``diverged_at`` is that step (0: the model was not finite to begin with) and each list ends
    with its last finite value (the step's loss and gradient norm may be finite when the
    validation loss after it is not).
    """

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    diverged_at: int | None = None

    @property
    def min_val_loss(self) -> float:
        return min(self.val_loss)

    @property
    def final_val_loss(self) -> float:
        return self.val_loss[-1]

    def to_dict(self) -> dict[str, list[float] | int | None]:
        return {
            "train_loss": self.train_loss, "val_loss": self.val_loss, "test_loss": self.test_loss,
            "grad_norm": self.grad_norm, "diverged_at": self.diverged_at,
        }


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean squared error of ``model`` on (x, y), its adapters merged (``adapters.merged``)."""
    with merged(model):
        return float(F.mse_loss(model(x), y))


def optimisation_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    hooks: Sequence[Adapter],
    step: int,
    total_steps: int,
    on_gradients: Callable[[], None] | None = None,
) -> torch.Tensor:
    """One full optimisation step, as the pipeline trains and the timing measures it.

    zero_grad, forward, MSE loss plus each hook's ``regularization()``, backward, optimiser step,
    then each hook's ``on_step(step, total_steps)`` while the gradients are still there.
    ``on_gradients`` runs between backward and the optimiser step (``train`` records the gradient
    norm there). Returns the detached loss without reading it, so a timed step never syncs.
    """
    optimizer.zero_grad(set_to_none=True)
    loss = F.mse_loss(model(x), y)
    for hook in hooks:
        extra = hook.regularization()
        if extra is not None:
            loss = loss + extra
    loss.backward()
    if on_gradients is not None:
        on_gradients()
    optimizer.step()
    for hook in hooks:
        hook.on_step(step, total_steps)
    return loss.detach()


def _norm_of_gradient(loss: torch.Tensor, params: list[nn.Parameter]) -> float:
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads if g is not None])))


def initial_gradient_norms(model: nn.Module, data: Dataset, hooks: Sequence[Adapter] = ()) -> tuple[float, float | None]:
    """L2 norms over the trainable parameters, before the first step, of the task loss's gradient and
    of the regularisers' alone (None without one): Figure 1 measures the task, never the two summed."""
    params = trainable_parameters(model)
    task = _norm_of_gradient(F.mse_loss(model(data.x_train), data.y_train), params)
    terms = [extra for extra in (hook.regularization() for hook in hooks) if extra is not None]
    return task, (_norm_of_gradient(sum(terms), params) if terms else None)


def train(model: nn.Module, data: Dataset, epochs: int, lr: float, hooks: Sequence[Adapter] = ()) -> History:
    """Full-batch Adam on ``data`` for ``epochs`` steps of :func:`optimisation_step`.

    Updates the parameters with requires_grad; records every step's loss, gradient norm and the
    validation loss after it.
    """
    params = trainable_parameters(model)
    optimizer = torch.optim.Adam(params, lr=lr)
    history = History(val_loss=[evaluate(model, data.x_val, data.y_val)], test_loss=[evaluate(model, data.x_test, data.y_test)])

    def record_grad_norm() -> None:
        history.grad_norm.append(float(grad_norm(params)))

    if not math.isfinite(history.val_loss[0]):
        history.val_loss.clear()
        history.test_loss.clear()
        history.diverged_at = 0
        return history
    for step in range(epochs):
        loss = optimisation_step(model, optimizer, data.x_train, data.y_train, hooks, step, epochs, record_grad_norm)
        history.train_loss.append(float(loss))
        history.val_loss.append(evaluate(model, data.x_val, data.y_val))
        history.test_loss.append(evaluate(model, data.x_test, data.y_test))
        lists = (history.train_loss, history.grad_norm, history.val_loss, history.test_loss)
        if not all(math.isfinite(values[-1]) for values in lists):
            for values in lists:
                if not math.isfinite(values[-1]):
                    values.pop()
            history.diverged_at = step + 1
            break
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
    history = train(model, data.base.to(device), cfg.train.pretrain_epochs, cfg.train.lr)
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
