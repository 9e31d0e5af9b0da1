"""K training runs of one method at once: the quality studies' engine.

At width 64 a step is almost all framework overhead, so K runs of one (method, rank) -- other seeds
(pretrained weights, data, adapter init) and other learning rates, the same shapes -- are stacked
along a leading run dimension (``torch.func.stack_module_state``) and trained together: the K
losses by ``torch.func.vmap`` over ``functional_call``, their gradients by one backward pass of
their sum (the runs share no tensor, so run i's slice of the gradient is its own loss's), Adam on
the stacked tensors, one dispatch per operation for all K runs. The one backward pass costs 20-30%
less than ``vmap(grad_and_value(...))``, which differentiates inside the vmap.

:func:`nfl.training.train` stays the reference: each run's History equals it up to rounding, as
batched matrix products sum in another order (tests/test_batched.py holds every method to it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from adapters.adalora import AdaLoRA, RankAllocator
from adapters.base import Adapter, merged
from nfl.tasks import Dataset
from nfl.training import History

State = dict[str, Tensor]


class StackedAdam:
    """``torch.optim.Adam`` with its default settings on tensors stacked along a leading run dim,
    one learning rate per run.

    The update is torch's single-tensor one (what CPU Adam runs; CUDA's foreach one computes the
    same) written operation by operation, so each run's slice gets bit for bit torch's update.
    Only the step size differs per run: it multiplies the numerator, which is where
    ``addcdiv_``'s scalar goes, so every rounding stays the same.
    """

    def __init__(
        self, params: State, lrs: Sequence[float], betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8
    ):
        self.params = params
        self.lrs = torch.tensor(lrs, dtype=torch.float64)  # lr / bias correction in double, as torch's floats
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.steps = 0
        self.exp_avg = {name: torch.zeros_like(p) for name, p in params.items()}
        self.exp_avg_sq = {name: torch.zeros_like(p) for name, p in params.items()}

    @torch.no_grad()
    def step(self, grads: State) -> None:
        self.steps += 1
        step = float(self.steps)
        bias_correction1 = 1 - self.beta1**step
        bias_correction2_sqrt = (1 - self.beta2**step) ** 0.5
        neg_step_size = -(self.lrs / bias_correction1)
        for name, param in self.params.items():
            grad, exp_avg, exp_avg_sq = grads[name], self.exp_avg[name], self.exp_avg_sq[name]
            exp_avg.lerp_(grad, 1 - self.beta1)
            exp_avg_sq.mul_(self.beta2).addcmul_(grad, grad, value=1 - self.beta2)
            denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(self.eps)
            per_run = neg_step_size.to(device=param.device, dtype=param.dtype).view(-1, *[1] * (param.dim() - 1))
            param.addcdiv_(exp_avg * per_run, denom)


class _Objective(nn.Module):
    """A model and its hooks' regularisers: the loss ``optimisation_step`` minimises, as one module
    so that ``functional_call`` swaps in a run's tensors for both."""

    def __init__(self, model: nn.Module, regularized: list[Adapter]):
        super().__init__()
        self.model = model
        self.regularized = regularized  # a plain list: the hooks are already submodules of model

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        loss = F.mse_loss(self.model(x), y)
        for hook in self.regularized:
            loss = loss + hook.regularization()
        return loss


@dataclass
class _StackedLayer:
    """One AdaLoRA layer's P, Λ and Q of all runs, read by a :class:`RankAllocator` as an adapter."""

    P: Tensor
    Lambda: Tensor
    Q: Tensor
    init_rank: int
    keys: dict[str, str]  # triplet name -> the tensor's name in the stacked state

    def triplet(self) -> State:
        return {"P": self.P, "Lambda": self.Lambda, "Q": self.Q}

    def take_grads(self, grads: State) -> None:
        """The allocator reads ``p.grad``, as after ``backward``."""
        for name, tensor in self.triplet().items():
            tensor.grad = grads[self.keys[name]]


