"""Shared fixtures: a small non-square two-layer model, so transposition slips cannot hide."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import adapters
from adapters.contract import perturb_  # noqa: F401 (the tests import it from here)


class TwoLayer(nn.Module):
    """Linear(16 -> 12) . ReLU . Linear(12 -> 10): the MLP's shape, with d != k everywhere."""

    def __init__(self, dtype: torch.dtype = torch.float32, seed: int = 0):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.layer1 = nn.Linear(16, 12, dtype=dtype)
            self.act = nn.ReLU()
            self.layer2 = nn.Linear(12, 10, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer2(self.act(self.layer1(x)))


ADAPTER_METHODS = [n for n in adapters.names() if adapters.get(n).adapter is not None]
ALL_METHODS = adapters.names()


@pytest.fixture
def two_layer() -> TwoLayer:
    return TwoLayer()


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """Studies' --threads sets torch's thread count process-wide; keep each test's to itself."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
