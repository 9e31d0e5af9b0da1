"""Where an update lives: the rank of ΔW, its singular subspaces, how they relate to W0's."""

from __future__ import annotations

import dataclasses
import math
from copy import deepcopy
from dataclasses import dataclass

import torch
from torch import nn


def merged_weight_of(layer: nn.Module) -> torch.Tensor:
    """The dense weight a layer computes with: an adapter's ``merged_weight()``, a Linear's weight."""
    merge = getattr(layer, "merged_weight", None)
    return merge() if callable(merge) else layer.weight


@torch.no_grad()
def update_rank_bound(layer: nn.Module, generator: torch.Generator) -> int:
    """The largest rank ΔW = W' - W0 can reach through the trainable parameters of ``layer``, an
    adapter as built (or a Linear, for full fine-tuning).

    Measured, not declared: in a float64 copy, every trainable parameter gets N(0, 1) noise and ΔW
    is the change of the merged weight from the layer's initial one, which every method makes
    equal to W0 (subtracting it, rather than W0, cancels the rounding of a stored residual such as
    PiSSA's). The rank of a polynomial (or analytic) parameterisation is maximal for almost every
    parameter value, so one draw finds the bound: r for LoRA's BA, 2r for PiSSA's BA - B0A0, the
    number of shards for MiSS, min(d, k) for DoRA's rescaled rows and for a plain Linear -- and
    what no formula states, such as the rank MoS loses to shard indices drawn twice. float64
    because a product of random float32 factors (VeRA's) can fall below float32's rank tolerance.
    """
    copy = deepcopy(layer).double()
    initial = merged_weight_of(copy).clone()
    for p in copy.parameters():
        if p.requires_grad:
            p.add_(torch.randn(p.shape, generator=generator, dtype=p.dtype, device=generator.device).to(p.device))
    return int(torch.linalg.matrix_rank(merged_weight_of(copy) - initial))


def rounding_level(delta: torch.Tensor, W0: torch.Tensor) -> float:
    """The size of the rounding in an update ΔW = W' - W0 held in ``delta``'s dtype:
    max(d, k) * eps * max(||W0||_2, ||W'||_2), the scale of the weights it is the difference of."""
    W0 = W0.double()
    scale = max(float(torch.linalg.matrix_norm(W, ord=2)) for W in (W0, W0 + delta.double()))
    return max(delta.shape) * torch.finfo(delta.dtype).eps * scale


def update_rank(delta: torch.Tensor, W0: torch.Tensor) -> int:
    """The numerical rank of ΔW: its singular values above :func:`rounding_level` (a tolerance
    relative to ΔW alone would count the rounding of a small update to a large weight as rank)."""
    return int(torch.linalg.matrix_rank(delta.double(), atol=rounding_level(delta, W0), rtol=0.0))


def top_singular_vectors(M: torch.Tensor, r: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(U_r, V_r): orthonormal bases (d x r, k x r) of M's top-r left and right singular subspaces
    (the SVD taken in float64)."""
    U, _, Vh = torch.linalg.svd(M.double(), full_matrices=False)
    return U[:, :r], Vh[:r].T


def bottom_left_singular_vectors(M: torch.Tensor, r: int) -> torch.Tensor:
    """An orthonormal basis (d x r) of M's r minor left singular directions (MiLoRA's subspace)."""
    U, _, _ = torch.linalg.svd(M.double(), full_matrices=True)
    return U[:, -r:]


def random_subspace(d: int, r: int, generator: torch.Generator) -> torch.Tensor:
    """An orthonormal basis (d x r) of a uniformly random r-dimensional subspace of R^d: the Q of a
    Gaussian matrix's QR decomposition."""
    gaussian = torch.randn(d, r, generator=generator, dtype=torch.float64, device=generator.device)
    return torch.linalg.qr(gaussian).Q


def subspace_similarity(A: torch.Tensor, B: torch.Tensor) -> float:
    """Normalised subspace similarity phi(A, B) = ||A^T B||_F^2 / min(r_A, r_B) between orthonormal
    bases A (d x r_A) and B (d x r_B) (LoRA, Hu et al. 2022, §7.2; MiLoRA §5.3).

    1 when one subspace contains the other, 0 when they are orthogonal, r / d on average for two
    random r-dimensional subspaces of R^d.
    """
    overlap = torch.linalg.matrix_norm(A.double().T @ B.double()) ** 2
    return float(overlap / min(A.shape[1], B.shape[1]))


@dataclass(frozen=True)
class Amplification:
    """How strongly ΔW amplifies directions of W0 (LoRA §7.3 and Table 7; MiLoRA §5.3, Table 7).

    With U, V the top-r left / right singular vectors of ΔW: ``projected_W0`` = ||U^T W0 V||_F,
    ``projected_delta`` = ||U^T ΔW V||_F, ``delta`` = ||ΔW||_F, and the amplification factor
    ||ΔW||_F / ||U^T W0 V||_F -- large when ΔW emphasises directions W0 barely uses.
    """

    projected_W0: float
    projected_delta: float
    delta: float

    @property
    def factor(self) -> float:
        return self.delta / self.projected_W0 if self.projected_W0 > 0 else math.inf

    def to_dict(self) -> dict[str, float]:
        return {**dataclasses.asdict(self), "amplification": self.factor}


def amplification(W0: torch.Tensor, delta: torch.Tensor, r: int) -> Amplification:
    """:class:`Amplification` of the update ``delta`` to ``W0`` in ΔW's top-r singular subspace."""
    U, V = top_singular_vectors(delta, r)
    W0, delta = W0.double(), delta.double()
    return Amplification(
        projected_W0=float(torch.linalg.matrix_norm(U.T @ W0 @ V)),
        projected_delta=float(torch.linalg.matrix_norm(U.T @ delta @ V)),
        delta=float(torch.linalg.matrix_norm(delta)),
    )
