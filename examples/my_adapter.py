"""IA3 (Liu et al., 2022, "Few-Shot Parameter-Efficient Fine-Tuning is Better and Cheaper than
In-Context Learning", NeurIPS, §3.3): a learnt vector l rescales a layer's activations.

W' = W0 diag(l): l in R^k, initialised to ones so the layer starts as the base, scales the input of
the layer, y = W0 (l ⊙ x) + b (the paper's rescaling of the feed-forward activations; PEFT's
``IA3Config`` with ``feedforward_modules``). It has no rank: k parameters per layer.

An external adapter, registered without touching the repository:

    python -m adapters.check examples/my_adapter.py
    python -m studies.pareto --quick --adapter-module examples/my_adapter.py
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import adapters


@adapters.register(
    "ia3",
    label="IA3",
    hparams=adapters.HParams,  # no hyper-parameters
    default_rank=None,  # no rank: sweeps run it once
    param_count=lambda shapes, rank, hp: sum(k for d, k in shapes),
    color="#777777",
    marker="p",
    reference="Liu et al. 2022, §3.3; PEFT IA3Layer (feed-forward form)",
)
class IA3(adapters.Adapter):
    trainable_names = ("scaling_vector",)

    def __init__(self, base: nn.Linear, rank: None, hp: adapters.HParams, *, streams, shared=None):
        super().__init__(base)
        self.scaling_vector = nn.Parameter(torch.ones(self.in_features, **adapters.like(base)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x * self.scaling_vector, self.base_weight, self.bias)

    def merged_weight(self) -> torch.Tensor:
        return self.base_weight * self.scaling_vector
