"""The adapter contract as checks that can fail, for any registered method (built-in or external).

Each check builds a small float64 model of its own (two Linear layers with d != k, so that a
transposition slip cannot hide) and returns a :class:`Verdict`. ``python -m adapters.check`` runs
them on an external file; the test suite runs them on every registered method. The bias belongs
to the base layer: an adapter computes ``F.linear(x, W', b)`` with the base's ``b``, never trains
or changes it (full fine-tuning, which wraps no layer, trains every bias).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from adapters.base import Adapter
from adapters.probe import largest_tensor_in_step
from adapters.registry import build, get
from adapters.stacked import StackedRuns, unstackable
from adapters.step import step
from adapters.targets import attach, trained_layer_names

TARGETS = ["0", "2"]  # both Linear layers of :func:`small_model`
# float64: a wrong merge or init is off by O(1e-2) or more, rounding by O(1e-15).
EXACT = 1e-10
MOVED = 1e-3


@dataclass(frozen=True)
class Verdict:
    check: str
    passed: bool
    detail: str = ""


def small_model(seed: int = 0) -> nn.Sequential:
    """Linear(16 -> 12) . Tanh . Linear(12 -> 10), float64, initialised from ``seed`` alone."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(16, 12), nn.Tanh(), nn.Linear(12, 10)).double()


def _inputs(rows: int, features: int, seed: int) -> torch.Tensor:
    return torch.randn(rows, features, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def gap(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b|, NaN when either holds a NaN or an infinity (so no tolerance can pass it)."""
    difference = (a - b).abs()
    return difference.max().item() if torch.isfinite(difference).all() else math.nan


def within(value: float, tolerance: float) -> bool:
    return math.isfinite(value) and value < tolerance


def perturb_(module: nn.Module, seed: int = 1, scale: float = 0.5) -> None:
    """Move every trainable parameter off its initial value, so a zero-at-init update is non-zero."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            if p.requires_grad:
                p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))


def train_(model: nn.Module, adapters: list[Adapter], x: torch.Tensor, y: torch.Tensor, steps: int = 6) -> list[float]:
    """A few full-batch Adam steps (lr 1e-2) towards ``y`` through :func:`adapters.step.step`; the losses."""
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    return [float(step(model, optimizer, adapters, F.mse_loss, x, y, i, steps)) for i in range(steps)]


def identity_at_init(method: str) -> Verdict:
    model = small_model()
    x = _inputs(32, 16, 0)
    adapted = copy.deepcopy(model)
    attach(adapted, method, TARGETS, seed=3)
    worst = gap(adapted(x), model(x))
    return Verdict("identity at init", within(worst, EXACT), f"max |adapted(x) - base(x)| = {worst:.2e}")


def forward_equals_merged_weight(method: str) -> Verdict:
    adapters = attach(small_model(), method, TARGETS, seed=5)
    if not adapters:
        return Verdict("forward equals merged weight", True, "no per-layer adapter")
    gaps, moves = [], []
    for adapter in adapters:
        perturb_(adapter)
        x = _inputs(20, adapter.in_features, 1)
        out = adapter(x)
        gaps.append(gap(out, F.linear(x, adapter.merged_weight(), adapter.bias)))
        moves.append(gap(out, adapter.base_forward(x)))
        gaps.append(gap(adapter.delta_weight(), adapter.merged_weight() - adapter.base_weight))
    worst = math.nan if any(map(math.isnan, gaps)) else max(gaps)
    moved = math.nan if any(map(math.isnan, moves)) else min(moves)
    passed = within(worst, EXACT) and math.isfinite(moved) and moved > MOVED
    detail = f"max |forward - F.linear(x, W', b)| = {worst:.2e}; perturbed output moves by {moved:.2e}"
    return Verdict("forward equals merged weight", passed, detail)


def finite_outputs(method: str) -> Verdict:
    """Forward, merged weight, update and regulariser hold no NaN or infinity, at init and perturbed."""
    model = small_model()
    adapters = attach(model, method, TARGETS, seed=2)
    x = _inputs(20, 16, 2)
    bad = []
    for when in ("at init", "perturbed"):
        if when == "perturbed":
            perturb_(model)
        terms = {"forward": model(x)}
        for i, adapter in enumerate(adapters):
            terms[f"merged weight {i}"] = adapter.merged_weight()
            terms[f"update {i}"] = adapter.delta_weight()
            extra = adapter.regularization()
            if extra is not None:
                terms[f"regulariser {i}"] = extra
        bad += [f"{name} {when}" for name, value in terms.items() if not torch.isfinite(value).all()]
    detail = f"not finite: {', '.join(bad)}" if bad else "forward, merged weight, update and regulariser finite"
    return Verdict("finite outputs", not bad, detail)


def bias_is_the_base(method: str) -> Verdict:
    """The bias belongs to the base layer: after training the adapter's bias is still the base's."""
    model = small_model()
    before = copy.deepcopy(model)
    adapters = attach(model, method, TARGETS, seed=4)
    if not adapters:
        return Verdict("bias is the base's", True, "no per-layer adapter")
    train_(model, adapters, _inputs(24, 16, 3), _inputs(24, 10, 4))
    for name, adapter in zip(TARGETS, adapters):
        base = before.get_submodule(name).bias
        if isinstance(adapter.bias, nn.Parameter) or (adapter.bias is not None and adapter.bias.requires_grad):
            return Verdict(
                "bias is the base's", False, f"layer {name}: the adapter trains the bias; it belongs to the base"
            )
        if (base is None) != (adapter.bias is None) or (base is not None and not torch.equal(base, adapter.bias)):
            return Verdict("bias is the base's", False, f"layer {name}: the adapter changed the base layer's bias")
    return Verdict("bias is the base's", True, "unchanged and frozen after training")


