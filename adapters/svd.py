"""The singular-value initialisation PiSSA and MiLoRA share: B = U_r (S_r / s)^{1/2},
A = (S_r / s)^{1/2} V_r^T from r kept triplets, the rest of W0 frozen as a residual."""

from __future__ import annotations

import torch
from torch import nn

from adapters.base import like, require_rank_at_most
from adapters.lowrank import LowRank


def _seed_from(generator: torch.Generator) -> int:
    """A seed drawn from ``generator``, for library calls that only use the global RNG."""
    return int(torch.randint(2**62, (), generator=generator, device=generator.device))


def singular_triplets(
    weight: torch.Tensor, rank: int, principal: bool, niter: int | None, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(U_r, S_r, V_r^T) of the r largest (``principal``) or smallest triplets: a full SVD, or
    ``torch.svd_lowrank`` with ``niter`` iterations (largest only), taken in float32 or wider."""
    weight = weight.to(torch.promote_types(weight.dtype, torch.float32))
    if niter is None:
        U, S, Vh = torch.linalg.svd(weight, full_matrices=False)
        kept = slice(0, rank) if principal else slice(S.numel() - rank, None)
        return U[:, kept], S[kept], Vh[kept]
    # svd_lowrank draws its Gaussian sketch from the global RNG: seed it from our generator.
    device = weight.device
    with torch.random.fork_rng(devices=[] if device.type == "cpu" else [device], device_type=device.type):
        torch.manual_seed(_seed_from(generator))
        U, S, V = torch.svd_lowrank(weight, q=rank, niter=niter)
    return U, S, V.T


class SingularInit(LowRank):
    """Trained factors lora_B, lora_A set from singular triplets of W0, and the residual kept."""

    trainable_names = ("lora_A", "lora_B")

    @classmethod
    def check(cls, out_features: int, in_features: int, rank: int, hp: object) -> None:
        require_rank_at_most(rank, min(out_features, in_features), "min(out, in)")

    def init_from_triplets(self, base: nn.Linear, U_r: torch.Tensor, S_r: torch.Tensor, Vh_r: torch.Tensor) -> None:
        # S_r is divided by the scaling first, so that s B A is exactly the kept part of W0.
        root = (S_r / self.scaling).sqrt()
        self.lora_A = nn.Parameter((root[:, None] * Vh_r).to(**like(base)))
        self.lora_B = nn.Parameter((U_r * root).to(**like(base)))
        self.keep_residual()
