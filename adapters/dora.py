"""DoRA (Liu et al., 2024, "DoRA: Weight-Decomposed Low-Rank Adaptation", ICML, §4.1 eq. 5, §4.3).

W' = diag(m / ||W0 + s B A||_row) (W0 + s B A): LoRA updates the direction, a trainable magnitude
m in R^d (one per output row, initialised to ||W0||_row) rescales it; the bias is not rescaled.

Follows PEFT's ``use_dora=True`` (``DoraLinearLayer``): the norm is taken over each output row of
the out x in weight, m is initialised to the norm of W0 + s B A (= ||W0||_row, as B = 0), and in
forward the norm is detached, i.e. treated as a constant (the paper's §4.3 memory saving), so no
gradient flows through it. merged_weight gives the same values, the norm simply not detached.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from adapters.lora import LoRA
from adapters.lowrank import ScaledHParams
from adapters.registry import register
from adapters.streams import Streams


@register(
    "dora",
    label="DoRA",
    hparams=ScaledHParams,
    default_rank=1,
    param_count=lambda shapes, rank, hp: sum(rank * (d + k) + d for d, k in shapes),
    color="#D55E00",
    marker="P",
    dense_update="DoRA takes the row norms of W0 + sBA, as its paper and PEFT do",
    reference="Liu et al. 2024; PEFT DoraLinearLayer",
)
class DoRA(LoRA):
    trainable_names = ("lora_A", "lora_B", "magnitude")

    def __init__(self, base: nn.Linear, rank: int, hp: ScaledHParams, *, streams: Streams, shared: None = None):
        super().__init__(base, rank, hp, streams=streams)
        self.magnitude = nn.Parameter(self.row_norm().detach())

    def row_norm(self) -> torch.Tensor:
        """||W0 + s B A|| over each output row (length d)."""
        return torch.linalg.vector_norm(super().merged_weight(), dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, A = self.factors()
        # DoRA §4.3 (and PEFT): the norm is a constant for backprop; computing it without a graph
        # is the same as detaching it, and spares the d x k intermediate's autograd state.
        with torch.no_grad():
            norm = self.row_norm()
        directional = F.linear(x, self.base_weight) + (x @ A.T @ B.T) * self.scaling
        out = (self.magnitude / norm) * directional
        return out if self.bias is None else out + self.bias

    def merged_weight(self) -> torch.Tensor:
        directional = super().merged_weight()
        return (self.magnitude / torch.linalg.vector_norm(directional, dim=1))[:, None] * directional