def only_its_parameters_move(method: str) -> Verdict:
    model = small_model()
    before = copy.deepcopy(model)
    adapters = attach(model, method, TARGETS, seed=0)
    declared = {id(p) for a in adapters for n, p in a.named_parameters() if n in type(a).trainable_names}
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    if adapters and trainable != declared:
        return Verdict("only its parameters move", False, "trainable tensors differ from the declared trainable_names")
    initial = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    train_(model, adapters, _inputs(24, 16, 0), _inputs(24, 10, 1))
    now = dict(model.named_parameters())
    still = [n for n, value in initial.items() if value.numel() and torch.equal(value, now[n])]
    if still:
        return Verdict("only its parameters move", False, f"trainable {', '.join(still)} never moved")
    if adapters:
        for name, param in before.named_parameters():
            layer, _, leaf = name.rpartition(".")
            adapted = isinstance(model.get_submodule(layer), Adapter)
            frozen_name = "base_weight" if leaf == "weight" else leaf
            current = getattr(model.get_submodule(layer), frozen_name) if adapted else model.get_parameter(name)
            if not torch.equal(param, current):
                return Verdict("only its parameters move", False, f"frozen {name} moved")
    return Verdict("only its parameters move", True, f"{len(initial)} trainable tensors moved, the rest did not")


def count_equals_formula(method: str) -> Verdict:
    model = small_model()
    layers = map(model.get_submodule, trained_layer_names(model, method, TARGETS))
    shapes = [(m.out_features, m.in_features) for m in layers]
    attach(model, method, TARGETS, seed=0)
    counted = sum(p.numel() for p in model.parameters() if p.requires_grad)
    expected = get(method).expected_params(shapes, None)
    return Verdict("count equals formula", counted == expected > 0, f"counted {counted}, formula {expected}")


def seeded_determinism(method: str) -> Verdict:
    if get(method).adapter is None:
        return Verdict("seeded determinism", True, "no per-layer adapter")
    layer = small_model()[0]
    first, second = (build(method, layer, seed=7).state_dict() for _ in range(2))
    same = first.keys() == second.keys() and all(torch.equal(first[n], second[n]) for n in first)
    return Verdict("seeded determinism", same, "same seed, same tensors" if same else "same seed, different tensors")


def dense_update_as_declared(method: str) -> Verdict:
    spec = get(method)
    if spec.adapter is None:
        return Verdict("no d x k matrix unless declared", True, "no per-layer adapter")
    d, k = 64, 48  # the largest honest tensor is batch x d = 256 << d * k = 3072
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        layer = nn.Linear(k, d, dtype=torch.float64)
    adapter = build(method, layer, rank=4 if spec.takes_rank else None, seed=0)
    perturb_(adapter)
    largest = largest_tensor_in_step(adapter, _inputs(4, k, 0))
    forms = largest >= d * k
    declared = spec.dense_update is not None
    detail = f"largest new tensor {largest} elements, d x k = {d * k}; declared: {spec.dense_update or 'never'}"
    return Verdict("no d x k matrix unless declared", forms == declared, detail)


def trains_in_both_engines(method: str) -> Verdict:
    """Two runs (other seeds, other data) trained alone and stacked (:mod:`adapters.stacked`) take the
    same losses step by step, regularisers and ``on_step`` mechanisms included: the quality studies
    train every method stacked."""
    name = "trains in both engines"
    runs = []
    for seed in (0, 1):
        model = small_model(seed)
        runs.append((model, attach(model, method, TARGETS, seed=seed), _inputs(24, 16, 2 * seed), _inputs(24, 10, 7)))
    refused = unstackable(runs[0][1])
    if refused:
        return Verdict(name, False, f"{', '.join(refused)} has an on_step but no stacked_on_step")
    steps = 8  # AdaLoRA's default schedule (warm-up, budgeting, final) acts within 8 steps
    alone = [train_(*copy.deepcopy((model, hooks)), x, y, steps) for model, hooks, x, y in runs]
    stacked = StackedRuns([r[0] for r in runs], [r[1] for r in runs], [1e-2, 1e-2], F.mse_loss)
    x, y = torch.stack([r[2] for r in runs]), torch.stack([r[3] for r in runs])
    together = torch.stack([stacked.step(x, y, i, steps)[0] for i in range(steps)]).T.tolist()
    # float64: the two engines differ only by the order batched products sum in, O(1e-15).
    gap = max(abs(a - b) / max(abs(b), 1e-300) for run, ref in zip(together, alone) for a, b in zip(run, ref))
    finite = all(math.isfinite(v) for run in alone for v in run)
    return Verdict(name, finite and gap < EXACT, f"largest relative difference of the {steps} losses {gap:.2e}")


CHECKS: tuple[Callable[[str], Verdict], ...] = (
    identity_at_init,
    finite_outputs,
    forward_equals_merged_weight,
    bias_is_the_base,
    only_its_parameters_move,
    count_equals_formula,
    seeded_determinism,
    dense_update_as_declared,
    trains_in_both_engines,
)


def run_checks(method: str) -> list[Verdict]:
    """Every check on ``method``; a check that raises fails, with the error as its detail."""
    verdicts = []
    for check in CHECKS:
        try:
            verdicts.append(check(method))
        except Exception as error:  # the contract reports a crash as a failed property, not a traceback
            verdicts.append(Verdict(check.__name__.replace("_", " "), False, f"{type(error).__name__}: {error}"))
    return verdicts
