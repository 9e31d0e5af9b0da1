"""LoRA (Hu et al., 2022, "LoRA: Low-Rank Adaptation of Large Language Models", eq. 3).

W' = W0 + (alpha / r) B A, with A in R^{r x k} Kaiming-uniform (a = sqrt(5), as PEFT's default
``init_lora_weights=True``) and B in R^{d x r} zero, so the adapted layer starts as the base.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from adapters.base import like
from adapters.lowrank import LowRank, ScaledHParams
from adapters.registry import register
from adapters.streams import Streams


def lora_count(shapes: list[tuple[int, int]], rank: int, hp: object) -> int:
    """r (d + k) per layer: B and A."""
    return sum(rank * (d + k) for d, k in shapes)


@register(
    "lora",
    label="LoRA",
    hparams=ScaledHParams,
    default_rank=2,
    param_count=lora_count,
    color="#0072B2",
    marker="o",
    reference="Hu et al. 2022; PEFT LoraLayer",
)
class LoRA(LowRank):
    trainable_names = ("lora_A", "lora_B")

    def __init__(self, base: nn.Linear, rank: int, hp: ScaledHParams, *, streams: Streams, shared: None = None):
        super().__init__(base, rank, hp.scaling(rank))
        self.lora_A = nn.Parameter(torch.empty(rank, self.in_features, **like(base)))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5), generator=streams.init)
        self.lora_B = nn.Parameter(torch.zeros(self.out_features, rank, **like(base)))
