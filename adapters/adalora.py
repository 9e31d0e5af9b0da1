"""AdaLoRA (Zhang et al., 2023, "Adaptive Budget Allocation for Parameter-Efficient Fine-Tuning").

An SVD-shaped update (§3.1), W' = W0 + alpha / (r0 + 1e-5) · P diag(Λ) Q, with P in R^{d x r0},
Q in R^{r0 x k} ~ N(0, 0.02²) and Λ in R^{r0} zero, trained with the orthogonality penalty
γ·mean(‖PᵀP − I‖_F, ‖QQᵀ − I‖_F) and pruned while training (§3.2): after each step the
sensitivity I = |w · ∂L/∂w| of every entry is smoothed by an EMA Ī (β1) and its uncertainty by
an EMA Ū of |I − Ī| (β2); triplet i scores S_i = s(Λ_i) + mean_j s(Q_ij) + mean_j s(P_ji) with
s = Ī·Ū, and the lowest-scoring Λ_i of *all* adapted layers are zeroed so that the total rank
follows the cubic global budget schedule (§3.3) from r0 to target_r per layer.

Everything follows PEFT's ``tuners/adalora`` (``SVDLinear``, ``RankAllocator``,
``AdaLoraModel.forward`` / ``update_and_allocate``) and the authors' ``loralib/adalora.py``:

- The registry's ``rank`` is the final average budget target_r; the initial rank r0 (``init_rank``)
  defaults to ⌈1.5·target_r⌉ (PEFT's 12:8). The scaling is alpha / (r0 + 1e-5), the references'
  ``scaling / (ranknum + 1e-5)`` (the issue writes alpha / r0); alpha defaults to r0, as the
  references do for lora_alpha <= 0, so the scaling is ~1 like LoRA's default here.
- The penalty is PEFT's: γ times the mean of the 2L Frobenius norms of every adapted layer's P and
  Q, so each of the L layers returns γ/(2L)·(‖PᵀP − I‖ + ‖QQᵀ − I‖) and the training loop's sum
  over layers is PEFT's total. The paper squares the norms; both references do not, nor do we.
  γ = ``orth_reg_weight`` = 0.5 (PEFT's default; the authors' ``compute_orth_regu`` uses 0.1).
- Steps are the training loop's 0-based ``step`` of ``total_steps`` = T. Importance is updated
  while step < T − tfinal; budgets are masked when step > tinit and step % deltaT == 0 (deltaT = 1,
  PEFT's default); at step T − tfinal the budget reaches target_r·L and that rank pattern is fixed
  and re-applied every later step. tinit / tfinal default to ⌊T/10⌋ / ⌊3T/10⌋ (PEFT's defaults
  are 0; the issue asks for 10% / 30%); tinit >= T − tfinal is a ValueError, as in PEFT.
- Deviation: with init_rank == target_r there is nothing to prune and nothing is masked (PEFT's
  ``torch.kthvalue(scores, 0)`` would raise).

Masked Λ entries are zeroed in place but stay trainable, exactly as in the references: the next
optimiser step may revive them until they are masked again. Parameters: r0(d + k + 1) per layer.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import torch
from torch import nn

from adapters.base import hparam, is_int, like, require
from adapters.lowrank import LowRank, ScaledHParams
from adapters.registry import register
from adapters.streams import Streams


@dataclasses.dataclass(frozen=True)
class AdaLoRAHParams(ScaledHParams):
    init_rank: int | None = hparam(None, "r0, the rank before pruning; default: ceil(1.5 rank)")
    orth_reg_weight: float = hparam(0.5, "γ, the weight of the orthogonality penalty (PEFT's default)")
    tinit: int | None = hparam(None, "warm-up steps before pruning; default: a tenth of the run")
    tfinal: int | None = hparam(None, "final steps at the target budget; default: three tenths of the run")
    deltaT: int = hparam(1, "steps between two budget allocations")
    beta1: float = hparam(0.85, "β1, EMA factor of the sensitivity")
    beta2: float = hparam(0.85, "β2, EMA factor of its uncertainty")

    def __post_init__(self) -> None:
        super().__post_init__()
        init_rank = self.init_rank
        require(init_rank is None or (is_int(init_rank) and init_rank >= 1),
                f"needs an integer init_rank >= 1 (or None), got {init_rank!r}")
        for name in ("tinit", "tfinal"):
            steps = getattr(self, name)
            require(steps is None or (is_int(steps) and steps >= 0), f"needs {name} >= 0 steps (or None), got {steps}")
        require(is_int(self.deltaT) and self.deltaT >= 1, f"needs deltaT >= 1 step, got {self.deltaT}")
        for name in ("beta1", "beta2"):
            beta = getattr(self, name)
            require(0 < beta < 1, f"needs 0 < {name} < 1, got {beta}")
        require(self.orth_reg_weight >= 0, f"needs orth_reg_weight >= 0, got {self.orth_reg_weight}")

    def initial_rank(self, rank: int) -> int:
        """r0: ``init_rank``, or ⌈1.5·target_r⌉ when it is None."""
        return math.ceil(1.5 * rank) if self.init_rank is None else self.init_rank


def _trainable_count(shapes: list[tuple[int, int]], rank: int, hp: AdaLoRAHParams) -> int:
    # P, Λ and Q of every layer; alpha, the penalty weight and the schedule do not change the count.
    return sum(hp.initial_rank(rank) * (d + k + 1) for d, k in shapes)


class RankAllocator:
    """The global budget of one model: importance EMAs and the masking of Λ across all its layers.

    Created once by ``AdaLoRA.make_shared``; every layer's adapter registers itself at construction.
    Each adapter's ``on_step`` reports to ``arrive``; the allocator acts once per step, when the
    last registered adapter has arrived, so the budget is shared by all layers jointly.

    The tensors may carry leading run dimensions (``AdaLoRA.stacked_on_step`` registers stacked P, Λ, Q of K
    runs, gradients in ``.grad``): scores, thresholds and masks are then taken per run.
    """

    def __init__(
        self, target_rank: int, *, tinit: int | None, tfinal: int | None, deltaT: int, beta1: float, beta2: float
    ):
        self.target_rank = target_rank
        self.tinit, self.tfinal, self.deltaT = tinit, tfinal, deltaT
        self.beta1, self.beta2 = beta1, beta2
        self.adapters: list[AdaLoRA] = []
        # Ī and Ū per (layer index, tensor name), created at the first update.
        self.sensitivity: dict[tuple[int, str], torch.Tensor] = {}
        self.uncertainty: dict[tuple[int, str], torch.Tensor] = {}
        self.final_pattern: list[torch.Tensor] | None = None  # which Λ_i survive, per layer
        self._arrived: set[int] = set()

    def register(self, adapter: AdaLoRA) -> None:
        self.adapters.append(adapter)

    @property
    def init_budget(self) -> int:
        return sum(a.init_rank for a in self.adapters)

    @property
    def target_budget(self) -> int:
        return self.target_rank * len(self.adapters)

    def phases(self, total_steps: int) -> tuple[int, int]:
        """(tinit, tfinal) in steps, defaults 10% / 30% of ``total_steps``; there must be a budgeting phase."""
        tinit = total_steps // 10 if self.tinit is None else self.tinit
        tfinal = 3 * total_steps // 10 if self.tfinal is None else self.tfinal
        if tinit >= total_steps - tfinal:
            raise ValueError(
                "AdaLoRA needs tinit < total_steps - tfinal (a budgeting phase), "
                f"got tinit={tinit}, tfinal={tfinal}, total_steps={total_steps}"
            )
        return tinit, tfinal

    def budget(self, step: int, total_steps: int) -> int:
        """The total rank r0·L → target_r·L allowed at ``step``: PEFT's cubic ``budget_schedule``."""
        tinit, tfinal = self.phases(total_steps)
        if step <= tinit:
            return self.init_budget
        if step >= total_steps - tfinal:
            return self.target_budget
        remaining = 1 - (step - tinit) / (total_steps - tfinal - tinit)
        return int((self.init_budget - self.target_budget) * remaining**3 + self.target_budget)

    def arrive(self, adapter: AdaLoRA, step: int, total_steps: int) -> None:
        """An adapter's ``on_step``; allocation runs once all registered adapters have arrived."""
        self._arrived.add(id(adapter))
        if len(self._arrived) == len(self.adapters):
            self._arrived.clear()
            self.allocate(step, total_steps)

    def allocate(self, step: int, total_steps: int) -> None:
        """PEFT's ``AdaLoraModel.update_and_allocate``, after the optimiser step, gradients present."""
        tinit, tfinal = self.phases(total_steps)
        final_step = total_steps - tfinal
        if step < final_step:
            self.update_importance()
            if step > tinit and step % self.deltaT == 0:
                self.mask_to_budget(self.budget(step, total_steps))
        elif step == final_step:
            self.final_pattern = self.mask_to_budget(self.budget(step, total_steps))
            self.sensitivity.clear()
            self.uncertainty.clear()
        else:
            self.apply(self.final_pattern)

    @torch.no_grad()
    def update_importance(self) -> None:
        """Ī ← β1 Ī + (1 − β1) I,  Ū ← β2 Ū + (1 − β2) |I − Ī|, I = |w · ∂L/∂w| per entry."""
        for i, adapter in enumerate(self.adapters):
            for name, p in adapter.triplet().items():
                key = (i, name)
                if key not in self.sensitivity:
                    self.sensitivity[key], self.uncertainty[key] = torch.zeros_like(p), torch.zeros_like(p)
                sensitivity = (p * p.grad).abs()
                self.sensitivity[key] = self.beta1 * self.sensitivity[key] + (1 - self.beta1) * sensitivity
                surprise = (sensitivity - self.sensitivity[key]).abs()
                self.uncertainty[key] = self.beta2 * self.uncertainty[key] + (1 - self.beta2) * surprise

    def triplet_scores(self, i: int) -> torch.Tensor:
        """S_k = s(Λ_k) + mean_j s(Q_kj) + mean_j s(P_jk) for layer i, with s = Ī·Ū."""
        s = {name: self.sensitivity[(i, name)] * self.uncertainty[(i, name)] for name in ("P", "Lambda", "Q")}
        return s["Lambda"] + (s["Q"].mean(dim=-1) + s["P"].mean(dim=-2))

    def mask_to_budget(self, budget: int) -> list[torch.Tensor]:
        """Zero the Λ_i whose scores are among the init_budget − budget lowest of all layers (ties at
        the threshold all go, as in the references); return the surviving pattern."""
        scores = [self.triplet_scores(i) for i in range(len(self.adapters))]
        drop = self.init_budget - budget
        if drop > 0:
            threshold = torch.kthvalue(torch.cat(scores, dim=-1), drop, dim=-1, keepdim=True).values
            pattern = [s > threshold for s in scores]
        else:
            pattern = [torch.ones_like(s, dtype=torch.bool) for s in scores]
        self.apply(pattern)
        return pattern

    @torch.no_grad()
    def apply(self, pattern: list[torch.Tensor]) -> None:
        for adapter, keep in zip(self.adapters, pattern):
            adapter.Lambda.masked_fill_(~keep, 0.0)


