"""The adapter contract (docs/design.md, "The adapter contract").

An adapter wraps one frozen ``nn.Linear`` (weight W0, out x in = d x k, bias b) and is itself an
``nn.Module``. It never mutates the layer it is given: W0 and b are held as detached buffers
(methods that rewrite the base weight, such as PiSSA's residual, keep their own copy). Its
hyper-parameters are a frozen :class:`HParams` dataclass, validated once when it is built.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from adapters.streams import Streams


@dataclasses.dataclass(frozen=True)
class HParams:
    """Base of every method's hyper-parameters: a frozen dataclass whose fields carry help text
    (``hparam``) and whose ``__post_init__`` raises ``ValueError("needs ...")`` on a bad value
    (the registry prefixes the method's label)."""


def hparam(default: Any, help: str) -> Any:
    """A hyper-parameter field: its default and the help text a command line can show."""
    return dataclasses.field(default=default, metadata={"help": help})


def require(condition: bool, message: str) -> None:
    """Raise ``ValueError(message)`` unless ``condition``; messages read "needs ..., got ..."."""
    if not condition:
        raise ValueError(message)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class Adapter(nn.Module):
    """Base of every per-layer adapter.

    Subclasses declare their trainable tensors in ``trainable_names`` (tests hold this equal to
    the set of parameters with ``requires_grad``), are built as ``cls(base, rank, hp, streams=...,
    shared=...)`` by the registry (which has validated ``rank`` and ``hp`` with :meth:`check`),
    implement ``forward`` (the method's own, efficient computation) and ``merged_weight`` (the
    dense W' with forward(x) == x W'^T + b), and may override ``regularization`` and ``on_step``.
    """

    trainable_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, base: nn.Linear):
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"{type(self).__name__} wraps an nn.Linear, got {type(base).__name__}")
        self.in_features = base.in_features
        self.out_features = base.out_features
        # Detached views: frozen, sharing storage with the pretrained layer, never written to.
        self.register_buffer("base_weight", base.weight.detach())
        self.register_buffer("bias", None if base.bias is None else base.bias.detach())

    # --- before anything is built ---------------------------------------------------------

    @classmethod
    def check(cls, out_features: int, in_features: int, rank: int | None, hp: HParams) -> None:
        """Raise ``ValueError("needs ...")`` if this rank cannot go on a d x k layer; the registry
        has already checked that rank is an integer >= 1 (or None for a method without one)."""

    @classmethod
    def make_shared(cls, layers: list[nn.Linear], rank: int | None, hp: HParams, streams: Streams) -> Any:
        """State shared by all adapted layers (VeRA's projections, MoS's pools, ...); none by default."""
        return None

    # --- the computation ------------------------------------------------------------------

    def base_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The pretrained layer's output, x W0^T + b."""
        return F.linear(x, self.base_weight, self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def merged_weight(self) -> torch.Tensor:  # pragma: no cover - abstract
        """The dense W' such that forward(x) == F.linear(x, W', b)."""
        raise NotImplementedError

    def delta_weight(self) -> torch.Tensor:
        """W' - W0: the update the adapter has made to the pretrained weight."""
        return self.merged_weight() - self.base_weight

    def merged_forward(self, x: torch.Tensor) -> torch.Tensor:
        """x W'^T + b: the layer as it is deployed once merged, what :func:`merged` evaluates with."""
        return F.linear(x, self.merged_weight(), self.bias)

    # --- training hooks, no-ops by default -------------------------------------------------

    def regularization(self) -> torch.Tensor | None:
        """An extra loss term (e.g. AdaLoRA's orthogonality penalty), or None."""
        return None

    def on_step(self, step: int, total_steps: int) -> None:
        """Called after each optimiser step, gradients still present (e.g. AdaLoRA's allocation)."""

    @classmethod
    def stacked_on_step(
        cls, runs: list[list[Adapter]], stacked: Callable[[nn.Module, str], torch.Tensor]
    ) -> Callable[[int, int], None] | None:
        """``on_step`` for K runs of this method trained at once (:mod:`adapters.stacked`): the runs'
        adapters of this class (``runs[i]``: run i's, in model order) and ``stacked(module, name)``,
        the (K, ...) tensor of parameter ``name`` of run 0's ``module``, whose ``.grad`` holds the K
        runs' gradients after each backward pass. Returns a callable ``(step, total_steps)`` that acts
        on every run as its own ``on_step`` would, or None when the class has no ``on_step``. A class
        with an ``on_step`` but no stacked form cannot be trained stacked (``adapters.check`` says so)."""
        return None

    @classmethod
    def overrides(cls, hook: str) -> bool:
        """Whether this class defines its own ``hook`` (``regularization``, ``on_step``, ...)."""
        return inspect.getattr_static(cls, hook) is not inspect.getattr_static(Adapter, hook)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


@contextmanager
def merged(model: nn.Module) -> Iterator[nn.Module]:
    """Inside the block every adapter of ``model`` computes as its merged dense layer
    (:meth:`Adapter.merged_forward`). It is the same function (forward(x) == x W'^T + b is the
    contract): for evaluation at the base layer's cost, where the method's own forward pays its side
    path on every row of a large batch; and for the Hessian (:mod:`nfl.sharpness`), where gradient
    tricks of a forward such as DoRA's detached norm would make the operator asymmetric."""
    hooks = [module for module in model.modules() if isinstance(module, Adapter)]
    for hook in hooks:
        hook.forward = hook.merged_forward  # an instance attribute: nn.Module calls it in place of the class's
    try:
        yield model
    finally:
        for hook in hooks:
            del hook.forward


def like(layer: nn.Linear) -> dict[str, torch.dtype | torch.device]:
    """dtype and device of ``layer``'s weight: adapter tensors are created to match them."""
    return {"dtype": layer.weight.dtype, "device": layer.weight.device}


def require_rank_at_most(rank: int, high: int, bound: str) -> None:
    """``ValueError("needs 1 <= rank <= <bound> = high, got rank")`` when rank exceeds ``high``."""
    require(rank <= high, f"needs 1 <= rank <= {bound} = {high}, got {rank}")
