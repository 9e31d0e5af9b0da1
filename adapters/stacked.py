"""K training runs of one adapted model at once: stacked tensors, vmapped losses, one backward pass.

At small widths a step is almost all framework overhead, so K runs of one method -- other seeds
(pretrained weights, data, adapter initialisation) and other learning rates, the same shapes -- are
stacked along a leading run dimension (``torch.func.stack_module_state``) and trained together: the
K losses by ``torch.func.vmap`` over ``functional_call`` of :func:`adapters.step.objective`, their
gradients by one backward pass of their sum (the runs share no tensor, so run i's slice of the
gradient is its own loss's; 20-30% cheaper than ``vmap(grad_and_value(...))``, which differentiates
inside the vmap), Adam on the stacked tensors, and each method's ``on_step`` mechanism through its
contract hook ``Adapter.stacked_on_step``. Each run's numbers equal :func:`adapters.step.step`'s
alone up to rounding (batched matrix products sum in another order).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from adapters.base import Adapter, merged
from adapters.step import LossFn, objective

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
    """A model with its adapters and the task loss, as one module so that ``functional_call`` swaps
    in a run's tensors for the model and the regularisers alike."""

    def __init__(self, model: nn.Module, hooks: list[Adapter], loss_fn: LossFn):
        super().__init__()
        self.model = model
        self.hooks = hooks  # a plain list: the adapters are already submodules of model
        self.loss_fn = loss_fn

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return objective(self.model, self.hooks, self.loss_fn, x, y)


def unstackable(hooks: Sequence[Adapter]) -> list[str]:
    """The adapter classes among ``hooks`` with an ``on_step`` but no stacked form (empty: the run
    can be trained stacked)."""
    return sorted({type(h).__name__ for h in hooks if type(h).overrides("on_step")
                   and not type(h).overrides("stacked_on_step")})


class StackedRuns:
    """``models[i]`` with its adapters ``hooks[i]`` trained at ``lrs[i]``, for every i at once.

    :meth:`step` takes each run's own batch (inputs stacked along a leading run dim); the runs'
    trained tensors live in :attr:`trainable` until :meth:`write_back` copies a state (by default the
    current one) into each run's own model."""

    def __init__(self, models: list[nn.Module], hooks: list[list[Adapter]], lrs: Sequence[float], loss_fn: LossFn):
        if not models or not len(models) == len(hooks) == len(lrs):
            counts = f"{len(models)}, {len(hooks)}, {len(lrs)}"
            raise ValueError(f"stacked runs need as many models, hook lists and lrs (>= 1), got {counts}")
        methods = {tuple(type(hook).__name__ for hook in run) for run in hooks}
        if len(methods) > 1:
            raise ValueError(f"stacked runs are runs of one method, got hooks {sorted(methods)}")
        refused = unstackable(hooks[0])
        if refused:
            raise ValueError(f"{', '.join(refused)} has an on_step but no stacked_on_step: train it sequentially")
        self.objectives = [_Objective(model, run, loss_fn) for model, run in zip(models, hooks)]
        params, buffers = stack_module_state(self.objectives)
        names = [name for name, p in self.objectives[0].named_parameters() if p.requires_grad]
        self.trainable: State = {name: params[name].detach().requires_grad_() for name in names}
        frozen = {name: p.detach() for name, p in params.items() if name not in self.trainable} | buffers
        self._frozen = frozen
        self._model_state = {name.removeprefix("model."): t for name, t in (self.trainable | frozen).items()}
        self.adam = StackedAdam(self.trainable, lrs)
        template = self.objectives[0]
        self._losses = vmap(lambda train, fixed, x, y: functional_call(template, (train, fixed), (x, y)))
        self._paths = {id(module): path for path, module in template.named_modules()}
        self._mechanisms = self._stacked_hooks(hooks)

    def stacked(self, module: nn.Module, name: str) -> Tensor:
        """The (K, ...) trainable tensor of parameter ``name`` of run 0's ``module``."""
        return self.trainable[f"{self._paths[id(module)]}.{name}"]

    def _stacked_hooks(self, hooks: list[list[Adapter]]) -> list[Callable[[int, int], None]]:
        """Each stepping adapter class's ``stacked_on_step`` over the runs, once per class."""
        mechanisms = []
        for cls in dict.fromkeys(type(h) for h in hooks[0] if type(h).overrides("on_step")):
            runs = [[h for h in run if type(h) is cls] for run in hooks]
            mechanism = cls.stacked_on_step(runs, self.stacked)
            if mechanism is not None:
                mechanisms.append(mechanism)
        return mechanisms

    def step(self, x: Tensor, y: Tensor, step: int, total_steps: int) -> tuple[Tensor, list[Tensor]]:
        """One optimisation step of every run on its own (x[i], y[i]): the K losses (detached) and
        the gradients of the stacked trainable tensors, before the update."""
        losses = self._losses(self.trainable, self._frozen, x, y)
        grads = torch.autograd.grad(losses.sum(), list(self.trainable.values()))
        self.adam.step(dict(zip(self.trainable, grads)))
        if self._mechanisms:
            for tensor, grad in zip(self.trainable.values(), grads):
                tensor.grad = grad
            for mechanism in self._mechanisms:
                mechanism(step, total_steps)
        return losses.detach(), list(grads)

    @torch.no_grad()
    def evaluate(self, fn: Callable[..., Tensor], *inputs: Tensor) -> Tensor:
        """``fn(model, *inputs[i])`` for every run i at once, every adapter merged and no gradient:
        ``model(x)`` inside ``fn`` is run i's model."""
        template = self.objectives[0].model

        def one(state: State, *args: Tensor) -> Tensor:
            return fn(lambda x: functional_call(template, state, (x,)), *args)

        with merged(template):
            return vmap(one)(self._model_state, *inputs)

    def snapshot(self) -> State:
        """A copy of every run's trainable tensors as they are now."""
        return {name: t.detach().clone() for name, t in self.trainable.items()}

    @torch.no_grad()
    def write_back(self, state: State | None = None) -> None:
        """Each run's slice of ``state`` (default: the current tensors) into its own model."""
        state = self.trainable if state is None else state
        for i, obj in enumerate(self.objectives):
            named = dict(obj.named_parameters())
            for name, value in state.items():
                named[name].copy_(value[i])
