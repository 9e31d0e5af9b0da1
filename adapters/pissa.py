"""PiSSA (Meng et al., 2024, "PiSSA: Principal Singular Values and Singular Vectors Adaptation of
Large Language Models", §3).

W0 = U S V^T; B = U_r (S_r / s)^{1/2}, A = (S_r / s)^{1/2} V_r^T from the top r singular triplets,
and the frozen weight becomes the residual W_res = W0 - s B A, so W' = W_res + s B A starts at W0.

Follows PEFT's ``pissa_init`` (``init_lora_weights="pissa"`` / ``"pissa_niter_N"``): S_r is divided
by the scaling s = alpha / r first, so that s B A is exactly the top-r part of W0; ``niter`` replaces
the full SVD by ``torch.svd_lowrank(W0, q=r, niter=niter)``. The residual is computed from the
stored B and A, so the initialisation is exact either way. Deviation: PEFT takes the SVD in float32
and refuses float64 weights; here it is taken in float32, or in the weight's dtype when wider.
"""

from __future__ import annotations

import dataclasses

from torch import nn

from adapters.base import hparam, is_int, require
from adapters.lora import lora_count
from adapters.lowrank import ScaledHParams
from adapters.registry import register
from adapters.streams import Streams
from adapters.svd import SingularInit, singular_triplets


@dataclasses.dataclass(frozen=True)
class PiSSAHParams(ScaledHParams):
    niter: int | None = hparam(None, "None: full SVD; N: torch.svd_lowrank with N subspace iterations")

    def __post_init__(self) -> None:
        super().__post_init__()
        ok = self.niter is None or (is_int(self.niter) and self.niter >= 0)
        require(ok, f"needs niter = None (full SVD) or an integer >= 0, got {self.niter!r}")


@register(
    "pissa",
    label="PiSSA",
    hparams=PiSSAHParams,
    default_rank=2,
    param_count=lora_count,
    color="#E69F00",
    marker="^",
    reference="Meng et al. 2024; PEFT LoraLayer.pissa_init",
)
class PiSSA(SingularInit):
    def __init__(self, base: nn.Linear, rank: int, hp: PiSSAHParams, *, streams: Streams, shared: None = None):
        super().__init__(base, rank, hp.scaling(rank))
        self.init_from_triplets(base, *singular_triplets(self.base_weight, rank, True, hp.niter, streams.init))
