"""LoRA's own structure, and the gradient norm against a hand computation."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import adapters
from nfl.params import gradient_norm
from tests.conftest import TwoLayer, perturb_


def test_lora_initialisation_follows_peft() -> None:
    layer = TwoLayer().layer1  # k = 16
    lora = adapters.build("lora", layer, rank=3, alpha=6.0, seed=0)
    assert lora.scaling == 2.0
    assert torch.equal(lora.lora_B, torch.zeros(12, 3))
    bound = 1 / math.sqrt(16)  # kaiming_uniform(a=sqrt(5)): sqrt(6 / ((1 + 5) * fan_in))
    assert lora.lora_A.abs().max() <= bound and lora.lora_A.abs().max() > 0.8 * bound
    assert adapters.build("lora", layer, rank=3, seed=0).scaling == 1.0  # alpha defaults to r


@pytest.mark.parametrize("rank", [1, 2, 5])
def test_lora_update_has_rank_at_most_r(rank: int) -> None:
    lora = adapters.build("lora", TwoLayer(torch.float64).layer1, rank=rank)
    perturb_(lora)
    assert torch.linalg.matrix_rank(lora.delta_weight()) == rank


def test_gradient_norm_matches_a_hand_computation() -> None:
    a, b = nn.Parameter(torch.tensor([1.0, 2.0])), nn.Parameter(torch.tensor([[3.0]]))
    loss = (a * torch.tensor([3.0, 4.0])).sum() + 6 * b.sum()  # d/da = (3, 4), d/db = 6
    loss.backward()
    frozen = nn.Parameter(torch.ones(1), requires_grad=False)  # no gradient: counts 0
    assert gradient_norm([p.grad for p in (a, b, frozen)]).item() == pytest.approx(math.sqrt(9 + 16 + 36))
    assert gradient_norm([frozen.grad]).item() == 0.0


def test_gradient_norm_keeps_runs_apart() -> None:
    grads = [torch.tensor([[3.0, 4.0], [0.0, 1.0]]), torch.tensor([[[12.0]], [[0.0]]])]  # two runs
    assert gradient_norm(grads, run_dims=1).tolist() == pytest.approx([13.0, 1.0])
