"""Efficient forms stay efficient: no adapter's training step forms a d x k matrix, unless the
method declares why (``spec.dense_update``). New adapters are held to this by default."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import adapters
from adapters.probe import largest_tensor_in_step
from tests.conftest import ADAPTER_METHODS, perturb_


@pytest.mark.parametrize("method", ADAPTER_METHODS)
def test_training_step_forms_no_d_by_k_tensor(method: str) -> None:
    d, k, batch = 64, 48, 4  # the largest honest tensor is batch x d = 256 << d * k = 3072
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        layer = nn.Linear(k, d, dtype=torch.float64)
    adapter = adapters.build(method, layer, rank=4, seed=0)
    perturb_(adapter)
    x = torch.randn(batch, k, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    largest = largest_tensor_in_step(adapter, x)
    if adapters.get(method).dense_update is not None:
        assert largest >= d * k, f"{method} no longer forms d x k: update its spec's dense_update"
    else:
        assert largest < d * k
