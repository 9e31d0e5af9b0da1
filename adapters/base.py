"""The adapter contract (DESIGN.md, "The adapter contract").

An adapter wraps one frozen ``nn.Linear`` (weight W0, out x in = d x k, bias b) and is itself an
``nn.Module``. It never mutates the layer it is given: W0 and b are held as detached buffers
(methods that rewrite the base weight, such as PiSSA's residual, keep their own copy).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn


class Adapter(nn.Module):
    """Base of every per-layer adapter.

    Subclasses declare their trainable tensors in ``trainable_names`` (tests hold this equal to
    the set of parameters with ``requires_grad``), implement ``forward`` (the method's own,
    efficient computation) and ``merged_weight`` (the dense W' with forward(x) == x W'^T + b),
    and may override the training hooks ``regularization`` and ``on_step``.
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

    # --- argument checks, callable before anything is built (sweeps validate up front) -------

    @classmethod
    def check_arguments(cls, out_features: int, in_features: int, rank: int, **hparams: Any) -> None:
        """Raise ValueError naming the violated constraint; the default asks for rank >= 1."""
        require_rank(cls.label(), rank, 1, None)

    @classmethod
    def make_shared(cls, layers: list[nn.Linear], rank: int, generator: torch.Generator, **hparams: Any) -> Any:
        """State shared by all adapted layers (VeRA's projections, MoS's pools, ...); none by default."""
        return None

    @classmethod
    def label(cls) -> str:
        return getattr(cls, "display_label", cls.__name__)

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

    # --- training hooks, no-ops by default -------------------------------------------------

    def regularization(self) -> torch.Tensor | None:
        """An extra loss term (e.g. AdaLoRA's orthogonality penalty), or None."""
        return None

    def on_step(self, step: int, total_steps: int) -> None:
        """Called after each optimiser step, gradients still present (e.g. AdaLoRA's allocation)."""

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


def like(layer: nn.Linear) -> dict[str, torch.dtype | torch.device]:
    """dtype and device of ``layer``'s weight: adapter tensors are created to match them."""
    return {"dtype": layer.weight.dtype, "device": layer.weight.device}


def require_rank(label: str, rank: int, low: int, high: int | None, bound: str = "") -> None:
    """Raise ``ValueError("<label> needs low <= rank <= bound = high, got rank")`` when out of range."""
    if not isinstance(rank, int) or isinstance(rank, bool):
        raise ValueError(f"{label} needs an integer rank, got {rank!r}")
    if rank < low or (high is not None and rank > high):
        upper = "" if high is None else f" <= {bound + ' = ' if bound else ''}{high}"
        raise ValueError(f"{label} needs {low} <= rank{upper}, got {rank}")
