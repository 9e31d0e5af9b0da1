"""What the low-rank family shares: W' = W_frozen + s B A.

B (d x r) and A (r x k) are the method's factors, however it assembles them (LoRA's two trained
matrices, VeRA's scaled projections, ProLoRA's rotated chunks, MoS's shards, AdaLoRA's P diag(Λ) Q);
W_frozen is W0, or a residual for the methods that move part of W0 into the factors (PiSSA, MiLoRA);
s is the scaling alpha / r. LoRA, PiSSA, MiLoRA, VeRA, ProLoRA, AdaLoRA and MoS are siblings here.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from adapters.base import Adapter, HParams, hparam, require


@dataclasses.dataclass(frozen=True)
class ScaledHParams(HParams):
    """The scaling s = alpha / r of the LoRA family."""

    alpha: float | None = hparam(None, "the scaling is alpha / rank; default: rank (a scaling of 1)")

    def __post_init__(self) -> None:
        require(self.alpha is None or self.alpha > 0, f"needs alpha > 0, got {self.alpha}")

    def scaling(self, rank: int) -> float:
        return (rank if self.alpha is None else self.alpha) / rank


class LowRank(Adapter):
    """W' = W_frozen + s B A; subclasses provide ``factors()`` (B, A)."""

    def __init__(self, base: nn.Linear, rank: int, scaling: float):
        super().__init__(base)
        self.rank = rank
        self.scaling = scaling

    def factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, A) with the update s B A; B is d x r, A is r x k. Default: the trained pair."""
        return self.lora_B, self.lora_A

    @property
    def frozen_weight(self) -> torch.Tensor:
        """The frozen weight the update is added to: the residual if one was kept, else W0."""
        return self.residual if hasattr(self, "residual") else self.base_weight

    def keep_residual(self) -> None:
        """Freeze W_res = W0 - s B A from the stored factors, so W_res + s B A == W0 at init."""
        with torch.no_grad():
            B, A = self.factors()
            self.register_buffer("residual", self.base_weight - self.scaling * (B @ A))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, A = self.factors()
        return F.linear(x, self.frozen_weight, self.bias) + (x @ A.T @ B.T) * self.scaling

    def merged_weight(self) -> torch.Tensor:
        B, A = self.factors()
        return self.frozen_weight + self.scaling * (B @ A)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, rank={self.rank}"