@dataclasses.dataclass
class _StackedTriplet:
    """One layer's P, Λ and Q of K runs stacked, read by a :class:`RankAllocator` as an adapter (the
    gradients in ``.grad``, as after ``backward``)."""

    P: torch.Tensor
    Lambda: torch.Tensor
    Q: torch.Tensor
    init_rank: int

    def triplet(self) -> dict[str, torch.Tensor]:
        return {"P": self.P, "Lambda": self.Lambda, "Q": self.Q}


@register(
    "adalora",
    label="AdaLoRA",
    hparams=AdaLoRAHParams,
    default_rank=2,
    param_count=_trainable_count,
    color="#999933",
    marker="*",
    reference="Zhang et al. 2023; PEFT AdaLoraModel / RankAllocator; QingruZhang/AdaLoRA loralib",
)
class AdaLoRA(LowRank):
    """P diag(Λ) Q on a frozen W0, through the family's forward / merge with factors (P, diag(Λ) Q)."""

    trainable_names = ("P", "Lambda", "Q")

    def __init__(self, base: nn.Linear, rank: int, hp: AdaLoRAHParams, *, streams: Streams, shared: RankAllocator):
        init_rank = hp.initial_rank(rank)
        super().__init__(base, rank, (init_rank if hp.alpha is None else hp.alpha) / (init_rank + 1e-5))
        self.init_rank = init_rank
        self.orth_reg_weight = hp.orth_reg_weight
        self.Q = nn.Parameter(torch.empty(self.init_rank, self.in_features, **like(base)))  # right singular vectors
        self.Lambda = nn.Parameter(torch.zeros(self.init_rank, **like(base)))  # singular values
        self.P = nn.Parameter(torch.empty(self.out_features, self.init_rank, **like(base)))  # left singular vectors
        nn.init.normal_(self.Q, std=0.02, generator=streams.init)
        nn.init.normal_(self.P, std=0.02, generator=streams.init)
        # A plain attribute, not a submodule: the allocator is shared and holds no parameters.
        self.allocator = shared
        self.allocator.register(self)

    @classmethod
    def check(cls, out_features: int, in_features: int, rank: int, hp: AdaLoRAHParams) -> None:
        require(rank <= hp.initial_rank(rank), f"needs 1 <= rank <= init_rank = {hp.initial_rank(rank)}, got {rank}")

    @classmethod
    def make_shared(cls, layers: list[nn.Linear], rank: int, hp: AdaLoRAHParams, streams: Streams) -> RankAllocator:
        """One allocator for all adapted layers; the adapters register with it as they are built."""
        schedule = ("tinit", "tfinal", "deltaT", "beta1", "beta2")
        return RankAllocator(rank, **{name: getattr(hp, name) for name in schedule})

    def triplet(self) -> dict[str, torch.Tensor]:
        return {"P": self.P, "Lambda": self.Lambda, "Q": self.Q}

    def factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        # (B, A) = (P, diag(Λ) Q): forward computes x (ΛQ)ᵀ Pᵀ, as PEFT's x (A·E)ᵀ Bᵀ.
        return self.P, self.Lambda[:, None] * self.Q

    @property
    def effective_rank(self) -> int:
        """The number of non-zero Λ entries: the rank the allocator has left this layer."""
        return int(torch.count_nonzero(self.Lambda))

    def regularization(self) -> torch.Tensor:
        """This layer's share of γ·mean over all 2L factors of ‖PᵀP − I‖_F and ‖QQᵀ − I‖_F (PEFT)."""
        eye = torch.eye(self.init_rank, dtype=self.P.dtype, device=self.P.device)
        penalty = torch.linalg.matrix_norm(self.P.T @ self.P - eye) + torch.linalg.matrix_norm(self.Q @ self.Q.T - eye)
        return self.orth_reg_weight * penalty / (2 * len(self.allocator.adapters))

    def on_step(self, step: int, total_steps: int) -> None:
        self.allocator.arrive(self, step, total_steps)

    @classmethod
    def stacked_on_step(
        cls, runs: list[list[AdaLoRA]], stacked: Callable[[nn.Module, str], torch.Tensor]
    ) -> Callable[[int, int], None]:
        """The runs' budgets as one allocator over the stacked triplets: scores, thresholds and masks
        are taken per run (the allocator's tensors carry the leading run dimension)."""
        allocators = [run[0].allocator for run in runs]
        schedules = {(a.target_rank, a.tinit, a.tfinal, a.deltaT, a.beta1, a.beta2) for a in allocators}
        if len(schedules) > 1:
            raise ValueError(f"stacked AdaLoRA runs need one budget schedule, got {sorted(schedules, key=str)}")
        first = allocators[0]
        schedule = {name: getattr(first, name) for name in ("tinit", "tfinal", "deltaT", "beta1", "beta2")}
        allocator = RankAllocator(first.target_rank, **schedule)
        for adapter in first.adapters:
            allocator.register(_StackedTriplet(*(stacked(adapter, name) for name in ("P", "Lambda", "Q")),
                                               adapter.init_rank))
        return allocator.allocate

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, target_rank={self.rank}, init_rank={self.init_rank}"
