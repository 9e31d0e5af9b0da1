"""Memory accounting: analytic bytes against a hand count and against Adam's real state."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import adapters
from adapters.step import step
from nfl.measure.devices import measured_peak_bytes
from nfl.measure.memory import TrainingMemory, adam_state_bytes, training_memory
from nfl.measure.prepared import train_step_peak_bytes
from nfl.params import trainable_parameters
from nfl.tasks import Dataset
from tests.conftest import TwoLayer


class Mixed(nn.Module):
    """A trainable float32 Linear(3 -> 2), a frozen Linear(5 -> 5), a trainable float64 vector."""

    def __init__(self) -> None:
        super().__init__()
        self.trained = nn.Linear(3, 2)
        self.frozen = nn.Linear(5, 5).requires_grad_(False)
        self.scale = nn.Parameter(torch.ones(4, dtype=torch.float64))


def test_training_memory_matches_a_hand_count() -> None:
    memory = training_memory(Mixed())
    # Trainable: 6 + 2 float32 (32 bytes) and 4 float64 (32 bytes); the frozen layer is excluded.
    assert memory.parameters == 64 and memory.gradients == 64
    # exp_avg and exp_avg_sq like the parameters (2 x 64), plus a float32 step per tensor (3 x 4).
    assert memory.optimizer_state == 140
    assert memory.to_dict() == {"parameters": 64, "gradients": 64, "optimizer_state": 140, "total": 268}


@pytest.mark.parametrize("default_dtype", [torch.float32, torch.float64])
def test_adam_accounting_matches_the_optimizer_after_a_step(default_dtype: torch.dtype) -> None:
    before = torch.get_default_dtype()
    torch.set_default_dtype(default_dtype)  # Adam's step scalar follows the default dtype
    try:
        model = TwoLayer(default_dtype)
        hooks = adapters.attach(model, "lora", ["layer1", "layer2"], rank=2)
        params = trainable_parameters(model)
        optimizer = torch.optim.Adam(params, lr=1e-3)
        x, y = torch.randn(8, 16), torch.randn(8, 10)
        step(model, optimizer, hooks, F.mse_loss, x, y, 0, 1)
        states = [optimizer.state[p] for p in params]
        assert all(set(s) == {"step", "exp_avg", "exp_avg_sq"} for s in states), "Adam's state changed shape"
        actual = sum(t.numel() * t.element_size() for s in states for t in s.values())
        assert adam_state_bytes(params) == actual
        memory = training_memory(model)
        assert memory.gradients == sum(p.grad.numel() * p.grad.element_size() for p in params)
        assert memory.parameters == sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    finally:
        torch.set_default_dtype(before)


class FakeAccelerator:
    name = "Fake GPU"

    def __init__(self) -> None:
        self.log: list[str] = []

    def synchronize(self) -> None:
        self.log.append("sync")

    def event(self) -> None:  # pragma: no cover - memory never times
        raise AssertionError("no events in a memory measurement")

    def reset_peak_memory(self) -> None:
        self.log.append("reset")

    def peak_memory_bytes(self) -> int:
        self.log.append("read")
        return 1234


def test_measured_peak_resets_runs_and_reads_between_synchronisations() -> None:
    device = FakeAccelerator()
    assert measured_peak_bytes(lambda: device.log.append("fn"), device) == 1234
    assert device.log == ["sync", "reset", "fn", "sync", "read"]


def test_measured_memory_on_the_cpu_is_unavailable_and_nothing_runs() -> None:
    def fail() -> None:
        raise AssertionError("nothing should run on the CPU")

    assert measured_peak_bytes(fail, "cpu") is None
    data = Dataset(
        torch.randn(4, 16),
        torch.randn(4, 10),
        torch.randn(2, 16),
        torch.randn(2, 10),
        torch.randn(2, 16),
        torch.randn(2, 10),
    )
    model = TwoLayer()
    hooks = adapters.attach(model, "lora", "layer1", rank=2)
    assert train_step_peak_bytes(model, hooks, data, 1e-3, "cpu") is None
    assert not hooks[0].lora_B.any(), "the model must not be trained for a value that is not measured"


def test_training_memory_total_is_the_sum() -> None:
    assert TrainingMemory(1, 2, 3).total == 6
