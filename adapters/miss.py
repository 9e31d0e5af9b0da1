"""MiSS and MiSS^e (Kang & Yin, "MiSS: Revisiting the Trade-off in LoRA with an Efficient
Shard-Sharing Structure", arXiv 2409.15371): a trainable shard D, zero at init, shared across
the blocks of the weight, W' = W0 + expand(D).

MiSS, the paper's original form (eq. 2-3): D in R^{N x k}; the d output rows are cut into
N = rank contiguous shards, as equal as possible, and every row of shard i receives row i of D:
    ΔW[o, :] = D[shard(o), :].
The forward builds expand(D) densely, O(dk) memory and O(bdk) time: that cost is what the
efficient form removes. Trainable parameters N·k.

MiSS^e, the efficient form (eq. 4-7), PEFT's ``MissConfig`` default (``init_weights=True``):
D in R^{r x d} (PEFT's ``miss_block``); ΔW[o, c] = D[c mod r, o], i.e. the columns of ΔW repeat
with period r, so  y = W0 x + b + S D  with  S = sum of the ⌈k/r⌉ consecutive r-wide slices of x.
No d x k matrix is formed in forward. Trainable parameters r·d.
Where the issue and PEFT could differ we follow PEFT (src/peft/tuners/miss/layer.py): when r does
not divide k, x is zero-padded to a multiple of r, so the last slice sums only its real columns
and the dense ΔW is the periodic pattern truncated to k columns (PEFT's ``get_delta_weight_miss``);
r may exceed d, only 1 <= r <= k is required (PEFT's check ``r <= in_features``).

The original form has no reference code to follow (PEFT implements only MiSS^e and its
variants); the shard split is therefore ours: torch.tensor_split's, the first d mod N shards one
row longer than the rest.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from adapters.base import Adapter, HParams, like, require_rank_at_most
from adapters.registry import register
from adapters.streams import Streams


class _ShardSharing(Adapter):
    """The part common to both forms: a zero-initialised shard D and W' = W0 + expand(D)."""

    trainable_names = ("D",)

    def __init__(self, base: nn.Linear, rank: int, shape: tuple[int, int]):
        super().__init__(base)
        self.rank = rank
        self.D = nn.Parameter(torch.zeros(shape, **like(base)))

    def expand(self) -> torch.Tensor:  # pragma: no cover - abstract
        """The dense d x k update ΔW built from D."""
        raise NotImplementedError

    def merged_weight(self) -> torch.Tensor:
        return self.base_weight + self.expand()

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, rank={self.rank}"


@register(
    "miss",
    label="MiSS",
    hparams=HParams,
    default_rank=4,
    param_count=lambda shapes, rank, hp: sum(rank * k for d, k in shapes),
    color="#CC6677",
    marker="<",
    dense_update="the original MiSS materialises expand(D), the cost its efficient form removes",
    reference="Kang & Yin 2025, eq. 2-3 (original form)",
)
class MiSS(_ShardSharing):
    def __init__(self, base: nn.Linear, rank: int, hp: HParams, *, streams: Streams, shared: None = None):
        super().__init__(base, rank, (rank, base.in_features))
        # shard_of_row[o] = the shard (row of D) that output row o belongs to.
        sizes = [len(rows) for rows in torch.arange(self.out_features).tensor_split(rank)]
        shard_of_row = torch.repeat_interleave(torch.arange(rank), torch.tensor(sizes))
        self.register_buffer("shard_of_row", shard_of_row.to(base.weight.device), persistent=False)

    @classmethod
    def check(cls, out_features: int, in_features: int, rank: int, hp: HParams) -> None:
        require_rank_at_most(rank, out_features, "out_features")

    def expand(self) -> torch.Tensor:
        return self.D[self.shard_of_row]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Materialises the d x k weight on purpose: the original form's cost.
        return F.linear(x, self.merged_weight(), self.bias)


@register(
    "miss_e",
    label="MiSS^e",
    tex_label=r"MiSS$^e$",
    hparams=HParams,
    default_rank=4,
    param_count=lambda shapes, rank, hp: sum(rank * d for d, k in shapes),
    color="#332288",
    marker=">",
    reference="Kang & Yin 2025, eq. 4-7; PEFT MissLinear (init_weights=True)",
)
class MiSSe(_ShardSharing):
    def __init__(self, base: nn.Linear, rank: int, hp: HParams, *, streams: Streams, shared: None = None):
        super().__init__(base, rank, (rank, base.out_features))

    @classmethod
    def check(cls, out_features: int, in_features: int, rank: int, hp: HParams) -> None:
        require_rank_at_most(rank, in_features, "in_features")

    def expand(self) -> torch.Tensor:
        periods = -(-self.in_features // self.rank)
        return self.D.T.repeat(1, periods)[:, : self.in_features]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Zero-pad x to a multiple of r (as PEFT does), then S = sum of its r-wide slices.
        padded = F.pad(x, (0, -self.in_features % self.rank))
        S = padded.unflatten(-1, (-1, self.rank)).sum(-2)
        return self.base_forward(x) + S @ self.D
