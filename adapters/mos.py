"""MoS (Wang et al., 2025, "MoS: Unleashing Parameter Efficiency of Low-Rank Adaptation with Mixture
of Shards", ICLR, §3): LoRA whose factors are assembled from shard pools shared across layers.

W' = W0 + (alpha / r) B A, A_j = [Pool_A[i_A(j, 1)], ..., Pool_A[i_A(j, l)]] (and B's columns from
Pool_B): only the pools train, Pool_A of shards of length k / l and Pool_B of length d / l, holding
R_v * L * l shards each for the L layers that share them (R_v = ``pool_rank``, the equivalent rank),
so the count is R_v * L * (d + k), independent of r. Each layer draws fixed random shard indices at
init (subset selection), A's and B's independently (pair dissociation); each rank vector is the
concatenation of l = ``shards_per_vector`` shards (vector sharding); its last p = ``private_rank``
ranks use shards that layer alone owns (shard privatisation). Init: Pool_A ~ U(+-1/sqrt(k)) (the
fan-in of a whole row), Pool_B = 0.

Follows the reference code (Forence1999/MoS ``modules/Tied_LoRA.py``): of each pool's R_v L l
shards, the first (R_v - p) L l are shared and the rest split into p l private shards per layer;
a layer takes (r - p) l distinct shared shards (a random subset) then its p l private ones, and
rank vector j is the concatenation of index entries j l ... j l + l - 1. The reference keeps one
pool pair per projection type (layers of one shape, shared across depth); here layers of the same
(d, k) share a pool pair, so in the experiment's MLP (64 -> 64 twice) ``targets="all"`` gives one
pool shared by both layers, and layers of different shapes get pools of their own.

Defaults: R_v = max(1, r // 2); p = 1 (the reference's default) when R_v >= 2 and 0 otherwise,
because with p = R_v the reference admits no shared shards and then requires r = R_v.
Deviation: the reference requires r - p <= (R_v - p) L (it refuses r > R_v on a single layer, where
MoS would be a permuted LoRA); when the shared shards are too few, the shared indices are drawn with
replacement instead, which keeps MoS's sharing with one adapted layer.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
from torch import nn

from adapters.base import like, require_rank
from adapters.lora import LoRA, require_alpha
from adapters.registry import register


def pool_rank_for(rank: int, pool_rank: int | None) -> int:
    """R_v: the given pool rank, or max(1, r // 2) by default."""
    return max(1, rank // 2) if pool_rank is None else pool_rank


def private_rank_for(pool_rank: int, private_rank: int | None) -> int:
    """p: the given private rank, or the reference's 1 where it leaves shared shards (else 0)."""
    return min(1, pool_rank - 1) if private_rank is None else private_rank


class ShardPool(NamedTuple):
    """One pool pair, shared by ``owners`` (the layers of one shape; a layer's position in it
    chooses its private shards)."""

    A: nn.Parameter  # (R_v L l) x (k / l): a shard per row
    B: nn.Parameter  # (R_v L l) x (d / l)
    owners: tuple[nn.Linear, ...]


def shard_indices(rank: int, private_rank: int, pool_rank: int, pool: ShardPool, layer: nn.Linear, shards_per_vector: int, generator: torch.Generator) -> torch.Tensor:
    """(r, l) pool indices for one factor of ``layer``: row j lists the shards of rank vector j."""
    l, owners = shards_per_vector, len(pool.owners)
    position = next(i for i, owner in enumerate(pool.owners) if owner is layer)
    shared_shards = (pool_rank - private_rank) * owners * l
    needed = (rank - private_rank) * l
    if needed <= shared_shards:  # subset selection, as the reference: no shard twice
        shared = torch.randperm(shared_shards, generator=generator, device=generator.device)[:needed]
    else:  # deviation (module docstring): too few shared shards, draw with replacement
        shared = torch.randint(shared_shards, (needed,), generator=generator, device=generator.device)
    first_private = shared_shards + position * private_rank * l
    private = torch.arange(first_private, first_private + private_rank * l, device=generator.device)
    return torch.cat([shared, private]).view(rank, l)


@register(
    "mos",
    label="MoS",
    default_rank=2,
    param_count=lambda shapes, rank, pool_rank, private_rank, shards_per_vector, alpha: pool_rank_for(rank, pool_rank) * sum(d + k for d, k in shapes),
    reference="Wang et al. 2025; Forence1999/MoS modules/Tied_LoRA.py",
)
class MoS(LoRA):
    trainable_names = ("shard_pool_A", "shard_pool_B")

    def __init__(
        self,
        base: nn.Linear,
        rank: int,
        *,
        generator: torch.Generator,
        shared: dict[tuple[int, int], ShardPool] | None = None,
        pool_rank: int | None = None,
        private_rank: int | None = None,
        shards_per_vector: int = 2,
        alpha: float | None = None,
    ):
        hparams = {"pool_rank": pool_rank, "private_rank": private_rank, "shards_per_vector": shards_per_vector}
        self.check_arguments(base.out_features, base.in_features, rank, alpha=alpha, **hparams)
        self.init_low_rank(base, rank, alpha)
        if shared is None:
            shared = self.make_shared([base], rank, generator, **hparams)
        pool = shared[(self.out_features, self.in_features)]
        # The pools are registered in every adapter that uses them; model.parameters() counts them once.
        self.shard_pool_A, self.shard_pool_B = pool.A, pool.B
        R_v = pool_rank_for(rank, pool_rank)
        p = private_rank_for(R_v, private_rank)
        draw = (rank, p, R_v, pool, base, shards_per_vector, generator)
        self.register_buffer("shard_index_A", shard_indices(*draw).to(base.weight.device))
        self.register_buffer("shard_index_B", shard_indices(*draw).to(base.weight.device))

    @classmethod
    def check_arguments(
        cls, out_features: int, in_features: int, rank: int, *, pool_rank: int | None = None, private_rank: int | None = None, shards_per_vector: int = 2, alpha: float | None = None
    ) -> None:
        require_rank(cls.label(), rank, 1, None)
        l = shards_per_vector
        if isinstance(l, bool) or not isinstance(l, int) or l < 1 or in_features % l or out_features % l:
            raise ValueError(f"{cls.label()} needs shards_per_vector to divide in_features = {in_features} and out_features = {out_features}, got {l!r}")
        R_v = pool_rank_for(rank, pool_rank)
        if isinstance(R_v, bool) or not isinstance(R_v, int) or R_v < 1:
            raise ValueError(f"{cls.label()} needs an integer pool_rank >= 1, got {pool_rank!r}")
        p = private_rank_for(R_v, private_rank)
        if isinstance(p, bool) or not isinstance(p, int) or not 0 <= p <= min(rank, R_v):
            raise ValueError(f"{cls.label()} needs 0 <= private_rank <= min(rank, pool_rank) = {min(rank, R_v)}, got {private_rank!r}")
        if p == R_v and rank != R_v:
            raise ValueError(f"{cls.label()} with private_rank = pool_rank = {R_v} has no shared shards, so it needs rank = {R_v}, got {rank}")
        require_alpha(cls.label(), alpha)

    @classmethod
    def make_shared(cls, layers: list[nn.Linear], rank: int, generator: torch.Generator, *, pool_rank: int | None, shards_per_vector: int, **hparams: Any) -> dict[tuple[int, int], ShardPool]:
        """One trainable pool pair per layer shape (d, k), sized for the layers of that shape."""
        l, R_v = shards_per_vector, pool_rank_for(rank, pool_rank)
        pools = {}
        for d, k in dict.fromkeys((layer.out_features, layer.in_features) for layer in layers):
            owners = tuple(layer for layer in layers if (layer.out_features, layer.in_features) == (d, k))
            shards = R_v * len(owners) * l
            bound = 1 / math.sqrt(k)  # the fan-in of a whole row of A, l shards long
            A = nn.Parameter(torch.empty(shards, k // l, **like(layers[0])).uniform_(-bound, bound, generator=generator))
            B = nn.Parameter(torch.zeros(shards, d // l, **like(layers[0])))
            pools[(d, k)] = ShardPool(A, B, owners)
        return pools

    def factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, A): row j of A (column j of B) is its l indexed shards laid end to end."""
        A = self.shard_pool_A[self.shard_index_A].reshape(self.rank, self.in_features)
        B = self.shard_pool_B[self.shard_index_B].reshape(self.rank, self.out_features).T
        return B, A
