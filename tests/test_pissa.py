"""PiSSA: the residual is W0 without its top-r singular triplets, and the init is exact (oracle: torch.linalg.svd)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import adapters
from tests.conftest import TwoLayer

# float64 throughout: an exact construction is off by SVD rounding, ~1e-15 x ||W0|| (~1 here);
# a wrong one (wrong end of the spectrum, missing scaling) by O(0.1) or more.
EXACT = 1e-12


def singular_values(weight: torch.Tensor) -> torch.Tensor:
    return torch.linalg.svdvals(weight.double())


@pytest.mark.parametrize("rank,alpha", [(1, None), (2, None), (5, 3.0)])
def test_residual_has_w0s_singular_values_without_the_top_r(rank: int, alpha: float | None) -> None:
    layer = TwoLayer(torch.float64).layer1
    adapter = adapters.build("pissa", layer, rank=rank, alpha=alpha)
    S = singular_values(layer.weight)
    expected = torch.cat([S[rank:], torch.zeros(rank, dtype=S.dtype)])
    assert (singular_values(adapter.residual) - expected).abs().max() < EXACT


@pytest.mark.parametrize("alpha", [None, 5.0])
def test_scaled_factors_are_the_top_r_part_split_evenly(alpha: float | None) -> None:
    rank = 3
    layer = TwoLayer(torch.float64).layer1
    adapter = adapters.build("pissa", layer, rank=rank, alpha=alpha)
    U, S, Vh = torch.linalg.svd(layer.weight.detach(), full_matrices=False)
    top = U[:, :rank] @ torch.diag(S[:rank]) @ Vh[:rank]
    A, B, s = adapter.lora_A, adapter.lora_B, adapter.scaling
    assert s == (rank if alpha is None else alpha) / rank
    assert (s * B @ A - top).abs().max() < EXACT
    # S_r / s shared evenly: A A^T = B^T B = diag(S_r / s) (rows of A and columns of B orthogonal).
    assert (A @ A.T - torch.diag(S[:rank] / s)).abs().max() < EXACT
    assert (B.T @ B - torch.diag(S[:rank] / s)).abs().max() < EXACT


def test_svd_lowrank_init_is_still_exact() -> None:
    for dtype, tolerance in ((torch.float64, EXACT), (torch.float32, 1e-6)):  # float32: one rounding of O(1) values
        layer = TwoLayer(dtype).layer1
        adapter = adapters.build("pissa", layer, rank=4, niter=1)
        assert adapter.residual.dtype == adapter.lora_A.dtype == dtype
        assert (
            adapter.residual + adapter.scaling * adapter.lora_B @ adapter.lora_A - layer.weight
        ).abs().max() < tolerance


def test_svd_lowrank_finds_the_principal_part() -> None:
    # A weight with a clear gap after the 2nd singular value: subspace iteration converges like
    # (1 / 8)^(2 niter + 1) ~ 3e-5 for niter = 2, so 1e-3 separates "found the top 2" from anything else.
    layer = nn.Linear(16, 12, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    P = torch.linalg.qr(torch.randn(12, 12, generator=g, dtype=torch.float64)).Q
    Q = torch.linalg.qr(torch.randn(16, 12, generator=g, dtype=torch.float64)).Q
    S = torch.tensor([10.0, 8.0] + [1.0 - 0.05 * i for i in range(10)], dtype=torch.float64)
    with torch.no_grad():
        layer.weight.copy_(P @ torch.diag(S) @ Q.T)
    adapter = adapters.build("pissa", layer, rank=2, niter=2)
    assert (adapter.lora_B @ adapter.lora_A - P[:, :2] @ torch.diag(S[:2]) @ Q[:, :2].T).abs().max() < 1e-3


def test_svd_lowrank_is_seeded_from_the_run_and_leaves_the_global_rng_alone() -> None:
    layer = TwoLayer(torch.float64).layer1
    state = torch.random.get_rng_state()
    first, again, other = (adapters.build("pissa", layer, rank=3, niter=0, seed=seed).lora_A for seed in (1, 1, 2))
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(first, again)
    # niter = 0 leaves the random sketch visible in the factors (~1e-2 apart), so the seed must matter.
    assert (first - other).abs().max() > 1e-6


def test_the_update_is_measured_from_the_original_w0() -> None:
    layer = TwoLayer(torch.float64).layer1
    adapter = adapters.build("pissa", layer, rank=2)
    assert torch.equal(adapter.base_weight, layer.weight.detach())
    assert adapter.delta_weight().abs().max() < EXACT  # residual + s B A, minus W0 (not minus the residual)
    assert adapter.residual.data_ptr() != layer.weight.data_ptr()


@pytest.mark.parametrize(
    "hparams,message",
    [
        ({"rank": 13}, r"PiSSA needs 1 <= rank <= min\(out, in\) = 12, got 13"),
        ({"rank": 0}, r"PiSSA needs 1 <= rank, got 0"),
        ({"rank": 2, "niter": -1}, r"PiSSA needs niter = None \(full SVD\) or an integer >= 0, got -1"),
        ({"rank": 2, "alpha": 0.0}, r"PiSSA needs alpha > 0"),
    ],
)
def test_bad_arguments_are_clear_errors(hparams: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        adapters.build("pissa", TwoLayer().layer1, **hparams)
