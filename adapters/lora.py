"""LoRA (Hu et al., 2022, "LoRA: Low-Rank Adaptation of Large Language Models", eq. 3).

W' = W0 + (alpha / r) B A, with A in R^{r x k} Kaiming-uniform (a = sqrt(5), as PEFT's default
``init_lora_weights=True``) and B in R^{d x r} zero, so the adapted layer starts as the base.
"""

from __future__ import annotations

import math

import torch
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

    def lora_delta(self) -> torch.Tensor:
        """(alpha / r) B A, the low-rank update as a dense d x k matrix."""
        return self.scaling * (self.lora_B @ self.lora_A)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base_forward(x) + (x @ self.lora_A.T @ self.lora_B.T) * self.scaling

    def merged_weight(self) -> torch.Tensor:
        return self.base_weight + self.lora_delta()
