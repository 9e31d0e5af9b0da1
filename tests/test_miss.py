"""MiSS (original, eq. 2-3) and MiSS^e (efficient, eq. 4-7): structure, oracles, cost, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import adapters
from adapters.base import Adapter
from adapters.probe import largest_tensor_in_step
from tests.conftest import TwoLayer, perturb_

# float64 throughout: a wrong index pattern is off by O(1), rounding by O(1e-15).
EXACT = 1e-12


def _layer(out_features: int, in_features: int) -> nn.Linear:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return nn.Linear(in_features, out_features, dtype=torch.float64)


def _perturbed(method: str, layer: nn.Linear, rank: int) -> Adapter:
    adapter = adapters.build(method, layer, rank=rank, seed=0)
    perturb_(adapter)
    return adapter


def _x(in_features: int, batch: int = 7) -> torch.Tensor:
    return torch.randn(batch, in_features, generator=torch.Generator().manual_seed(3), dtype=torch.float64)


def test_default_ranks_and_labels() -> None:
    assert (adapters.get("miss").default_rank, adapters.get("miss").label) == (4, "MiSS")
    assert (adapters.get("miss_e").default_rank, adapters.get("miss_e").label) == (4, "MiSS^e")


# --- MiSS^e -----------------------------------------------------------------------------------


@pytest.mark.parametrize("d,k,r", [(12, 16, 4), (12, 16, 5), (6, 10, 4), (12, 16, 1), (12, 16, 16), (3, 16, 7)])
def test_miss_e_columns_repeat_with_period_r(d: int, k: int, r: int) -> None:
    adapter = _perturbed("miss_e", _layer(d, k), r)
    assert adapter.D.shape == (r, d)
    delta = adapter.delta_weight()
    assert delta.shape == (d, k)
    # The first period is D^T; every later column (the truncated last period included) repeats it.
    assert torch.allclose(delta[:, :r], adapter.D.T, rtol=0, atol=EXACT)
    for c in range(k):
        assert torch.allclose(delta[:, c], delta[:, c % r], rtol=0, atol=EXACT), c


@pytest.mark.parametrize("d,k,r", [(12, 16, 4), (12, 16, 5), (6, 10, 4), (12, 16, 16)])
def test_miss_e_forward_equals_explicit_delta_oracle(d: int, k: int, r: int) -> None:
    layer = _layer(d, k)
    adapter = _perturbed("miss_e", layer, r)
    # The paper's ΔW written out entry by entry: ΔW[o, c] = D[c mod r, o].
    delta = torch.tensor([[adapter.D[c % r, o].item() for c in range(k)] for o in range(d)], dtype=torch.float64)
    x = _x(k)
    expected = x @ (layer.weight + delta).T + layer.bias
    assert (adapter(x) - expected).abs().max() < EXACT
    assert (adapter(x) - layer(x)).abs().max() > 1e-3


@pytest.mark.parametrize("d,k,N", [(12, 16, 4), (12, 16, 5), (10, 6, 3), (12, 16, 1), (12, 16, 12), (7, 3, 7)])
def test_miss_rows_are_constant_within_each_shard(d: int, k: int, N: int) -> None:
    adapter = _perturbed("miss", _layer(d, k), N)
    assert adapter.D.shape == (N, k)
    delta = adapter.delta_weight()
    assert delta.shape == (d, k)
    # Shards are contiguous runs of rows, together covering all d rows, sizes differing by <= 1.
    shards = [torch.nonzero(adapter.shard_of_row == i).flatten() for i in range(N)]
    sizes = [len(rows) for rows in shards]
    assert sum(sizes) == d and max(sizes) - min(sizes) <= 1 and min(sizes) >= 1
    start = 0
    for i, rows in enumerate(shards):
        assert torch.equal(rows, torch.arange(start, start + len(rows)))
        start += len(rows)
        # Every row of shard i is row i of D.
        assert torch.allclose(delta[rows], adapter.D[i].expand(len(rows), k), rtol=0, atol=EXACT)


def test_miss_forward_equals_explicit_expand_oracle() -> None:
    layer = _layer(10, 6)
    adapter = _perturbed("miss", layer, 3)
    # d = 10 over N = 3 shards: rows 0-3, 4-6, 7-9.
    expanded = torch.cat([adapter.D[0].repeat(4, 1), adapter.D[1].repeat(3, 1), adapter.D[2].repeat(3, 1)])
    x = _x(6)
    assert (adapter(x) - (x @ (layer.weight + expanded).T + layer.bias)).abs().max() < EXACT


def test_miss_e_equals_miss_when_their_updates_coincide() -> None:
    # With r = 1 MiSS^e adds the column vector D^T to every column; MiSS with N = d and D = the
    # same value broadcast over k is the same ΔW. Two independent code paths, one function.
    layer = _layer(12, 16)
    efficient = _perturbed("miss_e", layer, 1)
    original = adapters.build("miss", layer, rank=12)
    with torch.no_grad():
        original.D.copy_(efficient.D.T.expand(12, 16))
    x = _x(16)
    assert (efficient(x) - original(x)).abs().max() < EXACT


# --- cost: MiSS^e never forms a d x k matrix ------------------------------------------------


@pytest.mark.parametrize("r", [4, 5])
def test_miss_e_forward_and_backward_never_form_a_d_by_k_tensor(r: int) -> None:
    d, k, batch = 12, 16, 7  # batch * padded k = 7 * 20 = 140 < d * k = 192
    layer = _layer(d, k)
    assert largest_tensor_in_step(_perturbed("miss_e", layer, r), _x(k, batch)) < d * k
    # The same probe does see the original form's dense expand(D), so it can fail.
    assert largest_tensor_in_step(_perturbed("miss", layer, r), _x(k, batch)) >= d * k


# --- clear errors -----------------------------------------------------------------------------


@pytest.mark.parametrize("rank,bound", [(0, ""), (17, " <= in_features = 16"), (-1, "")])
def test_miss_e_rank_outside_1_to_k_is_a_value_error(rank: int, bound: str) -> None:
    with pytest.raises(ValueError, match=rf"MiSS\^e needs 1 <= rank{bound}, got {rank}"):
        adapters.build("miss_e", TwoLayer().layer1, rank=rank)


@pytest.mark.parametrize("rank,bound", [(0, ""), (13, " <= out_features = 12")])
def test_miss_rank_outside_1_to_d_is_a_value_error(rank: int, bound: str) -> None:
    with pytest.raises(ValueError, match=rf"MiSS needs 1 <= rank{bound}, got {rank}"):
        adapters.build("miss", TwoLayer().layer1, rank=rank)


def test_rank_bounds_are_inclusive_and_per_dimension() -> None:
    layer = TwoLayer().layer1  # d = 12, k = 16
    assert adapters.build("miss_e", layer, rank=16).D.shape == (16, 12)  # r may exceed d, not k
    assert adapters.build("miss", layer, rank=12).D.shape == (12, 16)
    with pytest.raises(ValueError, match="integer rank"):
        adapters.build("miss", layer, rank=2.0)
