"""MoS: factors assembled from shared shard pools, private shards, index draws, sizing, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import adapters
from nfl.model import MLP
from nfl.params import count_trainable
from tests.conftest import TwoLayer, perturb_

# float64: a wrong shard order or index is off by O(1), rounding by O(1e-15).
EXACT = 1e-12


def _layer(out_features: int = 12, in_features: int = 16) -> nn.Linear:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return nn.Linear(in_features, out_features, dtype=torch.float64)


def _square_mlp(width: int = 16) -> MLP:
    """The experiment's MLP shape (width -> width twice): both layers share one pool pair."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return MLP(width).double()


def _segments(matrix: torch.Tensor, shards_per_vector: int) -> torch.Tensor:
    """Rows of ``matrix`` cut into their l consecutive shards: (rows, l, length / l)."""
    return matrix.reshape(matrix.shape[0], shards_per_vector, -1)


def _is_pool_shard(segment: torch.Tensor, pool: torch.Tensor) -> bool:
    return any(torch.equal(segment, shard) for shard in pool)


def test_registry_entry() -> None:
    spec = adapters.get("mos")
    assert (spec.label, spec.default_rank) == ("MoS", 2)
    assert spec.hparam_defaults() == {"alpha": None, "pool_rank": None, "private_rank": None, "shards_per_vector": 2}
    # pool_rank * sum(d + k), independent of r given R_v: default pool_rank = r + 1.
    assert spec.expected_params([(12, 16), (10, 12)], 2) == 3 * (28 + 22)
    assert spec.expected_params([(64, 64)] * 2, 8) == 9 * 2 * 128
    assert (
        spec.expected_params([(12, 16)], 9, pool_rank=3) == spec.expected_params([(12, 16)], 2, pool_rank=3) == 3 * 28
    )


@pytest.mark.parametrize("rank,pool_rank,private_rank,l", [(2, 1, 0, 2), (4, 1, 0, 4), (3, 2, 1, 2), (5, 3, 2, 1)])
def test_rows_of_A_and_columns_of_B_are_concatenated_pool_shards(
    rank: int, pool_rank: int, private_rank: int, l: int
) -> None:
    adapter = adapters.build(
        "mos", _layer(), rank=rank, pool_rank=pool_rank, private_rank=private_rank, shards_per_vector=l, seed=0
    )
    perturb_(adapter)
    pool_A, pool_B = adapter.shard_pool_A, adapter.shard_pool_B
    assert pool_A.shape == (pool_rank * l, 16 // l) and pool_B.shape == (pool_rank * l, 12 // l)
    B, A = adapter.factors()
    assert A.shape == (rank, 16) and B.shape == (12, rank)
    for j in range(rank):
        for s in range(l):
            assert torch.equal(_segments(A, l)[j, s], pool_A[adapter.shard_index_A[j, s]])
            assert torch.equal(_segments(B.T, l)[j, s], pool_B[adapter.shard_index_B[j, s]])
    delta = adapter.delta_weight()
    assert (delta - adapter.scaling * B @ A).abs().max() < EXACT
    assert delta.abs().max() > 1e-3
    assert torch.linalg.matrix_rank(delta).item() <= rank


def test_one_pool_is_shared_by_layers_of_one_shape_and_counted_once() -> None:
    model = _square_mlp()
    first, second = adapters.attach(model, "mos", ["layer1", "layer2"], rank=3, pool_rank=2, private_rank=1)
    assert first.shard_pool_A is second.shard_pool_A and first.shard_pool_B is second.shard_pool_B
    # R_v L l = 2 * 2 * 2 shards of length 16 / 2 in each pool: R_v L (d + k) = 2 * 2 * 32 parameters.
    assert first.shard_pool_A.shape == first.shard_pool_B.shape == (8, 8)
    assert count_trainable(model) == 2 * 2 * 32 == adapters.get("mos").expected_params([(16, 16)] * 2, 3, pool_rank=2)
    # Both layers' gradients land in the one pool.
    perturb_(model)
    model(torch.randn(5, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))).square().sum().backward()
    used_by_second_only = set(second.shard_index_A.flatten().tolist()) - set(first.shard_index_A.flatten().tolist())
    assert used_by_second_only and all(first.shard_pool_A.grad[i].abs().sum() > 0 for i in used_by_second_only)


def test_private_shards_appear_in_no_other_layer() -> None:
    model = _square_mlp()
    first, second = adapters.attach(model, "mos", ["layer1", "layer2"], rank=4, pool_rank=3, private_rank=1, seed=2)
    perturb_(model)
    # Shards 0 .. (R_v - p) L l - 1 = 7 are shared; layer i owns 8 + 2i and 9 + 2i.
    for position, adapter in enumerate((first, second)):
        for index in (adapter.shard_index_A, adapter.shard_index_B):
            assert index[-1].tolist() == [8 + 2 * position, 9 + 2 * position]
            assert (index[:-1] < 8).all()
    for owner, other in ((first, second), (second, first)):
        for pool, index, factor in (
            (owner.shard_pool_A, owner.shard_index_A, lambda a: a.factors()[1]),
            (owner.shard_pool_B, owner.shard_index_B, lambda a: a.factors()[0].T),
        ):
            private = pool[index[-1]]
            # By value: no shard of the other layer's factor equals one of the owner's private shards.
            for segment in _segments(factor(other), 2).flatten(0, 1):
                assert not any(torch.equal(segment, shard) for shard in private)
            assert all(_is_pool_shard(segment, pool) for segment in _segments(factor(other), 2).flatten(0, 1))


