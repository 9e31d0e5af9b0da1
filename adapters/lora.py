"""LoRA (Hu et al., 2022, "LoRA: Low-Rank Adaptation of Large Language Models", eq. 3).

W' = W0 + (alpha / r) B A, with A in R^{r x k} Kaiming-uniform (a = sqrt(5), as PEFT's default
``init_lora_weights=True``) and B in R^{d x r} zero, so the adapted layer starts as the base.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from adapters.base import Adapter
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
        super().__init__(base)
        self.check_arguments(self.out_features, self.in_features, rank, alpha=alpha)
        self.rank = rank
        self.scaling = (rank if alpha is None else alpha) / rank
        like = {"dtype": base.weight.dtype, "device": base.weight.device}
        self.lora_A = nn.Parameter(torch.empty(rank, self.in_features, **like))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5), generator=generator)
        self.lora_B = nn.Parameter(torch.zeros(self.out_features, rank, **like))

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
