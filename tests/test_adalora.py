"""AdaLoRA: the triplet update, the orthogonality penalty and the joint cubic rank budget."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import adapters
from nfl.tasks import Dataset
from nfl.training import train
from tests.conftest import TwoLayer, perturb_

DOUBLE = torch.float64


def data(seed: int = 0, dtype: torch.dtype = DOUBLE) -> Dataset:
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(24, 16, generator=g, dtype=dtype), torch.randn(24, 10, generator=g, dtype=dtype)
    return Dataset(x, y, x, y, x, y)


def cubic_budget(step: int, total: int, tinit: int, tfinal: int, initial: int, target: int) -> int:
    """The paper's cubic global budget schedule (§3.3): b(t) = b_T + (b_0 − b_T)(1 − (t − t_i) / (T − t_i − t_f))³."""
    if step <= tinit:
        return initial
    if step >= total - tfinal:
        return target
    return int(target + (initial - target) * (1 - (step - tinit) / (total - tinit - tfinal)) ** 3)


class Recorder:
    """A training hook, called after the adapters: each layer's non-zero Λ count and rank of ΔW."""

    def __init__(self, attached):
        self.attached = attached
        self.effective: list[list[int]] = []
        self.delta_rank: list[list[int]] = []

    def regularization(self):
        return None

    def on_step(self, step: int, total_steps: int) -> None:
        self.effective.append([a.effective_rank for a in self.attached])
        # delta_weight() is W' − W0, so it carries W0's rounding (~2e-16 measured); the smallest
        # kept singular value along these runs is ~7e-6: an absolute 1e-10 separates the two.
        self.delta_rank.append(
            [int(torch.linalg.matrix_rank(a.delta_weight().detach(), atol=1e-10, rtol=0)) for a in self.attached]
        )


@pytest.mark.slow
@pytest.mark.parametrize("rank,init_rank", [(2, None), (3, 8)])
def test_rank_budget_follows_the_cubic_schedule_and_ends_at_target(rank: int, init_rank: int | None) -> None:
    model = TwoLayer(DOUBLE)
    attached = adapters.attach(model, "adalora", ["layer1", "layer2"], rank=rank, init_rank=init_rank, seed=0)
    recorder = Recorder(attached)
    total = 100
    train(model, data(), epochs=total, lr=1e-2, hooks=[*attached, recorder])

    initial = sum(a.init_rank for a in attached)
    assert initial == 2 * (3 if init_rank is None else init_rank)  # ⌈1.5·2⌉ = 3 by default
    # Defaults: tinit = 10%, tfinal = 30% of the 100 steps.
    expected = [cubic_budget(t, total, 10, 30, initial, rank * len(attached)) for t in range(total)]
    assert [sum(per_layer) for per_layer in recorder.effective] == expected
    assert len(set(expected)) > 2, "the schedule must pass through intermediate budgets"
    assert sum(a.effective_rank for a in attached) == rank * len(attached)
    for effective, delta_rank in zip(recorder.effective, recorder.delta_rank):
        assert all(r <= e for r, e in zip(delta_rank, effective))
    # The final pattern stays fixed through the last 30 steps.
    assert all(per_layer == recorder.effective[-1] for per_layer in recorder.effective[70:])


def test_masking_is_joint_across_layers_and_waits_for_every_layer() -> None:
    model = TwoLayer(DOUBLE)
    first, second = adapters.attach(model, "adalora", ["layer1", "layer2"], rank=2, seed=0, tinit=0, tfinal=0)
    assert first.allocator is second.allocator
    perturb_(model)
    F.mse_loss(model(data().x_train), data().y_train).backward()
    allocator = first.allocator
    # Layer 1's triplets all outscore layer 2's: the 2 dropped ranks (6 -> 4) both come from layer 2.
    allocator.update_importance()
    for i, scale in ((0, 10.0), (1, 1.0)):
        for name in ("P", "Lambda", "Q"):
            allocator.sensitivity[(i, name)].fill_(scale)
            allocator.uncertainty[(i, name)].fill_(1.0)
        allocator.sensitivity[(i, "Lambda")].copy_(scale * torch.tensor([1.0, 2.0, 3.0], dtype=DOUBLE))
    allocator.mask_to_budget(4)
    assert (first.effective_rank, second.effective_rank) == (3, 1)
    assert second.Lambda[2] != 0 and (second.Lambda[:2] == 0).all()

    # One on_step per layer per step: nothing happens until the last layer has called in.
    perturb_(model, seed=2)
    step, total = 1, 10
    budget = allocator.budget(step, total)
    assert budget < 6
    first.on_step(step, total)
    assert first.effective_rank + second.effective_rank == 6
    second.on_step(step, total)
    assert first.effective_rank + second.effective_rank == budget


