"""VeRA: frozen shared projections, trainable scaling vectors, the update's structure, errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import adapters
from nfl.params import count_trainable
from tests.conftest import TwoLayer, perturb_

# float64: a wrong product order or slice is off by O(1), rounding by O(1e-15).
EXACT = 1e-12


def _layer(out_features: int = 12, in_features: int = 16) -> nn.Linear:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return nn.Linear(in_features, out_features, dtype=torch.float64)


def test_registry_entry() -> None:
    spec = adapters.get("vera")
    assert (spec.label, spec.default_rank) == ("VeRA", 64)
    assert spec.hparam_defaults() == {"d_initial": 0.1, "projection_seed": None}
    assert spec.expected_params([(12, 16), (10, 12)], 5) == (12 + 5) + (10 + 5)


def test_initialisation() -> None:
    adapter = adapters.build("vera", _layer(), rank=8, seed=0, d_initial=0.3)
    assert torch.equal(adapter.lambda_b, torch.zeros(12, dtype=torch.float64))
    assert torch.equal(adapter.lambda_d, torch.full((8,), 0.3, dtype=torch.float64))
    # Kaiming-uniform with gain sqrt(2): bounds sqrt(6 / fan_in); 128 and 96 draws fill the range.
    for projection, fan_in in ((adapter.vera_A, 16), (adapter.vera_B, 8)):
        bound = math.sqrt(6 / fan_in)
        assert projection.abs().max() <= bound
        assert projection.abs().max() > 0.8 * bound
        assert projection.dtype == torch.float64


def test_projections_are_frozen_buffers_from_the_run_seed_unless_projection_seed_is_given() -> None:
    adapter = adapters.build("vera", _layer(), rank=4, seed=0)
    buffers = dict(adapter.named_buffers())
    assert "vera_A" in buffers and "vera_B" in buffers
    assert not adapter.vera_A.requires_grad and not adapter.vera_B.requires_grad
    assert {n for n, _ in adapter.named_parameters()} == {"lambda_b", "lambda_d"}
    other_run = adapters.build("vera", _layer(), rank=4, seed=9)
    assert not torch.equal(adapter.vera_A, other_run.vera_A), "the projections follow the run's seed"
    keyed = [adapters.build("vera", _layer(), rank=4, seed=seed, projection_seed=1) for seed in (0, 9)]
    assert torch.equal(keyed[0].vera_A, keyed[1].vera_A) and torch.equal(keyed[0].vera_B, keyed[1].vera_B)
    assert not torch.equal(adapter.vera_A, keyed[0].vera_A)


def test_all_layers_slice_the_same_projections() -> None:
    model = TwoLayer(torch.float64)
    first, second = adapters.attach(model, "vera", ["layer1", "layer2"], rank=6)
    # Sized to the largest layer: r x max k (16), max d (12) x r; the very same tensors in both.
    assert first.vera_A is second.vera_A and first.vera_B is second.vera_B
    assert first.vera_A.shape == (6, 16) and first.vera_B.shape == (12, 6)
    perturb_(model)
    for adapter in (first, second):
        B, A = adapter.factors()
        d, k = adapter.out_features, adapter.in_features
        assert A.shape == (6, k) and B.shape == (d, 6)
        # Slices (views) of the shared storage, not copies.
        assert A.untyped_storage().data_ptr() == first.vera_A.untyped_storage().data_ptr()
        assert torch.equal(A, first.vera_A[:, :k])
    assert count_trainable(model) == (12 + 6) + (10 + 6)


@pytest.mark.parametrize("rank", [3, 64])
def test_delta_is_diag_lambda_b_B_diag_lambda_d_A(rank: int) -> None:
    adapter = adapters.build("vera", _layer(), rank=rank, seed=0)
    perturb_(adapter)
    A, B = adapter.vera_A[:, :16], adapter.vera_B[:12]
    expected = torch.diag(adapter.lambda_b) @ B @ torch.diag(adapter.lambda_d) @ A
    delta = adapter.delta_weight()
    assert (delta - expected).abs().max() < EXACT
    assert delta.abs().max() > 1e-3  # the perturbed update is not zero, so the check can fail
    assert torch.linalg.matrix_rank(delta).item() == min(rank, 12)


def test_rank_of_update_is_at_most_r() -> None:
    adapter = adapters.build("vera", _layer(), rank=2, seed=0)
    perturb_(adapter)
    assert torch.linalg.matrix_rank(adapter.delta_weight()).item() <= 2


@pytest.mark.parametrize(
    "hparams,message",
    [
        ({"rank": 0}, "VeRA needs 1 <= rank, got 0"),
        ({"projection_seed": 1.5}, "integer projection_seed"),
        ({"d_initial": float("nan")}, "finite d_initial"),
    ],
)
def test_bad_arguments_are_clear_errors(hparams: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        adapters.build("vera", _layer(), **hparams)
