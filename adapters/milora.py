"""MiLoRA (Wang et al., 2025, "MiLoRA: Harnessing Minor Singular Components for Parameter-Efficient
LLM Finetuning", NAACL, method section and Fig. 1).

PiSSA's construction on the other end of the spectrum: B = U_r S_r^{1/2}, A = S_r^{1/2} V_r^T from
the r *smallest* singular triplets, and the frozen weight is the principal part W0 - B A.

Follows the reference ``svd_init.py`` (sufenlp/MiLoRA, mode "min"): a full SVD (a randomised one
finds the largest components, not the smallest), lora_alpha = r so the scaling is 1, and the residual
W0 - s B A computed from the factors actually stored.
"""

from __future__ import annotations

from torch import nn

from adapters.base import HParams
from adapters.lora import lora_count
from adapters.registry import register
from adapters.streams import Streams
from adapters.svd import SingularInit, singular_triplets


@register(
    "milora",
    label="MiLoRA",
    hparams=HParams,
    default_rank=2,
    param_count=lora_count,
    color="#33BBEE",
    marker="v",
    reference="Wang et al. 2025; sufenlp/MiLoRA svd_init.py",
)
class MiLoRA(SingularInit):
    def __init__(self, base: nn.Linear, rank: int, hp: HParams, *, streams: Streams, shared: None = None):
        super().__init__(base, rank, scaling=1.0)
        self.init_from_triplets(base, *singular_triplets(self.base_weight, rank, False, None, streams.init))
