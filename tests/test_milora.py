"""MiLoRA: the residual is W0 without its bottom-r singular triplets (oracle: torch.linalg.svd)."""

from __future__ import annotations

import pytest
import torch

import adapters
from tests.conftest import TwoLayer

# float64: an exact construction is off by SVD rounding, ~1e-15 x ||W0|| (~1 here); taking the
# wrong end of the spectrum is off by the gap between singular values, O(0.1).
EXACT = 1e-12


@pytest.mark.parametrize("rank", [1, 2, 5, 12])
def test_residual_has_w0s_singular_values_without_the_bottom_r(rank: int) -> None:
    layer = TwoLayer(torch.float64).layer1
    adapter = adapters.build("milora", layer, rank=rank)
    S = torch.linalg.svdvals(layer.weight.detach())
    expected = torch.cat([S[: S.numel() - rank], torch.zeros(rank, dtype=S.dtype)])
    assert (torch.linalg.svdvals(adapter.residual) - expected).abs().max() < EXACT


def test_factors_are_the_minor_part_with_alpha_equal_to_rank() -> None:
    rank = 3
    layer = TwoLayer(torch.float64).layer1
    adapter = adapters.build("milora", layer, rank=rank)
    U, S, Vh = torch.linalg.svd(layer.weight.detach(), full_matrices=False)
    minor = U[:, -rank:] @ torch.diag(S[-rank:]) @ Vh[-rank:]
    assert adapter.scaling == 1.0
    assert (adapter.lora_B @ adapter.lora_A - minor).abs().max() < EXACT
    assert (adapter.lora_A @ adapter.lora_A.T - torch.diag(S[-rank:])).abs().max() < EXACT
    assert (adapter.residual + minor - layer.weight).abs().max() < EXACT


def test_rank_above_min_dimension_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"MiLoRA needs 1 <= rank <= min\(out, in\) = 12, got 13"):
        adapters.build("milora", TwoLayer().layer1, rank=13)


@pytest.mark.parametrize("name", ["alpha", "niter"])
def test_milora_takes_neither_alpha_nor_a_randomised_svd(name: str) -> None:
    with pytest.raises(ValueError, match=f"MiLoRA has no hyper-parameter {name}"):
        adapters.build("milora", TwoLayer().layer1, **{name: 2})