def _overrides(hook: object, hook_name: str) -> bool:
    return getattr(type(hook), hook_name) is not getattr(Adapter, hook_name)


def can_batch(hooks: list[Adapter]) -> bool:
    """Whether one run's adapters use only mechanisms this engine batches (an external adapter with
    an ``on_step`` of its own is trained by the sequential reference instead)."""
    return all(isinstance(hook, AdaLoRA) or not _overrides(hook, "on_step") for hook in hooks)


def _stacked_allocator(objective: _Objective, hooks: list[list[Adapter]], trainable: State) -> RankAllocator | None:
    """The runs' AdaLoRA budgets as one allocator over the stacked triplets (None without AdaLoRA).

    Any other ``on_step`` is a ValueError: the batched engine runs only the mechanisms it knows.
    """
    stepping = [[hook for hook in run if _overrides(hook, "on_step")] for run in hooks]
    if not stepping[0]:
        return None
    if not all(isinstance(hook, AdaLoRA) for run in stepping for hook in run):
        raise ValueError("the batched engine knows AdaLoRA's on_step only; train other hooks with nfl.training.train")
    allocators = [run[0].allocator for run in stepping]
    schedules = {(a.target_rank, a.tinit, a.tfinal, a.deltaT, a.beta1, a.beta2) for a in allocators}
    if len(schedules) > 1:
        raise ValueError(f"batched AdaLoRA runs need one budget schedule, got {sorted(schedules, key=str)}")
    first = stepping[0][0].allocator
    schedule = {name: getattr(first, name) for name in ("tinit", "tfinal", "deltaT", "beta1", "beta2")}
    stacked = RankAllocator(first.target_rank, **schedule)
    paths = {id(module): path for path, module in objective.named_modules()}
    for adapter in first.adapters:
        keys = {name: f"{paths[id(adapter)]}.{name}" for name in ("P", "Lambda", "Q")}
        stacked.register(_StackedLayer(*(trainable[key] for key in keys.values()), adapter.init_rank, keys))
    return stacked


def _check_runs(models: list[nn.Module], hooks: list[list[Adapter]], data: list[Dataset], lrs: list[float]) -> None:
    if not models or not len(models) == len(hooks) == len(data) == len(lrs):
        counts = f"{len(models)}, {len(hooks)}, {len(data)}, {len(lrs)}"
        raise ValueError(f"train_batched needs as many models, hook lists, datasets and lrs (>= 1), got {counts}")
    methods = {tuple(type(hook).__name__ for hook in run) for run in hooks}
    if len(methods) > 1:
        raise ValueError(f"train_batched stacks runs of one method, got hooks {sorted(methods)}")


