"""Pretraining and adaptation: the sequential training loop, a History of every step, and the
rule that says a run diverged."""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

import adapters as registry
from adapters.base import Adapter, merged
from adapters.step import LossFn, regularizers
from adapters.step import step as adapter_step
from nfl import seeds, testbeds
from nfl.config import ExperimentConfig
from nfl.params import count_trainable, gradient_norm, trainable_parameters
from nfl.tasks import Dataset, TaskData

Batches = Callable[[int], tuple[torch.Tensor, torch.Tensor]]  # step -> (x, y): a run's minibatch at that step


class DegenerateTaskWarning(UserWarning):
    """The pretrained model is no better than predicting zero: adaptation results mean little."""


# A run is stopped as diverged once its validation loss exceeds this many times its loss before the
# first step: at --adapt-lr 10 the losses grew to ~1e15 and stayed finite, and a loss 100x the start is
# far past anything a run recovers from here (the zero predictor of the MLP's tasks is ~10x the start).
BLOWUP = 100.0


@dataclass
class History:
    """Per-step record of one training run.

    ``val_loss[0]`` is measured before the first step and ``val_loss[i]`` after step
    ``i * eval_every`` (every step by default; a testbed whose evaluation costs more than a step, the
    gpt's, evaluates every few), and ``test_loss`` alike on the held-out test split (it never selects
    anything); ``train_loss[i-1]`` and ``grad_norm[i-1]`` belong to step i (the loss it minimised,
    regulariser included, and the L2 norm of its gradient over the trainable parameters).

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
    eval_every: int = 1

    @classmethod
    def start(cls, val_loss: float, test_loss: float, eval_every: int = 1) -> History:
        """The losses before the first step; a model not finite there is diverged at step 0."""
        if math.isfinite(val_loss):
            return cls(val_loss=[val_loss], test_loss=[test_loss], eval_every=eval_every)
        return cls(diverged_at=0, eval_every=eval_every)

    def evaluates(self, step: int) -> bool:
        """Whether the losses are measured after (1-based) ``step``."""
        return step % self.eval_every == 0

    def record(
        self, train_loss: float, grad_norm: float, val_loss: float | None = None, test_loss: float | None = None
    ) -> bool:
        """Append one step, its validation and test losses where it :meth:`evaluates` (None between);
        True (and ``diverged_at`` set to the step) when the run diverged there. A diverged step keeps
        its finite loss and gradient norm, not its validation and test losses."""
        step = len(self.train_loss) + 1
        row = (train_loss, grad_norm) + (() if val_loss is None else (val_loss, test_loss))
        blown = val_loss is not None and self.val_loss[0] > 0 and val_loss > BLOWUP * self.val_loss[0]
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
        return self.eval_every * min(range(len(self.val_loss)), key=self.val_loss.__getitem__)

    @property
    def final_val_loss(self) -> float:
        return self.val_loss[-1]

    def to_dict(self) -> dict[str, list[float] | int | None]:
        return {
            "train_loss": self.train_loss, "val_loss": self.val_loss, "test_loss": self.test_loss,
            "grad_norm": self.grad_norm, "diverged_at": self.diverged_at, "eval_every": self.eval_every,
        }


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: LossFn = F.mse_loss) -> float:
    """``loss_fn`` of ``model`` on (x, y), its adapters merged (``adapters.merged``)."""
    with merged(model):
        return float(loss_fn(model(x), y))


def initial_gradient_norms(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, hooks: Sequence[Adapter] = (), loss_fn: LossFn = F.mse_loss
) -> tuple[float, float | None]:
    """L2 norms over the trainable parameters, at the first step's batch (x, y), of the task loss's
    gradient and of the regularisers' alone (None without one): Figure 1 measures the task, never the
    two summed."""
    params = trainable_parameters(model)

    def norm(loss: torch.Tensor) -> float:
        return float(gradient_norm(torch.autograd.grad(loss, params, allow_unused=True)))

    terms = regularizers(hooks)
    return norm(loss_fn(model(x), y)), (norm(sum(terms)) if terms else None)


def train(
    model: nn.Module, data: Dataset, epochs: int, lr: float, hooks: Sequence[Adapter] = (),
    loss_fn: LossFn = F.mse_loss, keep: str = "selected", batches: Batches | None = None, eval_every: int = 1,
) -> History:
    """Adam for ``epochs`` steps of :func:`adapters.step.step`, the reference the stacked engine
    (:mod:`nfl.batched`) is held to: full batch on ``data``'s training split, or ``batches(step)``'s
    minibatch at each step when given (the gpt testbed's random windows).

    Updates the parameters with requires_grad; records every step's loss and gradient norm, and the
    validation and test losses after every ``eval_every``-th step. ``keep="selected"`` leaves
    ``model`` as it was at the step validation selects (so that every number a study reports of a run
    is measured on one model), ``"final"`` as after the last step (pretraining).
    """
    params = trainable_parameters(model)
    optimizer = torch.optim.Adam(params, lr=lr)
    history = History.start(evaluate(model, data.x_val, data.y_val, loss_fn),
                            evaluate(model, data.x_test, data.y_test, loss_fn), eval_every)
    norms: list[float] = []
    selected = {id(p): p.detach().clone() for p in params}
    for step in range(epochs):
        if history.diverged_at is not None:
            break
        x, y = (data.x_train, data.y_train) if batches is None else batches(step)
        loss = adapter_step(model, optimizer, hooks, loss_fn, x, y, step, epochs,
                            lambda: norms.append(float(gradient_norm([p.grad for p in params]))))
        if not history.evaluates(step + 1):
            history.record(float(loss), norms[-1])
            continue
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


def pretrain(
    cfg: ExperimentConfig, data: TaskData, seed: int, device: str | torch.device = "cpu"
) -> tuple[nn.Module, History]:
    """Train a fresh model of the config's testbed on the base task (its minibatches, if it draws any,
    from run ``seed``'s pretraining stream); warn when it ends no better than the testbed's reference
    (the MLP's zero predictor, the GPT's unigram entropy)."""
    set_determinism(device)
    testbed = testbeds.get(cfg.testbed)
    model = testbed.make_model(cfg, seeds.derive(seed, "model")).to(device)
    base = data.base.to(device)
    source = testbed.batches(cfg, base, seeds.generator(seed, "batches", "pretrain"), pretraining=True)
    history = train(model, base, cfg.train.pretrain_epochs, cfg.train.lr, loss_fn=testbed.loss_fn, keep="final",
                    batches=source, eval_every=testbed.eval_every(cfg))
    reference = testbed.reference(data.base)
    if history.diverged_at is not None:
        warnings.warn(
            DegenerateTaskWarning(
                f"pretraining diverged at step {history.diverged_at} (lr {cfg.train.lr}): every adaptation will too"
            ),
            stacklevel=2,
        )
    elif history.final_val_loss >= reference:
        warnings.warn(
            DegenerateTaskWarning(
                f"the pretrained model's base-task validation loss {history.final_val_loss:.3f} is no better "
                f"than the {testbed.REFERENCE} ({reference:.3f}): it has learnt nothing to adapt "
                f"(testbed {cfg.testbed}, preset {cfg.preset!r}; see docs/design.md)"
            ),
            stacklevel=2,
        )
    return model, history


def first_batch(cfg: ExperimentConfig, task: Dataset, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """What run ``seed``'s first adaptation step trains on: the training split, or its first minibatch;
    the initial gradient norm and λ_max are measured there."""
    source = adaptation_batches(cfg, task, seed)
    return (task.x_train, task.y_train) if source is None else source(0)


def adaptation_batches(cfg: ExperimentConfig, task: Dataset, seed: int) -> Batches | None:
    """A run's minibatches on the shifted task (None: full batch): random windows drawn from run ``seed``'s
    adaptation stream. Every method and learning rate of a seed draws the same sequence from its own
    generator, as every method of a seed adapts on the same MLP samples: the comparison stays paired."""
    testbed = testbeds.get(cfg.testbed)
    return testbed.batches(cfg, task, seeds.generator(seed, "batches", "adapt"), pretraining=False)


@dataclass
class Adapted:
    """An adapted copy of the pretrained model and what happened on the way."""

    model: nn.Module
    adapters: list[Adapter]
    history: History
    trainable_params: int


def prepare(
    pretrained: nn.Module, method: str, cfg: ExperimentConfig, rank: int | None, seed: int, **hparams
) -> tuple[nn.Module, list[Adapter]]:
    """A copy of ``pretrained`` with ``method`` attached from run ``seed``'s stream for this method,
    with the hyper-parameters the config's ``--hparams`` sets (``hparams`` over them); the pretrained
    model is left as it was."""
    hparams = {**cfg.hparams_of(method), **hparams}
    model = copy.deepcopy(pretrained)
    targets = testbeds.get(cfg.testbed).target_modules(cfg)
    attached = registry.attach(model, method, targets, rank=rank, seed=seeds.derive(seed, "adapter", method), **hparams)
    if cfg.train_unadapted_layers:
        covered = set(registry.target_names(pretrained, targets))
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
    data, testbed = data.to(device), testbeds.get(cfg.testbed)
    history = train(model, data, cfg.train.adapt_epochs, lr, attached, testbed.loss_fn,
                    batches=adaptation_batches(cfg, data, seed), eval_every=testbed.eval_every(cfg))
    return Adapted(model, attached, history, count_trainable(model))
