"""ProLoRA (Wang et al., 2024, "PRoLoRA: Partial Rotation Empowers More Parameter-Efficient LoRA",
ACL, §3): LoRA whose factors share chunks within the layer.

W' = W0 + (alpha / r) B A with A = [Roll(A0, 0) ... Roll(A0, (m-1) s_A) ; A_u] and B likewise: of
the r ranks, r' = r - u are shared: A0 in R^{r' x ceil(k/m)} is broadcast m times along k and
B0 in R^{ceil(d/n) x r'} n times along d (broadcast reduction), chunk t rotated along the rank axis
by t times the base stride s_A = max(floor(r'/m), 1), s_B = max(floor(r'/n), 1) (rotation
enhancement), the result truncated to k (d); u ranks are unshared rows A_u of A and columns B_u of
B (partially-sharing refinement). Rectified initialisation: A0 and A_u ~ U(+-1/sqrt(k)), the fan-in
being the full k rather than the chunk's; B0 and B_u are zero.

Follows the reference code (Forence1999/PRoLoRA ``modules/chunkwise_sharing_LoRA.py``,
``de_reduce``): rank i of chunk t is rank (i + t s) mod r' of the shared chunk (torch.roll by
-t s), the unshared ranks come after the shared ones, the scaling is alpha / r over all r ranks.
alpha defaults to r (scaling 1), as for LoRA here. With u = r, or m = n = 1, this is LoRA.

Defaults: u = 0, the reference's ``unshared_r`` default, so at the default rank 2 the shared rank
r' = 2 and the rotation acts (a roll of a single shared rank is the identity); m = n = 2.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

from adapters.base import hparam, is_int, like, require
from adapters.lowrank import LowRank, ScaledHParams
from adapters.registry import register
from adapters.streams import Streams


@dataclasses.dataclass(frozen=True)
class ProLoRAHParams(ScaledHParams):
    unshared_rank: int = hparam(0, "u: ranks with their own full rows of A and columns of B")
    m: int = hparam(2, "sharing rate of A: A0 is broadcast m times along the input")
    n: int = hparam(2, "sharing rate of B: B0 is broadcast n times along the output")

    def __post_init__(self) -> None:
        super().__post_init__()
        ok = is_int(self.unshared_rank) and self.unshared_rank >= 0
        require(ok, f"needs an integer unshared_rank >= 0, got {self.unshared_rank!r}")
        for name in ("m", "n"):
            value = getattr(self, name)
            require(is_int(value) and value >= 1, f"needs an integer sharing rate {name} >= 1, got {value!r}")


def _broadcast_rotated(chunk: torch.Tensor, copies: int, stride: int, rank_dim: int, length: int) -> torch.Tensor:
    """``copies`` copies of ``chunk`` side by side along the other axis, copy t rolled by -t * stride
    along ``rank_dim``, truncated to ``length``."""
    chunk_dim = 1 - rank_dim
    rotated = [chunk.roll(-t * stride, dims=rank_dim) for t in range(copies)]
    return torch.cat(rotated, dim=chunk_dim).narrow(chunk_dim, 0, length)


def _param_count(shapes: list[tuple[int, int]], rank: int, hp: ProLoRAHParams) -> int:
    shared_rank, u = rank - hp.unshared_rank, hp.unshared_rank
    return sum(shared_rank * (math.ceil(k / hp.m) + math.ceil(d / hp.n)) + u * (d + k) for d, k in shapes)


@register(
    "prolora",
    label="ProLoRA",
    hparams=ProLoRAHParams,
    default_rank=2,
    param_count=_param_count,
    color="#CC79A7",
    marker="X",
    reference="Wang et al. 2024; Forence1999/PRoLoRA modules/chunkwise_sharing_LoRA.py",
)
class ProLoRA(LowRank):
    trainable_names = ("A0", "B0", "A_u", "B_u")

    def __init__(self, base: nn.Linear, rank: int, hp: ProLoRAHParams, *, streams: Streams, shared: None = None):
        super().__init__(base, rank, hp.scaling(rank))
        d, k = self.out_features, self.in_features
        self.m, self.n = hp.m, hp.n
        shared_rank, unshared_rank = rank - hp.unshared_rank, hp.unshared_rank
        self.stride_A = max(shared_rank // hp.m, 1)
        self.stride_B = max(shared_rank // hp.n, 1)
        bound = 1 / math.sqrt(k)  # rectified: the fan-in of the whole row, not of a chunk
        A0, A_u = (
            torch.empty(shared_rank, math.ceil(k / hp.m), **like(base)),
            torch.empty(unshared_rank, k, **like(base)),
        )
        self.A0 = nn.Parameter(A0.uniform_(-bound, bound, generator=streams.init))
        self.A_u = nn.Parameter(A_u.uniform_(-bound, bound, generator=streams.init))
        self.B0 = nn.Parameter(torch.zeros(math.ceil(d / hp.n), shared_rank, **like(base)))
        self.B_u = nn.Parameter(torch.zeros(d, unshared_rank, **like(base)))

    @classmethod
    def check(cls, out_features: int, in_features: int, rank: int, hp: ProLoRAHParams) -> None:
        require(hp.unshared_rank <= rank, f"needs 0 <= unshared_rank <= rank = {rank}, got {hp.unshared_rank}")

    def factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, A): the rotated broadcasts of B0 (d x r') and A0 (r' x k), then the unshared ranks."""
        A_shared = _broadcast_rotated(self.A0, self.m, self.stride_A, rank_dim=0, length=self.in_features)
        B_shared = _broadcast_rotated(self.B0, self.n, self.stride_B, rank_dim=1, length=self.out_features)
        return torch.cat([B_shared, self.B_u], dim=1), torch.cat([A_shared, self.A_u], dim=0)
