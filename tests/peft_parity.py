"""Plumbing for parity tests against Hugging Face PEFT (optional extra ``parity``).

A parity test builds our adapter on a float64 layer, puts PEFT's tuner on a copy of the same
layer, copies our factors into PEFT's tensors, and requires equal outputs and equal gradients
w.r.t. the factors. Test modules call ``pytest.importorskip("peft")`` before importing this.
"""

from __future__ import annotations

import copy

import peft
import torch
from torch import nn

# Float64 throughout: two correct implementations differ by rounding (~1e-15); 1e-6 is the bound
# the issue sets, far below any real discrepancy.
TOLERANCE = 1e-6


class _Holder(nn.Module):
    def __init__(self, layer: nn.Linear):
        super().__init__()
        self.layer1 = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer1(x)


def peft_layer(layer: nn.Linear, config: peft.PeftConfig) -> tuple[nn.Module, nn.Module]:
    """(PEFT model, its tuner layer) around a float64 copy of ``layer``; config targets 'layer1'."""
    config.target_modules = ["layer1"]
    model = peft.get_peft_model(_Holder(copy.deepcopy(layer).double()), config)
    return model, model.base_model.model.layer1


def copy_into(pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    """Copy each of our tensors into its PEFT counterpart (same shape)."""
    with torch.no_grad():
        for ours, theirs in pairs:
            assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
            theirs.copy_(ours)


def assert_parity(
    ours: nn.Module, theirs: nn.Module, pairs: list[tuple[torch.Tensor, torch.Tensor]], x: torch.Tensor, extra_loss=None
) -> None:
    """Same outputs, and same gradients of a common loss w.r.t. each (ours, PEFT's) tensor pair.

    ``extra_loss(module) -> Tensor`` adds a term (e.g. a regulariser) to each side's loss.
    """
    for module in (ours, theirs):
        module.zero_grad(set_to_none=True)
    out_ours, out_theirs = ours(x), theirs(x)
    assert (out_ours - out_theirs).abs().max() <= TOLERANCE
    target = torch.sin(torch.arange(out_ours.numel(), dtype=x.dtype)).reshape(out_ours.shape)
    for module, out in ((ours, out_ours), (theirs, out_theirs)):
        loss = (out - target).pow(2).mean()
        if extra_loss is not None:
            loss = loss + extra_loss(module)
        loss.backward()
    for mine, peft_tensor in pairs:
        assert mine.grad is not None and peft_tensor.grad is not None
        assert (mine.grad - peft_tensor.grad).abs().max() <= TOLERANCE
