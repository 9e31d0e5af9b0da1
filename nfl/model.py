"""The MLP of the experiment and the names of its adaptable layers."""

from __future__ import annotations

import torch
from torch import nn

from nfl.config import ModelConfig

ADAPTABLE_LAYERS = ("layer1", "layer2")


class MLP(nn.Module):
    """Linear(width -> width) . ReLU . Linear(width -> width), as in the MiSS paper's Appendix C."""

    def __init__(self, width: int):
        super().__init__()
        self.layer1 = nn.Linear(width, width)
        self.act = nn.ReLU()
        self.layer2 = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer2(self.act(self.layer1(x)))


def make_mlp(
    cfg: ModelConfig, seed: int, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"
) -> MLP:
    """A freshly initialised MLP; PyTorch's default Linear init drawn from ``seed`` alone."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MLP(cfg.width)
    return model.to(device=device, dtype=dtype)


def target_layer_names(targets: str) -> list[str]:
    """The layers an adapter wraps: 'layer1', 'layer2' or 'all'."""
    if targets == "all":
        return list(ADAPTABLE_LAYERS)
    if targets in ADAPTABLE_LAYERS:
        return [targets]
    raise ValueError(f"unknown targets {targets!r}; choose one of: all, {', '.join(ADAPTABLE_LAYERS)}")