def test_update_is_the_scaled_triplet_product() -> None:
    layer = TwoLayer(DOUBLE).layer1
    adapter = adapters.build("adalora", layer, rank=2, init_rank=4, alpha=6.0, seed=0)
    perturb_(adapter)
    expected = 6.0 / (4 + 1e-5) * adapter.P @ torch.diag(adapter.Lambda) @ adapter.Q
    # float64, one product reordered: rounding is ~1e-16.
    assert (adapter.delta_weight() - expected).abs().max() < 1e-12
    assert adapter.P.shape == (12, 4) and adapter.Q.shape == (4, 16) and adapter.Lambda.shape == (4,)


def test_initialisation_is_gaussian_factors_and_zero_singular_values() -> None:
    layer = torch.nn.Linear(256, 256, dtype=DOUBLE)
    adapter = adapters.build("adalora", layer, rank=8, seed=0)
    assert adapter.init_rank == 12 and (adapter.Lambda == 0).all() and adapter.effective_rank == 0
    # 3,072 samples each: the sample std is within ~1.3% of 0.02 (one standard error); allow 10%.
    for factor in (adapter.P, adapter.Q):
        assert abs(float(factor.detach().std()) - 0.02) < 0.002 and abs(float(factor.detach().mean())) < 0.002


def test_penalty_is_zero_for_orthonormal_factors_and_positive_otherwise() -> None:
    layer = TwoLayer(DOUBLE).layer1
    adapter = adapters.build("adalora", layer, rank=2, init_rank=3, seed=0)
    P, Q = adapter.P.detach(), adapter.Q.detach()
    expected = (
        0.5
        * 0.5
        * (
            torch.linalg.norm(P.T @ P - torch.eye(3, dtype=DOUBLE))
            + torch.linalg.norm(Q @ Q.T - torch.eye(3, dtype=DOUBLE))
        )
    )
    # At init PᵀP ≈ 0.005·I, so each norm is ≈ √3: the penalty is ≈ 0.87.
    assert adapter.regularization().item() > 0.5
    assert abs(adapter.regularization().item() - float(expected)) < 1e-12
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        adapter.P.copy_(torch.linalg.qr(torch.randn(12, 3, generator=g, dtype=DOUBLE)).Q)
        adapter.Q.copy_(torch.linalg.qr(torch.randn(16, 3, generator=g, dtype=DOUBLE)).Q.T)
    # Orthonormal to rounding (~1e-16 per entry).
    assert adapter.regularization().item() < 1e-12


def test_training_loss_includes_the_penalty_averaged_over_all_factors() -> None:
    model = TwoLayer(DOUBLE)
    attached = adapters.attach(model, "adalora", ["layer1", "layer2"], seed=0, orth_reg_weight=0.3)
    perturb_(model)
    d = data()
    with torch.no_grad():
        norms = [torch.linalg.norm(a.P.T @ a.P - torch.eye(3, dtype=DOUBLE)) for a in attached]
        norms += [torch.linalg.norm(a.Q @ a.Q.T - torch.eye(3, dtype=DOUBLE)) for a in attached]
        penalty = 0.3 * float(sum(norms)) / len(norms)
        assert abs(sum(float(a.regularization()) for a in attached) - penalty) < 1e-12
        mse = float(F.mse_loss(model(d.x_train), d.y_train))
    history = train(model, d, epochs=1, lr=1e-2, hooks=attached)
    assert penalty > 0.1
    # float64, the same sum in another order.
    assert abs(history.train_loss[0] - (mse + penalty)) < 1e-12


def test_target_rank_above_initial_rank_is_rejected() -> None:
    with pytest.raises(ValueError, match="AdaLoRA needs 1 <= rank <= init_rank = 3, got 4"):
        adapters.build("adalora", TwoLayer().layer1, rank=4, init_rank=3)
    with pytest.raises(ValueError, match="0 < beta1 < 1"):
        adapters.build("adalora", TwoLayer().layer1, beta1=1.0)


def test_a_schedule_without_budgeting_phase_is_rejected() -> None:
    model = TwoLayer()
    attached = adapters.attach(model, "adalora", "layer1", tinit=5, tfinal=5)
    with pytest.raises(ValueError, match="tinit < total_steps - tfinal.*tinit=5, tfinal=5, total_steps=10"):
        train(model, data(dtype=torch.float32), epochs=10, lr=1e-2, hooks=attached)
