"""ProLoRA: rotated broadcast chunks, unshared ranks, rectified init, LoRA as a special case, errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import adapters
from nfl.params import count_trainable
from tests.conftest import perturb_

# float64: a wrong rotation or chunk boundary is off by O(1), rounding by O(1e-15).
EXACT = 1e-12


def _layer(out_features: int = 12, in_features: int = 16) -> nn.Linear:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return nn.Linear(in_features, out_features, dtype=torch.float64)


def _perturbed(**hparams) -> adapters.base.Adapter:
    adapter = adapters.build("prolora", _layer(), seed=0, **hparams)
    perturb_(adapter)
    return adapter


def _oracle_factors(adapter) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, A) entry by entry, as the reference's de_reduce: rank i of chunk t is rank (i + t s) mod r'."""
    d, k, r, u = adapter.out_features, adapter.in_features, adapter.rank, adapter.A_u.shape[0]
    shared = r - u
    chunk_k, chunk_d = adapter.A0.shape[1], adapter.B0.shape[0]
    s_A, s_B = max(shared // adapter.m, 1), max(shared // adapter.n, 1)
    A = torch.zeros(r, k, dtype=torch.float64)
    B = torch.zeros(d, r, dtype=torch.float64)
    for i in range(shared):
        for c in range(k):
            t, j = divmod(c, chunk_k)
            A[i, c] = adapter.A0[(i + t * s_A) % shared, j]
        for o in range(d):
            t, j = divmod(o, chunk_d)
            B[o, i] = adapter.B0[j, (i + t * s_B) % shared]
    A[shared:] = adapter.A_u.detach()
    B[:, shared:] = adapter.B_u.detach()
    return B, A


def test_registry_entry() -> None:
    spec = adapters.get("prolora")
    assert (spec.label, spec.default_rank) == ("ProLoRA", 2)
    # u = 0, the reference's default: at the default rank 2 both ranks are shared and rotate.
    assert spec.hparam_defaults() == {"alpha": None, "unshared_rank": 0, "m": 2, "n": 2}
    # r' (ceil(k/m) + ceil(d/n)) + u (d + k), worked by hand: 4 (6 + 6) + 1 (12 + 16) = 76.
    assert spec.expected_params([(12, 16)], 5, unshared_rank=1, m=3, n=2) == 76


@pytest.mark.parametrize(
    "rank,unshared_rank,m,n",
    [(2, 1, 2, 2), (5, 1, 3, 2), (6, 2, 2, 5), (4, 0, 4, 3), (3, 1, 1, 1), (7, 1, 16, 12)],
)
def test_shared_chunks_repeat_rotated(rank: int, unshared_rank: int, m: int, n: int) -> None:
    adapter = _perturbed(rank=rank, unshared_rank=unshared_rank, m=m, n=n)
    assert adapter.A0.shape == (rank - unshared_rank, math.ceil(16 / m))
    assert adapter.B0.shape == (math.ceil(12 / n), rank - unshared_rank)
    B, A = adapter.factors()
    B_oracle, A_oracle = _oracle_factors(adapter)
    assert torch.equal(A, A_oracle) and torch.equal(B, B_oracle)
    delta = adapter.delta_weight()
    assert (delta - adapter.scaling * B_oracle @ A_oracle).abs().max() < EXACT
    assert delta.abs().max() > 1e-3  # perturbed, so a wrong structure cannot hide behind zeros
    assert count_trainable(adapter) == adapters.get("prolora").expected_params(
        [(12, 16)], rank, unshared_rank=unshared_rank, m=m, n=n
    )


def test_rotation_moves_each_chunk_by_the_base_stride() -> None:
    # r' = 4, m = 2: s_A = 2, so the second chunk of A holds A0's ranks in the order 2, 3, 0, 1.
    adapter = _perturbed(rank=5, unshared_rank=1, m=2, n=4)
    B, A = adapter.factors()
    assert torch.equal(A[:4, :8], adapter.A0) and torch.equal(A[:4, 8:], adapter.A0[[2, 3, 0, 1]])
    # n = 4: s_B = 1, chunk t of B is B0 with its rank columns shifted by t.
    for t in range(4):
        assert torch.equal(B[3 * t : 3 * t + 3, :4], adapter.B0[:, [(i + t) % 4 for i in range(4)]])


@pytest.mark.parametrize("rank,unshared_rank", [(2, 1), (4, 1), (3, 0), (3, 3)])
def test_rank_of_update_is_at_most_r(rank: int, unshared_rank: int) -> None:
    delta = _perturbed(rank=rank, unshared_rank=unshared_rank).delta_weight()
    assert torch.linalg.matrix_rank(delta).item() <= rank


def test_rectified_initialisation() -> None:
    adapter = adapters.build("prolora", _layer(), rank=9, unshared_rank=3, m=4, seed=0)
    bound = 1 / math.sqrt(16)  # fan-in of the full k = 16, not of the 4-wide chunk (which gives 1/2)
    for part in (adapter.A0, adapter.A_u):
        assert part.abs().max() <= bound and part.abs().max() > 0.8 * bound
    assert not adapter.B0.any() and not adapter.B_u.any()
    assert adapter.delta_weight().abs().max() == 0


def test_with_every_rank_unshared_it_is_lora() -> None:
    layer = _layer()
    prolora = adapters.build("prolora", layer, rank=3, unshared_rank=3, alpha=6.0, seed=4)
    lora = adapters.build("lora", layer, rank=3, alpha=6.0, seed=4)
    assert prolora.A0.numel() == prolora.B0.numel() == 0
    assert count_trainable(prolora) == count_trainable(lora) == 3 * (12 + 16)
    # Same draws from the same generator; the bounds 1/sqrt(k) and LoRA's Kaiming(a=sqrt(5)) agree to rounding.
    assert (prolora.A_u - lora.lora_A).abs().max() < EXACT
    perturb_(lora)
    with torch.no_grad():
        prolora.A_u.copy_(lora.lora_A)
        prolora.B_u.copy_(lora.lora_B)
    assert prolora.scaling == lora.scaling == 2.0
    assert (prolora.merged_weight() - lora.merged_weight()).abs().max() < EXACT


def test_with_sharing_rates_one_it_is_lora() -> None:
    adapter = _perturbed(rank=4, unshared_rank=1, m=1, n=1)
    B, A = adapter.factors()
    assert torch.equal(A, torch.cat([adapter.A0, adapter.A_u])) and torch.equal(
        B, torch.cat([adapter.B0, adapter.B_u], dim=1)
    )
    assert count_trainable(adapter) == 4 * (12 + 16)


@pytest.mark.parametrize(
    "hparams,message",
    [
        ({"rank": 2, "unshared_rank": 3}, r"ProLoRA needs 0 <= unshared_rank <= rank = 2, got 3"),
        ({"unshared_rank": -1}, "ProLoRA needs an integer unshared_rank >= 0, got -1"),
        ({"m": 0}, "sharing rate m >= 1, got 0"),
        ({"n": 1.5}, "sharing rate n >= 1"),
        ({"rank": 0}, "ProLoRA needs 1 <= rank, got 0"),
        ({"alpha": 0.0}, "alpha > 0"),
    ],
)
def test_bad_arguments_are_clear_errors(hparams: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        adapters.build("prolora", _layer(), **hparams)


def test_the_rotation_acts_at_the_defaults() -> None:
    """At the default rank and hyper-parameters the shared rank is >= 2, so the second chunk of A
    (and of B) is the shared chunk rotated, not a copy of it; with r' = 1 a roll is the identity."""
    adapter = adapters.build("prolora", _layer(), seed=0)
    perturb_(adapter)
    assert adapter.A0.shape[0] >= 2
    B, A = adapter.factors()
    chunk_k, chunk_d = adapter.A0.shape[1], adapter.B0.shape[0]
    assert not torch.equal(A[: adapter.A0.shape[0], chunk_k : 2 * chunk_k], adapter.A0[:, : 16 - chunk_k])
    assert not torch.equal(B[chunk_d : 2 * chunk_d, : adapter.B0.shape[1]], adapter.B0[: 12 - chunk_d])
