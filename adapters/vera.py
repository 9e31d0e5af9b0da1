"""VeRA (Kopiczko et al., 2024, "VeRA: Vector-based Random Matrix Adaptation", ICLR, §3.1 eq. 2).

W' = W0 + diag(lambda_b) B diag(lambda_d) A: A in R^{r x k} and B in R^{d x r} are frozen random
projections shared by every adapted layer; only the scaling vectors lambda_b in R^d (zeros, so the
layer starts as the base) and lambda_d in R^r (``d_initial``) train. No alpha: the scaling is 1.

Follows PEFT's VeRA (``VeraModel._init_vera_A_vera_B``, ``VeraLayer``): A and B are drawn once,
sized to the largest adapted layer (r x max k, max d x r) and sliced to each layer's (d, k);
Kaiming-uniform with gain sqrt(2) (bounds sqrt(6 / max k) and sqrt(6 / r)), A then B, from a CPU
generator, drawn in float32 as PEFT does and cast to the base weight's dtype, so the projections
equal PEFT's for the same key. The generator is the build's shared stream (so the projections vary
with the run's seed), or one seeded with ``projection_seed`` (PEFT's ``projection_prng_key``) when
given. They are buffers (frozen), the same tensors in every adapted layer.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

from adapters.base import HParams, hparam, is_int, like, require
from adapters.lowrank import LowRank
from adapters.registry import register
from adapters.streams import Streams


@dataclasses.dataclass(frozen=True)
class VeRAHParams(HParams):
    d_initial: float = hparam(0.1, "initial value of every entry of lambda_d")
    projection_seed: int | None = hparam(None, "seed of the frozen projections (PEFT's projection_prng_key); "
                                               "default: derived from the run's seed")

    def __post_init__(self) -> None:
        require(math.isfinite(self.d_initial), f"needs a finite d_initial, got {self.d_initial}")
        ok = self.projection_seed is None or is_int(self.projection_seed)
        require(ok, f"needs an integer projection_seed (or None), got {self.projection_seed!r}")


def _kaiming_uniform(shape: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
    """U(-b, b) with b = sqrt(3) * sqrt(2) / sqrt(fan_in), fan_in = shape[1]: PEFT's vera._kaiming_init."""
    # The bound is computed in PEFT's order of operations so that the draws match it bit for bit.
    bound = math.sqrt(3.0) * (math.sqrt(2) / math.sqrt(shape[1]))
    return torch.empty(shape).uniform_(-bound, bound, generator=generator)


@register(
    "vera",
    label="VeRA",
    hparams=VeRAHParams,
    default_rank=64,
    param_count=lambda shapes, rank, hp: sum(d + rank for d, _ in shapes),
    color="#117733",
    marker="D",
    reference="Kopiczko et al. 2024; PEFT VeraModel / VeraLayer",
)
class VeRA(LowRank):
    trainable_names = ("lambda_b", "lambda_d")

    def __init__(
        self, base: nn.Linear, rank: int, hp: VeRAHParams, *, streams: Streams,
        shared: tuple[torch.Tensor, torch.Tensor],
    ):
        super().__init__(base, rank, scaling=1.0)  # VeRA has no alpha
        vera_A, vera_B = shared
        self.register_buffer("vera_A", vera_A)
        self.register_buffer("vera_B", vera_B)
        self.lambda_b = nn.Parameter(torch.zeros(self.out_features, **like(base)))
        self.lambda_d = nn.Parameter(torch.full((rank,), float(hp.d_initial), **like(base)))

    @classmethod
    def make_shared(
        cls, layers: list[nn.Linear], rank: int, hp: VeRAHParams, streams: Streams
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The frozen (A, B), r x max k and max d x r, from the shared stream or ``projection_seed``."""
        seeded = hp.projection_seed is not None
        projection = torch.Generator().manual_seed(hp.projection_seed) if seeded else streams.shared
        vera_A = _kaiming_uniform((rank, max(layer.in_features for layer in layers)), projection)
        vera_B = _kaiming_uniform((max(layer.out_features for layer in layers), rank), projection)
        return vera_A.to(**like(layers[0])), vera_B.to(**like(layers[0]))

    def factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(diag(lambda_b) B diag(lambda_d), A), with A and B sliced to this layer: d x r and r x k."""
        B = self.vera_B[: self.out_features]
        A = self.vera_A[:, : self.in_features]
        return self.lambda_b[:, None] * B * self.lambda_d, A
