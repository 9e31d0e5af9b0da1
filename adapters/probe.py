"""A probe for "a training step never materialises a d x k matrix": the largest tensor it creates."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode


class _LargestNewTensor(TorchDispatchMode):
    """Records the largest numel among op results that are not views of the frozen tensors."""

    def __init__(self, frozen: list[torch.Tensor]):
        super().__init__()
        self.frozen_storage = {t.untyped_storage().data_ptr() for t in frozen}
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in self.frozen_storage:
                self.largest = max(self.largest, t.numel())
        return out


def largest_tensor_in_step(adapter: nn.Module, x: torch.Tensor) -> int:
    """numel of the largest tensor created by forward + backward of a scalar loss (views of the
    adapter's frozen buffers, such as W0 or PiSSA's residual, transposed for a matmul, are not new)."""
    with _LargestNewTensor(list(adapter.buffers())) as mode:
        adapter(x).square().sum().backward()
    return mode.largest