def train_batched(
    models: list[nn.Module], hooks: list[list[Adapter]], data: list[Dataset], epochs: int, lrs: list[float]
) -> list[History]:
    """``[train(models[i], data[i], epochs, lrs[i], hooks[i]) for i in range(K)]``, in one pass.

    The runs must share shapes and method. Each run's trained parameters are written back into
    ``models[i]`` at the end (a diverged run's as they were after its last step), so studies read
    the adapted models as after ``train``; AdaLoRA's importance EMAs stay in the batched allocator.
    A run that stops being finite is recorded diverged at its step and frozen; the others go on.
    """
    _check_runs(models, hooks, data, lrs)
    regularized = [[hook for hook in run if _overrides(hook, "regularization")] for run in hooks]
    objectives = [_Objective(model, run) for model, run in zip(models, regularized)]
    params, buffers = stack_module_state(objectives)
    trainable_names = [name for name, p in objectives[0].named_parameters() if p.requires_grad]
    trainable = {name: params[name].detach().requires_grad_() for name in trainable_names}
    frozen = {name: p.detach() for name, p in params.items() if name not in trainable} | buffers
    model_state = {name.removeprefix("model."): t for name, t in (trainable | frozen).items()}
    allocator = _stacked_allocator(objectives[0], hooks, trainable)
    adam = StackedAdam(trainable, lrs)

    template = objectives[0]
    n_val = data[0].x_val.shape[0]
    x_train, y_train = torch.stack([d.x_train for d in data]), torch.stack([d.y_train for d in data])
    x_eval = torch.stack([torch.cat([d.x_val, d.x_test]) for d in data])
    y_val, y_test = torch.stack([d.y_val for d in data]), torch.stack([d.y_test for d in data])

    def loss(train_state: State, frozen_state: State, x: Tensor, y: Tensor) -> Tensor:
        return functional_call(template, (train_state, frozen_state), (x, y))

    def eval_losses(state: State, x: Tensor, y_v: Tensor, y_t: Tensor) -> Tensor:
        out = functional_call(template.model, state, (x,))
        return torch.stack([F.mse_loss(out[:n_val], y_v), F.mse_loss(out[n_val:], y_t)])

    batched_loss = vmap(loss)

    def loss_and_grads() -> tuple[State, Tensor]:
        losses = batched_loss(trainable, frozen, x_train, y_train)
        grads = torch.autograd.grad(losses.sum(), list(trainable.values()))
        return dict(zip(trainable, grads)), losses.detach()
    batched_eval = vmap(eval_losses)

    def evaluate() -> Tensor:  # with merged adapters, as nfl.training.evaluate
        with torch.no_grad(), merged(template.model):
            return batched_eval(model_state, x_eval, y_val, y_test)

    histories, frozen_at = _initial_histories(evaluate().tolist(), trainable)
    active = [i for i, h in enumerate(histories) if h.diverged_at is None]
    for step in range(epochs):
        if not active:
            break
        grads, train_loss = loss_and_grads()
        norms = torch.linalg.vector_norm(torch.stack([g.flatten(1).norm(dim=1) for g in grads.values()]), dim=0)
        adam.step(grads)
        if allocator is not None:
            for layer in allocator.adapters:
                layer.take_grads(grads)
            allocator.allocate(step, epochs)
        rows = torch.cat([train_loss[None], norms[None], evaluate().T]).T.tolist()
        active = [i for i in active if not _record(histories[i], rows[i], step, frozen_at, trainable, i)]
    _write_back(objectives, trainable, frozen_at)
    return histories


def _initial_histories(initial: list[list[float]], trainable: State) -> tuple[list[History], dict[int, State]]:
    """The losses before step 1; a run not finite there is diverged at 0 (never trained), as in ``train``."""
    histories, frozen_at = [], {}
    for i, (val, test) in enumerate(initial):
        if math.isfinite(val):
            histories.append(History(val_loss=[val], test_loss=[test]))
        else:
            histories.append(History(diverged_at=0))
            frozen_at[i] = {name: t[i].detach().clone() for name, t in trainable.items()}
    return histories, frozen_at


def _record(
    history: History, row: list[float], step: int, frozen_at: dict[int, State], trainable: State, i: int
) -> bool:
    """Append run i's step; True when it diverged there (its lists keep only finite values, as ``train``'s)."""
    lists = (history.train_loss, history.grad_norm, history.val_loss, history.test_loss)
    for values, value in zip(lists, row):
        values.append(value)
    if all(math.isfinite(value) for value in row):
        return False
    for values in lists:
        if not math.isfinite(values[-1]):
            values.pop()
    history.diverged_at = step + 1
    frozen_at[i] = {name: t[i].detach().clone() for name, t in trainable.items()}
    return True


@torch.no_grad()
def _write_back(objectives: list[_Objective], trainable: State, frozen_at: dict[int, State]) -> None:
    """Each run's trained (or frozen) tensors into its own model's parameters."""
    for i, objective in enumerate(objectives):
        final = frozen_at.get(i) or {name: t[i] for name, t in trainable.items()}
        named = dict(objective.named_parameters())
        for name, value in final.items():
            named[name].copy_(value)
