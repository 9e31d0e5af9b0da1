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
(d, k) share a pool pair, so in the experiment's MLP (64 -> 64 twice) both layers share one pool.

Defaults, chosen so that every mechanism acts at the MiSS paper's rank 2 on one layer and on two:
p = 1, the reference's ``valid_param_private_r`` (0 where a private rank would leave no shared
rank or shard); R_v = r + 1, the smallest pool with more shared shards than a layer takes, (R_v - p) L l
> (r - p) l for every L >= 1, so a layer's shared shards are a proper random subset (at r = 2, one
layer: 2 of 4) drawn without replacement, and layers sharing a pool may draw the same shards. An LLM
reaches this with R_v < r because L is large; with one or two layers the pool must exceed the rank,
so MoS costs (r + 1)(d + k) here, more than LoRA at the same rank: the price of its mechanism on a
small model. Deviation: the reference refuses r - p > (R_v - p) L; here such a pool is drawn from
with replacement instead.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import torch
from torch import nn

from adapters.base import hparam, is_int, like, require
from adapters.lowrank import LowRank, ScaledHParams
from adapters.registry import register
from adapters.streams import Streams


@dataclasses.dataclass(frozen=True)
class MoSHParams(ScaledHParams):
    pool_rank: int | None = hparam(None, "R_v, the equivalent rank: R_v L l shards per pool; default: rank + 1")
    private_rank: int | None = hparam(None, "p: ranks built from a layer's private shards; default: 1 (0 at rank 1)")
    shards_per_vector: int = hparam(2, "l: shards concatenated into one rank vector; must divide d and k")

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("pool_rank", "private_rank"):
            value = getattr(self, name)
            low = 1 if name == "pool_rank" else 0
            ok = value is None or (is_int(value) and value >= low)
            require(ok, f"needs an integer {name} >= {low}, got {value!r}")
        l = self.shards_per_vector
        require(is_int(l) and l >= 1, f"needs an integer shards_per_vector >= 1, got {l!r}")

    def pool_rank_for(self, rank: int) -> int:
        """R_v: the given pool rank, or r + 1."""
        return rank + 1 if self.pool_rank is None else self.pool_rank

    def private_rank_for(self, rank: int) -> int:
        """p: the given private rank, or 1 where that leaves shared shards and ranks, else 0."""
        return min(1, rank - 1, self.pool_rank_for(rank) - 1) if self.private_rank is None else self.private_rank


class ShardPool(NamedTuple):
    """One pool pair, shared by ``owners`` (the layers of one shape; a layer's position in it
    chooses its private shards)."""

    A: nn.Parameter  # (R_v L l) x (k / l): a shard per row
    B: nn.Parameter  # (R_v L l) x (d / l)
    owners: tuple[nn.Linear, ...]


def shard_indices(
    rank: int, hp: MoSHParams, pool: ShardPool, layer: nn.Linear, generator: torch.Generator
) -> torch.Tensor:
    """(r, l) pool indices for one factor of ``layer``: row j lists the shards of rank vector j."""
    l, owners, p = hp.shards_per_vector, len(pool.owners), hp.private_rank_for(rank)
    position = next(i for i, owner in enumerate(pool.owners) if owner is layer)
    shared_shards = (hp.pool_rank_for(rank) - p) * owners * l
    needed = (rank - p) * l
    if needed <= shared_shards:  # subset selection, as the reference: no shard twice
        shared = torch.randperm(shared_shards, generator=generator, device=generator.device)[:needed]
    else:  # deviation (module docstring): too few shared shards, draw with replacement
        shared = torch.randint(shared_shards, (needed,), generator=generator, device=generator.device)
    first_private = shared_shards + position * p * l
    private = torch.arange(first_private, first_private + p * l, device=generator.device)
    return torch.cat([shared, private]).view(rank, l)


@register(
    "mos",
    label="MoS",
    hparams=MoSHParams,
    default_rank=2,
    param_count=lambda shapes, rank, hp: hp.pool_rank_for(rank) * sum(d + k for d, k in shapes),
    color="#882255",
    marker="h",
    reference="Wang et al. 2025; Forence1999/MoS modules/Tied_LoRA.py",
)
class MoS(LowRank):
    trainable_names = ("shard_pool_A", "shard_pool_B")

    def __init__(
        self, base: nn.Linear, rank: int, hp: MoSHParams, *, streams: Streams, shared: dict[tuple[int, int], ShardPool]
    ):
        super().__init__(base, rank, hp.scaling(rank))
        pool = shared[(self.out_features, self.in_features)]
        # The pools are registered in every adapter that uses them; model.parameters() counts them once.
        self.shard_pool_A, self.shard_pool_B = pool.A, pool.B
        device = base.weight.device
        self.register_buffer("shard_index_A", shard_indices(rank, hp, pool, base, streams.index).to(device))
        self.register_buffer("shard_index_B", shard_indices(rank, hp, pool, base, streams.index).to(device))

    @classmethod
    def check(cls, out_features: int, in_features: int, rank: int, hp: MoSHParams) -> None:
        l, R_v, p = hp.shards_per_vector, hp.pool_rank_for(rank), hp.private_rank_for(rank)
        divides = in_features % l == 0 and out_features % l == 0
        require(divides, f"needs shards_per_vector to divide in_features = {in_features} "
                         f"and out_features = {out_features}, got {l}")
        require(p <= min(rank, R_v), f"needs 0 <= private_rank <= min(rank, pool_rank) = {min(rank, R_v)}, got {p}")
        require(p < R_v or rank == R_v,
                f"with private_rank = pool_rank = {R_v} has no shared shards, so it needs rank = {R_v}, got {rank}")

    @classmethod
    def make_shared(
        cls, layers: list[nn.Linear], rank: int, hp: MoSHParams, streams: Streams
    ) -> dict[tuple[int, int], ShardPool]:
        """One trainable pool pair per layer shape (d, k), sized for the layers of that shape."""
        l, R_v = hp.shards_per_vector, hp.pool_rank_for(rank)
        pools = {}
        for d, k in dict.fromkeys((layer.out_features, layer.in_features) for layer in layers):
            owners = tuple(layer for layer in layers if (layer.out_features, layer.in_features) == (d, k))
            shards = R_v * len(owners) * l
            bound = 1 / math.sqrt(k)  # the fan-in of a whole row of A, l shards long
            A = torch.empty(shards, k // l, **like(layers[0])).uniform_(-bound, bound, generator=streams.init)
            B = torch.zeros(shards, d // l, **like(layers[0]))
            pools[(d, k)] = ShardPool(nn.Parameter(A), nn.Parameter(B), owners)
        return pools

    def factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, A): row j of A (column j of B) is its l indexed shards laid end to end."""
        A = self.shard_pool_A[self.shard_index_A].reshape(self.rank, self.in_features)
        B = self.shard_pool_B[self.shard_index_B].reshape(self.rank, self.out_features).T
        return B, A
