"""AdaLoRA against Hugging Face PEFT's AdaLoraModel: forward, orthogonality penalty, gradients
w.r.t. P, Λ, Q, and the rank allocation over a whole training run.

PEFT adds the penalty inside ``AdaLoraModel.forward`` to the ``loss`` its wrapped model returns, so
the PEFT side wraps the same two layers in a model that returns (loss, logits) and is called
through ``peft_model.base_model``. Correspondence: P = lora_B, Q = lora_A, Λ = lora_E[:, 0].
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("peft")

import adapters  # noqa: E402
from nfl.model import target_layer_names  # noqa: E402
from nfl.tasks import Dataset  # noqa: E402
from nfl.training import train  # noqa: E402
from tests.conftest import TwoLayer, perturb_  # noqa: E402
from tests.peft_parity import TOLERANCE, copy_into  # noqa: E402

pytestmark = pytest.mark.slow  # whole studies / reference parity: the full suite only

DOUBLE = torch.float64


@dataclass
class Output:
    loss: torch.Tensor
    logits: torch.Tensor


class WithLoss(TwoLayer):
    """TwoLayer returning its MSE loss, the output PEFT adds AdaLoRA's penalty to."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> Output:
        logits = super().forward(x)
        return Output(F.mse_loss(logits, y), logits)


def peft_adalora(
    base: TwoLayer, targets: str, rank: int, init_rank: int, alpha: float | None, total_steps: int = 10, **schedule
):
    """PEFT's AdaLoraModel on a copy of ``base``, with our defaults spelled out in its terms."""
    import peft

    model = WithLoss(DOUBLE)
    model.load_state_dict(copy.deepcopy(base.state_dict()))
    config = peft.AdaLoraConfig(
        target_r=rank,
        init_r=init_rank,
        lora_alpha=0 if alpha is None else alpha,  # <= 0: PEFT's scaling is init_r, as our alpha=None
        total_step=total_steps,
        target_modules=["layer1", "layer2"] if targets == "all" else [targets],
        **schedule,
    )
    return peft.get_peft_model(model, config).base_model


def triplets(ours: list, theirs_model) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(ours, PEFT's) tensor pairs: P with lora_B, diag Λ with lora_E, Q with lora_A, per layer."""
    pairs = []
    for adapter, name in zip(ours, ["layer1", "layer2"] if len(ours) == 2 else ["layer1"]):
        layer = theirs_model.model.get_submodule(name)
        pairs += [
            (adapter.P, layer.lora_B["default"]),
            (adapter.Lambda, layer.lora_E["default"]),
            (adapter.Q, layer.lora_A["default"]),
        ]
    return pairs


def inputs() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(9, 16, generator=g, dtype=DOUBLE), torch.randn(9, 10, generator=g, dtype=DOUBLE)


@pytest.mark.parametrize(
    "targets,alpha,orth_reg_weight", [("layer1", None, 0.5), ("all", None, 0.5), ("all", 7.0, 0.2)]
)
def test_forward_penalty_and_gradients_match_peft(targets: str, alpha: float | None, orth_reg_weight: float) -> None:
    base = TwoLayer(DOUBLE)
    model = copy.deepcopy(base)
    ours = adapters.attach(
        model,
        "adalora",
        target_layer_names(targets),
        rank=2,
        init_rank=3,
        alpha=alpha,
        orth_reg_weight=orth_reg_weight,
        seed=0,
    )
    perturb_(model)  # Λ ≠ 0 and P, Q far from orthonormal, so every term matters
    theirs = peft_adalora(base, targets, 2, 3, alpha, orth_reg_weight=orth_reg_weight)
    pairs = triplets(ours, theirs)
    copy_into([(mine.view(peft_tensor.shape), peft_tensor) for mine, peft_tensor in pairs])

    x, y = inputs()
    out = model(x)
    penalty = sum(a.regularization() for a in ours)
    loss = F.mse_loss(out, y) + penalty
    result = theirs(x, y)
    peft_penalty = result.loss - F.mse_loss(result.logits, y)
    assert (out - result.logits).abs().max() <= TOLERANCE
    assert penalty.item() > 0.1  # perturbed factors: the comparison below is not of two zeros
    assert abs((penalty - peft_penalty).item()) <= TOLERANCE
    loss.backward()
    result.loss.backward()
    for mine, peft_tensor in pairs:
        assert (mine.grad - peft_tensor.grad.view(mine.shape)).abs().max() <= TOLERANCE


class Snapshot:
    """A training hook after the adapters': copies of our P, Λ, Q once each step's allocation ran."""

    def __init__(self, tensors: list[torch.Tensor]):
        self.tensors = tensors
        self.states: list[list[torch.Tensor]] = []

    def regularization(self):
        return None

    def on_step(self, step: int, total_steps: int) -> None:
        self.states.append([t.detach().clone() for t in self.tensors])


@pytest.mark.parametrize("deltaT", [1, 3])
def test_rank_allocation_matches_peft_step_by_step(deltaT: int) -> None:
    total, schedule = 40, {"tinit": 4, "tfinal": 12, "deltaT": deltaT}
    base = TwoLayer(DOUBLE)
    model = copy.deepcopy(base)
    ours = adapters.attach(model, "adalora", ["layer1", "layer2"], rank=2, init_rank=4, seed=0, **schedule)
    theirs = peft_adalora(base, "all", 2, 4, None, total_steps=total, **schedule)
    pairs = triplets(ours, theirs)
    copy_into([(mine.view(peft_tensor.shape), peft_tensor) for mine, peft_tensor in pairs])
    x, y = inputs()

    snapshot = Snapshot([mine for mine, _ in pairs])
    train(model, Dataset(x, y, x, y, x, y), epochs=total, lr=1e-2, hooks=[*ours, snapshot])

    # PEFT's documented loop: backward, optimiser step, update_and_allocate, zero_grad. PEFT 0.21
    # leaves ranknum (= init_r, a constant in the authors' code) requires_grad=True; it is kept
    # out of the optimiser, or Adam would move the scaling.
    optimizer = torch.optim.Adam([peft_tensor for _, peft_tensor in pairs], lr=1e-2)
    for step, state in enumerate(snapshot.states):
        optimizer.zero_grad(set_to_none=True)
        theirs(x, y).loss.backward()
        optimizer.step()
        theirs.update_and_allocate(step)
        for mine, (_, peft_tensor) in zip(state, pairs):
            assert torch.equal(mine == 0, peft_tensor.view(mine.shape) == 0), f"masks differ at step {step}"
            assert (mine - peft_tensor.view(mine.shape)).abs().max() <= TOLERANCE, f"step {step}"
    assert sum(a.effective_rank for a in ours) == 2 * 2
