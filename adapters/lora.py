"""LoRA (Hu et al., 2022, "LoRA: Low-Rank Adaptation of Large Language Models", eq. 3).

W' = W0 + (alpha / r) B A, with A in R^{r x k} Kaiming-uniform (a = sqrt(5), as PEFT's default
``init_lora_weights=True``) and B in R^{d x r} zero, so the adapted layer starts as the base.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from adapters.base import Adapter, like, require_rank


def require_alpha(label: str, alpha: float | None) -> None:
    """alpha is None (meaning r) or positive: the scaling alpha / r must be a positive number."""
    if alpha is not None and not alpha > 0:
        raise ValueError(f"{label} needs alpha > 0, got {alpha}")
from adapters.registry import register


@register(
    "lora",
    label="LoRA",
    default_rank=2,
    param_count=lambda shapes, rank, alpha: sum(rank * (d + k) for d, k in shapes),
    reference="Hu et al. 2022; PEFT LoraLayer",
)
class LoRA(Adapter):
    trainable_names = ("lora_A", "lora_B")

    def __init__(self, base: nn.Linear, rank: int, *, generator: torch.Generator, shared: None = None, alpha: float | None = None):
        self.check_arguments(base.out_features, base.in_features, rank, alpha=alpha)
        self.init_low_rank(base, rank, alpha)
        self.lora_A = nn.Parameter(torch.empty(rank, self.in_features, **like(base)))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5), generator=generator)
        self.lora_B = nn.Parameter(torch.zeros(self.out_features, rank, **like(base)))

    def init_low_rank(self, base: nn.Linear, rank: int, alpha: float | None) -> None:
        """What the whole family shares before creating its own factors: the contract's set-up,
        r and the scaling alpha / r (alpha defaults to r, so the scaling to 1)."""
        Adapter.__init__(self, base)
        self.rank = rank
        self.scaling = (rank if alpha is None else alpha) / rank

    @classmethod
    def check_arguments(cls, out_features: int, in_features: int, rank: int, **hparams) -> None:
        require_rank(cls.label(), rank, 1, None)
        require_alpha(cls.label(), hparams.get("alpha"))

    # Methods whose update is a scaled product of two thin factors (PiSSA, DoRA, VeRA, ProLoRA,
    # AdaLoRA, MoS) subclass LoRA and override these two hooks instead of forward/merge.

    def factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, A) with the update (alpha / r) B A; B is d x r, A is r x k."""
        return self.lora_B, self.lora_A

    @property
    def frozen_weight(self) -> torch.Tensor:
        """The frozen weight the update is added to: W0 here, a residual for PiSSA / MiLoRA."""
        return self.base_weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, A = self.factors()
        return F.linear(x, self.frozen_weight, self.bias) + (x @ A.T @ B.T) * self.scaling

    def merged_weight(self) -> torch.Tensor:
        B, A = self.factors()
        return self.frozen_weight + self.scaling * (B @ A)
