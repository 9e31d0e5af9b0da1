"""Where an update lives: subspace similarity, amplification, rank bound and numerical rank."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import adapters
from nfl.subspace import (
    amplification,
    bottom_left_singular_vectors,
    random_subspace,
    subspace_similarity,
    top_singular_vectors,
    update_rank,
    update_rank_bound,
)

D, R = 24, 3


def orthonormal(d: int, k: int, seed: int) -> torch.Tensor:
    return random_subspace(d, k, torch.Generator().manual_seed(seed))


def test_phi_is_one_for_the_same_subspace_in_any_basis() -> None:
    A = orthonormal(D, R, 0)
    rotation = orthonormal(R, R, 1)  # another orthonormal basis of the same subspace
    assert subspace_similarity(A, A) == pytest.approx(1.0, abs=1e-12)
    assert subspace_similarity(A, A @ rotation) == pytest.approx(1.0, abs=1e-12)


def test_phi_is_zero_for_orthogonal_subspaces_and_one_for_a_contained_one() -> None:
    Q = orthonormal(D, 2 * R, 2)
    assert subspace_similarity(Q[:, :R], Q[:, R:]) == pytest.approx(0.0, abs=1e-12)
    assert subspace_similarity(Q[:, :1], Q[:, :R]) == pytest.approx(1.0, abs=1e-12)  # normalised by min(r_A, r_B)


def test_phi_of_random_subspaces_averages_r_over_d() -> None:
    """E[phi] = r / d exactly for a uniformly random r-dim subspace against a fixed one."""
    generator = torch.Generator().manual_seed(3)
    A = orthonormal(D, R, 4)
    draws = torch.tensor([subspace_similarity(A, random_subspace(D, R, generator)) for _ in range(2000)])
    # Five standard errors of the mean: by the central limit theorem a correct phi fails with
    # probability < 1e-6 (and the draws are seeded, so the test is deterministic anyway).
    tolerance = 5 * float(draws.std()) / len(draws) ** 0.5
    assert abs(float(draws.mean()) - R / D) < tolerance
    assert tolerance < 0.1 * R / D  # and the test can fail: the band is under a tenth of r / d


def test_singular_bases_pick_the_ends_of_the_spectrum() -> None:
    U, V = orthonormal(6, 6, 5), orthonormal(5, 5, 6)
    M = U[:, :5] @ torch.diag(torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0], dtype=torch.float64)) @ V.T
    top_U, top_V = top_singular_vectors(M, 2)
    assert subspace_similarity(top_U, U[:, :2]) == pytest.approx(1.0) and subspace_similarity(
        top_V, V[:, :2]
    ) == pytest.approx(1.0)
    # The minor left directions of a 6 x 5 matrix include its left null space.
    assert subspace_similarity(bottom_left_singular_vectors(M, 2), U[:, 4:]) == pytest.approx(1.0)


def test_amplification_on_a_hand_made_pair() -> None:
    """W0 = P diag(10, 5, 1, 0.1) Q^T; ΔW = 2 p4 q4^T boosts W0's weakest direction: U^T W0 V = 0.1,
    so the amplification factor is ||ΔW||_F / 0.1 = 20 (LoRA §7.3)."""
    P, Q = orthonormal(4, 4, 7), orthonormal(4, 4, 8)
    W0 = P @ torch.diag(torch.tensor([10.0, 5.0, 1.0, 0.1], dtype=torch.float64)) @ Q.T
    delta = 2.0 * P[:, 3:] @ Q[:, 3:].T
    result = amplification(W0, delta, r=1)
    assert result.projected_W0 == pytest.approx(0.1)
    assert result.projected_delta == pytest.approx(2.0) and result.delta == pytest.approx(2.0)
    assert result.factor == pytest.approx(20.0)
    assert result.to_dict()["amplification"] == pytest.approx(20.0)
    U, _ = top_singular_vectors(delta, 1)
    assert subspace_similarity(U, bottom_left_singular_vectors(W0, 1)) == pytest.approx(1.0)
    assert subspace_similarity(U, top_singular_vectors(W0, 1)[0]) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(
    ("method", "rank", "bound"),
    [
        ("lora", 2, 2),
        ("pissa", 2, 4),
        ("milora", 3, 6),
        ("dora", 1, 12),
        ("miss", 3, 3),
        ("miss_e", 5, 5),
        ("vera", 4, 4),
    ],
)
def test_rank_bound_is_the_rank_of_the_parameterisation(method: str, rank: int, bound: int) -> None:
    """PiSSA's and MiLoRA's ΔW = s(BA - B0A0) reach 2r; DoRA's row rescaling reaches min(d, k) = 12."""
    layer = nn.Linear(16, 12)
    adapter = adapters.build(method, layer, rank=rank, seed=0)
    assert update_rank_bound(adapter, torch.Generator().manual_seed(0)) == bound


def test_rank_bound_of_a_plain_linear_is_full() -> None:
    assert update_rank_bound(nn.Linear(16, 12), torch.Generator().manual_seed(0)) == 12


def test_update_rank_ignores_the_rounding_of_a_large_weight() -> None:
    """A rank-1 change of 1e-3 to a weight of norm ~100, taken as a float32 difference: the rounding
    of W' (~1e-5 per entry) is far above a tolerance relative to ΔW alone, not above update_rank's."""
    g = torch.Generator().manual_seed(9)
    W0 = 30 * torch.randn(16, 16, generator=g)
    change = 1e-3 * torch.randn(16, 1, generator=g) @ torch.randn(1, 16, generator=g)
    delta = (W0 + change) - W0
    assert int(torch.linalg.matrix_rank(delta)) > 1  # the naive count sees rounding as rank
    assert update_rank(delta, W0) == 1