def test_subset_selection_and_pair_dissociation() -> None:
    pairs_differ = False
    for seed in range(5):
        first, second = adapters.attach(_square_mlp(), "mos", ["layer1", "layer2"], rank=2, seed=seed)
        for adapter in (first, second):
            # R_v = 3, p = 1, l = 2, L = 2: 8 shared shards, each layer takes 2 of them, each once.
            for index in (adapter.shard_index_A, adapter.shard_index_B):
                shared = index[:-1].flatten().tolist()
                assert len(set(shared)) == 2 and all(i < 8 for i in shared)
            pairs_differ |= not torch.equal(adapter.shard_index_A, adapter.shard_index_B)
    assert pairs_differ, "A's and B's shard indices are drawn independently"


@pytest.mark.parametrize("layers", [1, 2])
def test_every_mechanism_acts_at_the_default_rank(layers: int) -> None:
    """The pool holds more shards than a layer's rank takes, so a layer draws a proper subset of
    the shared shards, none twice; the last rank is private; over seeds, layers share shards."""
    spec, overlapped = adapters.get("mos"), False
    names = ["layer1", "layer2"][:layers]
    for seed in range(10):
        attached = adapters.attach(_square_mlp(), "mos", names, seed=seed)
        for adapter in attached:
            pool_shards, l = adapter.shard_pool_A.shape[0], 2
            assert pool_shards > spec.default_rank * l, "the pool must be larger than what one layer takes"
            for index in (adapter.shard_index_A, adapter.shard_index_B):
                drawn = index.flatten().tolist()
                assert len(drawn) == len(set(drawn)), "no shard index drawn twice"
                shared_pool = pool_shards - layers * l  # p = 1 private rank of l shards per layer
                assert all(i < shared_pool for i in index[:-1].flatten().tolist())
                assert all(i >= shared_pool for i in index[-1].tolist()), "the last rank is private"
                assert len(index[:-1].flatten()) < shared_pool, "subset selection: a proper subset"
        if layers == 2:
            first, second = (set(a.shard_index_A[:-1].flatten().tolist()) for a in attached)
            overlapped |= bool(first & second)
    assert layers == 1 or overlapped, "layers sharing a pool should sometimes draw the same shard"


def test_one_layer_with_rank_above_pool_rank_draws_with_replacement() -> None:
    # Deviation from the reference (which refuses r > R_v on one layer): indices repeat.
    adapter = adapters.build("mos", _layer(), rank=6, pool_rank=1, seed=0)
    assert adapter.shard_index_A.shape == (6, 2) and set(adapter.shard_index_A.flatten().tolist()) == {0, 1}
    assert count_trainable(adapter) == 1 * (12 + 16)
    perturb_(adapter)
    assert torch.linalg.matrix_rank(adapter.delta_weight()).item() <= 6


def test_default_private_rank_follows_the_reference_where_the_pool_allows() -> None:
    one = adapters.build("mos", _layer(), rank=2, pool_rank=1, seed=0)  # p = 0: p = 1 would leave no shared shard
    assert one.shard_pool_A.shape[0] == 2 and (one.shard_index_A < 2).all()
    first = adapters.build("mos", _layer(), rank=1, seed=0)  # r = 1: p = 0, or no rank would be shared
    assert first.shard_pool_A.shape[0] == 4 and (first.shard_index_A < 4).all()
    eight = adapters.build("mos", _layer(), rank=8, seed=0)  # R_v = 9: p = 1, the last rank private
    assert eight.shard_index_A[-1].tolist() == [16, 17] and (eight.shard_index_A[:-1] < 16).all()


def test_layers_of_different_shapes_get_pools_of_their_own() -> None:
    model = TwoLayer(torch.float64)
    first, second = adapters.attach(model, "mos", ["layer1", "layer2"], rank=2)
    assert first.shard_pool_A.shape == (6, 8) and second.shard_pool_A.shape == (6, 6)
    assert count_trainable(model) == 3 * (12 + 16) + 3 * (10 + 12)


@pytest.mark.parametrize(
    "hparams,message",
    [
        (
            {"shards_per_vector": 5},
            "MoS needs shards_per_vector to divide in_features = 16 and out_features = 12, got 5",
        ),
        ({"shards_per_vector": 3}, "shards_per_vector to divide"),
        ({"pool_rank": 0}, "pool_rank >= 1, got 0"),
        ({"pool_rank": 2, "private_rank": 3}, r"0 <= private_rank <= min\(rank, pool_rank\) = 2, got 3"),
        ({"rank": 3, "pool_rank": 2, "private_rank": 2}, "no shared shards, so it needs rank = 2, got 3"),
        ({"rank": 0}, "MoS needs 1 <= rank, got 0"),
    ],
)
def test_bad_arguments_are_clear_errors(hparams: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        adapters.build("mos", _layer(), **hparams)
