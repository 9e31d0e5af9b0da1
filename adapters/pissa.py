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

from typing import ClassVar

import torch
from torch import nn

from adapters.base import like, require_rank
from adapters.lora import LoRA, require_alpha
from adapters.registry import register


def _seed_from(generator: torch.Generator) -> int:
    """A seed drawn from ``generator``, for library calls that only use the global RNG."""
    return int(torch.randint(2**62, (), generator=generator, device=generator.device))


@register(
    "pissa",
    label="PiSSA",
    default_rank=2,
    param_count=lambda shapes, rank, alpha, niter: sum(rank * (d + k) for d, k in shapes),
    reference="Meng et al. 2024; PEFT LoraLayer.pissa_init",
)
class PiSSA(LoRA):
    # Which end of the spectrum the adapter takes: the r largest triplets (MiLoRA: the r smallest).
    principal: ClassVar[bool] = True

    def __init__(
        self,
        base: nn.Linear,
        rank: int,
        *,
        generator: torch.Generator,
        shared: None = None,
        alpha: float | None = None,
        niter: int | None = None,
    ):
        self.check_arguments(base.out_features, base.in_features, rank, alpha=alpha, niter=niter)
        self.init_low_rank(base, rank, alpha)
        U_r, S_r, Vh_r = self.singular_triplets(generator, niter)
        root = (S_r / self.scaling).sqrt()
        self.lora_A = nn.Parameter((root[:, None] * Vh_r).to(**like(base)))
        self.lora_B = nn.Parameter((U_r * root).to(**like(base)))
        with torch.no_grad():
            # From the stored factors, so that residual + s B A == W0 up to one rounding.
            self.register_buffer("residual", self.base_weight - self.scaling * (self.lora_B @ self.lora_A))

    @classmethod
    def check_arguments(cls, out_features: int, in_features: int, rank: int, *, alpha: float | None = None, niter: int | None = None) -> None:
        require_rank(cls.label(), rank, 1, min(out_features, in_features), bound="min(out, in)")
        require_alpha(cls.label(), alpha)
        if niter is not None and (isinstance(niter, bool) or not isinstance(niter, int) or niter < 0):
            raise ValueError(f"{cls.label()} needs niter = None (full SVD) or an integer >= 0, got {niter!r}")

    def singular_triplets(self, generator: torch.Generator, niter: int | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(U_r, S_r, V_r^T) of the r kept triplets: full SVD, or randomised with ``niter`` iterations."""
        weight = self.base_weight.to(torch.promote_types(self.base_weight.dtype, torch.float32))
        if niter is None:
            U, S, Vh = torch.linalg.svd(weight, full_matrices=False)
            kept = slice(0, self.rank) if self.principal else slice(S.numel() - self.rank, None)
            return U[:, kept], S[kept], Vh[kept]
        # svd_lowrank draws its Gaussian sketch from the global RNG: seed it from our generator.
        device = weight.device
        with torch.random.fork_rng(devices=[] if device.type == "cpu" else [device], device_type=device.type):
            torch.manual_seed(_seed_from(generator))
            U, S, V = torch.svd_lowrank(weight, q=self.rank, niter=niter)
        return U, S, V.T

    @property
    def frozen_weight(self) -> torch.Tensor:
        """The residual W0 - s B A_init: the update is added to it, not to W0."""
        return self.residual
