"""The papers' claims, tested: a verdict with its evidence per setting (width, shift, rank, step budget).

For every width and shift family, adapts each method at every learning rate of the grid and at the
paper's fixed 1e-3 (several seeds, each its own task draw; stored cells are reused), extends the
grid of any (method, rank) whose selected lr sits at an edge, times initialisation and one training
step, then measures each claim of :mod:`nfl.claims` at the fixed lr and at each method's tuned lr;
at the robustness widths also at one common rank and at a long step budget. Writes ``claims.md``
(the main tables, then a matrix of every claim's verdict across settings), ``verdicts.json`` (the
main tables' cells, for ``studies.replication``) and the no-free-lunch figures, and prints the text.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, get_args

import numpy as np

from nfl.claims import (
    CLAIMS,
    RULE,
    Claim,
    Effect,
    Part,
    clearance,
    combine,
    decide,
    firm,
    log_losses,
    paired_difference,
    pairwise_spread,
    timing_ratio,
)
from nfl.config import Shift
from nfl.selection import at_tuned_lr, extension, grid_lattice, groups, lr_scores, resampled_lrs, resampled_metric
from nfl.span import random_baseline
from nfl.stats import CONFIDENCE, kendall_tau_interval
from studies import adaptability, init_time, span, train_time
from studies.common import StudySetup, study_parser, with_failures
from studies.outputs import Outputs, show

FIXED_LR = 1e-3  # the paper's adaptation learning rate
SHIFTS = get_args(Shift)
LR_BOUNDS = (1e-6, 10.0)  # how far an edge's grid may be extended
# Verdicts on disjoint seed sets agreed 81% of the time at 3 seeds a set; 89% at 10 (15 pairs) and 91% at 20
# (6 pairs), where twice the time buys fewer inconclusive cells, not more agreement (docs/design.md).
DEFAULT_SEEDS = 10
COMMON_RANK = 8
# At each method's tuned lr (width 64, out_of_span, 3 seeds; 1000-step histories cut short, AdaLoRA left out
# since its schedule depends on the budget) 53% of runs selected their last step at 100 steps, 30% at 300,
# 13% at 500, none at 1000: 300 is the shortest budget at which most runs have stopped improving.
LONG_BUDGET = 300
CLAIM10_RESAMPLES = 1000
# Claim 14's sweep: LoRA at ranks 1-64 with alpha fixed at 8, the ranks' geometric middle, so the scale
# alpha / r runs from 8 to 1/8 around the 1 of nfl's LoRA (alpha = r); run in the main columns only.
RANK_SWEEP = (1, 4, 16, 64)
RANK_SWEEP_ALPHA = 8
# Over 80 seeds of the default preset the pretrained model's base-task validation loss had a median of 0.0015;
# two seeds reached 0.030 and 0.047, the next worst 0.0076: ten times the median sets those two apart.
PRETRAINING_OUTLIER = 10.0
VERDICTS_FILE = "verdicts.json"  # the main tables' verdicts, one object per cell
Records = list[dict[str, Any]]


# --- what a column of the tables is ---------------------------------------------------------------

@dataclass(frozen=True)
class Setting:
    """Where a verdict is measured: MLP width, shift family, rank (None: each method's paper rank)
    and step budget; on the gpt testbed the width is d_model and there is no shift family (one column,
    its preset's settings, stored under ``gpt/``)."""

    width: int
    shift: str
    rank: int | None
    steps: int
    testbed: str = "mlp"

    def label(self) -> str:
        rank = "paper ranks" if self.rank is None else f"rank {self.rank}"
        if self.testbed != "mlp":
            return f"{self.testbed} d{self.width}, {rank}, {self.steps} steps"
        return f"w{self.width} {self.shift.replace('_', '-')}, {rank}, {self.steps} steps"

    def directory(self) -> str:
        if self.testbed != "mlp":
            return self.testbed
        return f"{self.shift}-w{self.width}" + ("" if self.rank is None else f"-r{self.rank}") + f"-s{self.steps}"


@dataclass
class Column:
    """One setting's records: every grid run (extension included), the timing records of its width
    and ranks, and the lrs added beyond the grid per (method, rank)."""

    setting: Setting
    grid: Records
    timing: dict[str, Records]
    extended: dict[tuple[str, int | None], list[float]] = field(default_factory=dict)
    seeds: int = 0
    note: str = ""  # what makes the shift family what it is (studies.span)
    rank_sweep: Records = field(default_factory=list)  # LoRA at RANK_SWEEP with alpha fixed (claim 14)


# --- measuring a claim from records -------------------------------------------------------------

QUALITY_KEYS = {"test_loss": "test_loss", "forgetting": "forgetting_base_test_loss",
                "initial_grad_norm": "initial_grad_norm", "early_loss": "early_test_loss", "sharpness": "sharpness"}
AT_INITIALISATION = ("initial_grad_norm", "sharpness")  # the same at every lr: no lr choice to carry
TUNED_ONLY = ("lr_sharpness", "tuned_lr", "rank_lr")  # metrics of tuned lrs: the fixed-lr protocol has none
TIMING_STUDIES = {"init_time": "init_time", "step_time": "train_time"}


def per_seed(records: Records, methods: tuple[str, ...], key: str) -> dict[int, float]:
    """seed -> log10 of ``key``, averaged over ``methods`` (a geometric mean), on the seeds all share."""
    values: dict[str, dict[int, float]] = {m: {} for m in methods}
    for r in records:
        value = r["summary"].get(key)
        if r["method"] in values and value is not None and value > 0:
            values[r["method"]][r["seed"]] = math.log10(value)
    common = set.intersection(*(set(v) for v in values.values())) if methods else set()
    return {s: float(np.mean([values[m][s] for m in methods])) for s in sorted(common)}


def with_lr_selection(effect: Effect, grid: Records, part: Part, key: str, resamples: int = CLAIM10_RESAMPLES,
                      seed: int = 0) -> Effect:
    """A paired effect at tuned lrs, its interval widened to the percentile interval of the same effect
    with the seeds resampled and every method's lr re-selected on each resample: which grid point wins
    is itself an estimate from these seeds, and where two points nearly tie the metric reported can
    jump with it (LoRA's early loss: x0.67 between its two near-tied lrs on two disjoint seed sets)."""
    methods = dict.fromkeys(part.treatment + part.control)
    mine = {m: records for (m, _), records in groups(grid).items() if m in methods}
    if len(mine) < len(methods):
        return effect
    seeds = sorted(set.intersection(*({r["seed"] for r in records} for records in mine.values())))
    if len(seeds) < 2:
        return effect
    draws = seed_draws(len(seeds), resamples, seed)[1]
    logs = {m: resampled_metric(mine[m], key, draws, seeds) for m in methods}
    treatment, control = (np.mean([logs[m] for m in side], axis=0) for side in (part.treatment, part.control))
    low, high = np.nanquantile((treatment - control).mean(axis=1), [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2])
    return replace(effect, low=min(effect.low, float(low)), high=max(effect.high, float(high)),
                   interval=f"{effect.interval}, lr re-selected")


def spread(records: Records) -> tuple[Effect, tuple[str, str]] | None:
    """log10 of the worst over the best adapter's test loss (geometric means over the seeds all
    share), with simultaneous paired intervals (nfl.claims.pairwise_spread); full FT is no adapter."""
    samples = {m: per_seed(records, (m,), "test_loss") for m in dict.fromkeys(r["method"] for r in records)
               if m != "full"}
    samples = {m: s for m, s in samples.items() if s}
    if len(samples) < 2:
        return None
    return pairwise_spread(samples)


def lr_sharpness(grid_records: Records, resamples: int = CLAIM10_RESAMPLES, seed: int = 0) -> Effect | None:
    """Spearman's rho across (method, rank)s of the interpolated tuned lr against 1 / lambda_max
    (``summary["sharpness"]``, at initialisation, mean over seeds), with a percentile interval from
    resampling seeds: each resample re-selects every lr on its seeds and re-averages lambda_max."""
    tables = {}
    for key, mine in groups(grid_records).items():
        sharp = {r["seed"]: r["summary"].get("sharpness") for r in mine}
        if all(s is not None and s > 0 for s in sharp.values()):
            tables[key] = (mine, sharp)
    if len(tables) < 3:
        return None
    seeds = sorted(set.intersection(*(set(sharp) for _, sharp in tables.values())))
    if len(seeds) < 2:
        return None
    rhos = []
    for idx in seed_draws(len(seeds), resamples, seed):
        lrs = np.array([resampled_lrs(mine, idx, seeds) for mine, _ in tables.values()])  # (methods, B)
        inverse = np.array([1 / np.array([sharp[s] for s in seeds])[idx].mean(axis=1) for _, sharp in tables.values()])
        rhos.append(np.array([_spearman(lrs[:, b], inverse[:, b]) for b in range(idx.shape[0])]))
    low, high = np.nanquantile(rhos[1], [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2])
    return Effect(float(rhos[0][0]), float(low), float(high), len(seeds), "seed bootstrap")


def seed_draws(n: int, resamples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(1, n) indices of every seed once, and (resamples, n) indices drawn with replacement."""
    return np.arange(n)[None, :], np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def lr_ratio(grid_records: Records, part: Part, resamples: int = CLAIM10_RESAMPLES, seed: int = 0) -> Effect | None:
    """log10 of the treatment's interpolated tuned lr over the control's (one method a side), with a
    percentile interval from resampling seeds, both sides re-tuned on the same resample."""
    mine = {method: records for (method, _), records in groups(grid_records).items()}
    (treatment,), (control,) = part.treatment, part.control
    if treatment not in mine or control not in mine:
        return None
    seeds = sorted({r["seed"] for r in mine[treatment]} & {r["seed"] for r in mine[control]})
    if len(seeds) < 2:
        return None
    (estimate,), ratios = (
        np.log10(resampled_lrs(mine[treatment], idx, seeds) / resampled_lrs(mine[control], idx, seeds))
        for idx in seed_draws(len(seeds), resamples, seed)
    )
    low, high = np.nanquantile(ratios, [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2])
    return Effect(float(estimate), float(low), float(high), len(seeds), "seed bootstrap")


def rank_lr_change(sweep: Records, method: str, resamples: int = CLAIM10_RESAMPLES, seed: int = 0) -> Effect | None:
    """log10 of how much ``method``'s interpolated tuned lr changes from the sweep's lowest rank to its
    highest, by the least-squares line of log lr against log rank through every rank's optimum; with a
    percentile interval from resampling seeds, every rank re-tuned on the same resample."""
    mine = {rank: records for (m, rank), records in groups(sweep).items() if m == method}
    if len(mine) < 2:
        return None
    seeds = sorted(set.intersection(*({r["seed"] for r in records} for records in mine.values())))
    if len(seeds) < 2:
        return None
    x = np.log10(sorted(mine))
    x = (x - x.mean()) / np.sum((x - x.mean()) ** 2)  # the least-squares slope is this dotted with log lr
    span = np.log10(max(mine) / min(mine))
    (estimate,), changes = (
        span * (x @ np.log10([resampled_lrs(mine[rank], idx, seeds) for rank in sorted(mine)]))
        for idx in seed_draws(len(seeds), resamples, seed)
    )
    low, high = np.nanquantile(changes, [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2])
    return Effect(float(estimate), float(low), float(high), len(seeds), "seed bootstrap")


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho over the finite pairs, 0 where a resample is constant: rho is undefined
    there, and 0, no tracking, is the reading that favours no claim."""
    from scipy import stats

    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    if a.size < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return float(stats.spearmanr(a, b).statistic)


def timing_effect(records: Records, part: Part) -> Effect | None:
    """log10 ratio of the timing costs (geometric mean over a side's methods), each at its rank."""
    costs = {r["method"]: (r["timing"]["fastest_s"], r["timing"]["confirming_s"]) for r in records}
    if not all(m in costs for m in part.treatment + part.control):
        return None

    def side(methods: tuple[str, ...]) -> tuple[float, float]:
        return tuple(float(np.exp(np.mean(np.log([costs[m][i] for m in methods])))) for i in (0, 1))

    return timing_ratio(side(part.treatment), side(part.control))


@dataclass(frozen=True)
class Measured:
    """A part's effect and, for a spread, the pair that made it."""

    effect: Effect | None
    pair: tuple[str, str] | None = None


def measure(part: Part, quality_records: Records, grid_records: Records | None, timing: dict[str, Records],
            rank_sweep: Records | None = None) -> Measured:
    """The effect a part of a claim predicts positive (before orientation), measured from the ratio
    the part claims (``Part.target``); no effect without records, or for a tuned-lr metric without a
    grid (the fixed-lr protocol tunes nothing) or, for rank_lr, without a rank sweep."""
    measured = _measure(part, quality_records, grid_records, timing, rank_sweep)
    if measured.effect is None or part.target == 1.0:
        return measured
    return Measured(measured.effect.minus(math.log10(part.target)), measured.pair)


def _measure(
    part: Part, quality_records: Records, grid_records: Records | None, timing: dict[str, Records],
    rank_sweep: Records | None,
) -> Measured:
    if part.metric in QUALITY_KEYS:
        key = QUALITY_KEYS[part.metric]
        a, b = (per_seed(quality_records, side, key) for side in (part.treatment, part.control))
        if not (a and b):
            return Measured(None)
        effect = paired_difference(a, b)
        selected = grid_records and part.metric not in AT_INITIALISATION
        return Measured(with_lr_selection(effect, grid_records, part, key) if selected else effect)
    if part.metric == "tuned_lr":
        return Measured(lr_ratio(grid_records, part) if grid_records else None)
    if part.metric in TIMING_STUDIES:
        return Measured(timing_effect(timing.get(TIMING_STUDIES[part.metric], []), part))
    if part.metric == "spread":
        found = spread(quality_records)
        return Measured(*found) if found else Measured(None)
    if part.metric == "lr_sharpness":
        return Measured(lr_sharpness(grid_records) if grid_records else None)
    if part.metric == "rank_lr":
        return Measured(rank_lr_change(rank_sweep, part.treatment[0]) if grid_records and rank_sweep else None)
    raise ValueError(f"claim part with unknown metric {part.metric!r}")


def interval_tag(how: str) -> str:
    """A short name for :func:`nfl.claims.decide`'s account of the interval it used."""
    if how.startswith("hull"):
        return "hull"
    if how.startswith("simultaneous"):
        return "sim-t"
    if how.startswith("paired t"):
        return "t" + ("+sel" if "lr re-selected" in how else "") + ("+sf" if "sign-flip agrees" in how else "")
    return {"fastest to confirming": "band", "seed bootstrap": "boot"}.get(how, how)


def effect_text(part: Part, measured: Measured) -> str:
    effect = measured.effect
    if part.metric == "lr_sharpness":
        return f"ρ {effect.estimate:.2f} [{effect.low:.2f}, {effect.high:.2f}]"
    if part.target != 1.0:  # shown as the ratio itself, beside the ratio claimed
        effect = effect.minus(-math.log10(part.target))
    ratio = lambda v: f"{10 ** v:.3g}" if math.isfinite(v) else ("∞" if v > 0 else "0")  # noqa: E731
    pair = f" {measured.pair[0]}/{measured.pair[1]}" if measured.pair else ""
    claimed = f" (claimed ~{part.target:g})" if part.target != 1.0 else ""
    return f"×{ratio(effect.estimate)}{pair} [{ratio(effect.low)}, {ratio(effect.high)}]{claimed}"


@dataclass(frozen=True)
class Judged:
    """A claim in one column: its verdict, each part's verdict, and the cell's text."""

    verdict: str
    parts: tuple[str, ...]
    text: str
    firm: bool = False  # its intervals clear every margin by at least their half-width (nfl.claims.firm)

    @property
    def short(self) -> str:
        """S, N, C or ? (— where not measured), in parentheses where the verdict is not firm."""
        letter = SHORT[self.verdict]
        return letter if self.firm or not self.verdict else f"({letter})"


def judge(claim: Claim, quality_records: Records, grid_records: Records | None, timing: dict[str, Records],
          rank_sweep: Records | None = None) -> Judged:
    """Each part's verdict beside its effect and interval, and the claim's (the weakest part)."""
    if any(p.metric in TUNED_ONLY for p in claim.parts) and not grid_records:
        return Judged("", (), "— (needs tuned lrs)")
    if any(p.metric == "rank_lr" for p in claim.parts) and not rank_sweep:
        return Judged("", (), "— (needs the rank sweep: the main columns run it)")
    shown, verdicts, clear = [], [], []
    for part in claim.parts:
        measured = measure(part, quality_records, grid_records, timing, rank_sweep)
        outcome, how = decide(measured.effect, part.direction, part.margin)
        verdicts.append(outcome)
        clear.append(clearance(measured.effect, part.direction, part.margin))
        evidence = "no records" if measured.effect is None else f"{effect_text(part, measured)} ({interval_tag(how)})"
        shown.append(f"{outcome} {evidence}" if len(claim.parts) > 1 else evidence)
    overall, settled = combine(verdicts), firm(verdicts, clear)
    return Judged(overall, tuple(verdicts), f"**{overall}**{' (firm)' if settled else ''}: " + "; ".join(shown),
                  settled)


# --- from records to claims.md and figures ----------------------------------------------------------

def judged_column(records: Records, grid: Records | None, timing: dict[str, Records],
                  rank_sweep: Records | None = None) -> list[Judged]:
    """Every claim judged on one protocol's records (``grid`` None: the fixed lr, which tunes nothing)."""
    return [judge(claim, records, grid, timing, rank_sweep) for claim in CLAIMS]


def table(cells: dict[str, list[Judged]]) -> list[str]:
    """Markdown rows, one per claim: claim, measurement, then one cell per named column."""
    head = ["#", "claim", "measurement", *cells]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, claim in enumerate(CLAIMS):
        judged = " | ".join(column[i].text for column in cells.values())
        lines.append(f"| {claim.number} | {claim.text} ({claim.source}) | {claim.measurement} | {judged} |")
    return lines


SHORT = {"supported": "S", "not supported": "N", "contradicted": "C", "inconclusive": "?", "": "—"}


def matrix(cells: dict[str, list[Judged]]) -> list[str]:
    """Each claim's verdict across the named settings: the robustness matrix."""
    head = ["#", *cells]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, claim in enumerate(CLAIMS):
        lines.append(f"| {claim.number} | " + " | ".join(column[i].short for column in cells.values()) + " |")
    return lines


def extension_note(column: Column) -> str:
    if not column.extended:
        return "no selected lr sat at a grid edge, so the grid was not extended."
    lrs = "; ".join(f"{m}{'' if r is None else f' r={r}'}: {', '.join(f'{lr:g}' for lr in added)}"
                    for (m, r), added in column.extended.items())
    return f"grid extended where the selected lr sat at an edge (by the grid's step, within {LR_BOUNDS}): {lrs}."


LEGEND = (
    "Each cell: the claim's verdict, *(firm)* when every interval in the cell lies at least its own half-width from "
    "each margin (for a contradicted claim, one contradicted part's interval suffices; on disjoint 10-seed runs firm "
    "verdicts agreed 98.5% of the time, the others 71%), then each "
    "part's verdict, its effect (a ratio, ×) with the 95% interval the verdict used, and which interval: "
    "t = paired t over seeds (a sign-flip interval needs 6 seeds), "
    "+sel = at tuned lrs, widened to the seed bootstrap that re-selects every method's lr on each resample (the "
    "choice of lr is itself an estimate), +sf = the sign-flip interval agrees, hull = it disagreed and the verdict "
    "used the hull of the two, "
    "sim-t = Bonferroni-simultaneous paired t over every pair of adapters (claim 9: the worst/best pair is named), "
    "band = the timing ratio's range over each cost's confirming rounds (from its fastest round to the slowest of "
    "the rounds that reproduced it: within 5% when confirmed; one sweep of rounds, not a sampling interval), "
    "boot = percentile interval over seeds resampled (claim 10 re-tunes every lr on each resample)."
)


def pretraining_outliers(records: Records, factor: float = PRETRAINING_OUTLIER) -> str:
    """A sentence naming the seeds whose pretrained model fits the base task ``factor`` times worse
    than the median seed's (validation loss), or nothing: such a task widens every paired interval."""
    losses = {r["seed"]: r["summary"].get("pretrained_base_val_loss") for r in records}
    losses = {seed: loss for seed, loss in losses.items() if loss is not None}
    if not losses:
        return ""
    median = float(np.median(list(losses.values())))
    far = {seed: loss for seed, loss in sorted(losses.items()) if loss > factor * median}
    if not far:
        return ""
    named = ", ".join(f"seed {seed} at {loss:.3g} (×{loss / median:.0f})" for seed, loss in far.items())
    return (f" Pretraining fit the base task more than {factor:g}× worse than on the median seed (base-task "
            f"validation loss {median:.3g}) on {named}: kept, since a verdict is about the task family as drawn; "
            "it widens the paired intervals.")


def multiple_comparisons_note(columns: list[Column]) -> str:
    parts = sum(len(claim.parts) for claim in CLAIMS)  # one 95% interval each
    return (f"Multiple comparisons: each tuned-lr column makes {parts} interval decisions "
            f"({parts * len(columns)} over the "
            f"{len(columns)} settings of the matrix), each at 95%, uncorrected: were every effect exactly at a margin, "
            f"about {0.025 * parts:.1f} per column could come out decisive by chance (one-sided 2.5% each). A verdict "
            "that holds across settings is worth more than a single cell; no Holm correction is applied because "
            "the claims are separate questions, each answered with its own interval.")


def outputs(columns: list[Column], command: str, out: Path) -> Outputs:
    """claims.md's text (the one table, "claims"), the no-free-lunch figures (one per width and
    budget) and verdicts.json from the columns' records; pure of computation."""
    from figures.claims import no_free_lunch_figure, rank_transfer_figure
    from figures.style import save  # here: matplotlib costs a second of every start-up

    lines = ["# What nfl says about the papers' claims", "", f"Command: `{command}`", "", f"Rule: {RULE}.", "",
             LEGEND, "", multiple_comparisons_note(columns), ""]
    tuned = {c.setting: judged_column(at_tuned_lr(c.grid), c.grid, c.timing, c.rank_sweep) for c in columns}
    sections: dict[tuple[str, int, str], list[Column]] = {}
    for column in columns:
        sections.setdefault((column.setting.testbed, column.setting.width, column.setting.shift), []).append(column)
    paths: list[Path] = []
    verdicts: list[dict[str, Any]] = []  # every main-table cell, for machines (studies.replication)
    for (testbed, width, shift), mine in sections.items():
        main = mine[0]
        cells = {}
        if testbed == "mlp":  # 1e-3 is the MiSS paper's lr for its MLP; on another testbed it means nothing
            cells[f"lr 1e-3, {main.setting.steps} steps"] = judged_column(
                [r for r in main.grid if r["lr"] == FIXED_LR], None, main.timing)
        for c in mine:
            rank = "" if c.setting.rank is None else f", rank {c.setting.rank}"
            cells[f"tuned lr, {c.setting.steps} steps{rank}"] = tuned[c.setting]
        lrs = sorted({r["lr"] for r in main.grid})
        title = f"width {width}, shift {shift}" if testbed == "mlp" else f"testbed {testbed}, d_model {width}"
        lines += [f"## {title}", "",
                  f"{main.seeds} seed(s), each its own task draw; learning rates tried "
                  f"{', '.join(f'{lr:g}' for lr in lrs)}; "
                  f"quality on {main.grid[0]['env']['device_name']}; timing costs (fastest rounds) on "
                  f"{timing_device(main.timing)}.{pretraining_outliers(main.grid)}", ""]
        lines += [f"- {c.setting.label()}: {extension_note(c)}" for c in mine] + [""]
        lines += [main.note, "", *table(cells), ""]
        seeds = sorted({r["seed"] for r in main.grid})
        verdicts += [{"section": title, "column": name, "seeds": seeds, "claim": claim.number,
                      "verdict": judged.verdict, "parts": list(judged.parts), "firm": judged.firm}
                     for name, column in cells.items() for claim, judged in zip(CLAIMS, column, strict=True)
                     if judged.verdict]
    lines += ["## Robustness: each claim's verdict (tuned lr) across settings", "",
              "S supported, N not supported, C contradicted, ? inconclusive, — not measurable here; in parentheses "
              "where the verdict is not firm (some interval ends within its half-width of a margin).", "",
              *matrix({c.setting.label(): tuned[c.setting] for c in columns}), ""]
    budgets = sorted({c.setting.steps for c in columns})
    for width in dict.fromkeys(c.setting.width for c in columns if c.setting.testbed == "mlp"):
        for steps in budgets:
            chosen = {c.setting.shift: at_tuned_lr(c.grid) for c in columns if c.setting.testbed == "mlp"
                      and c.setting.width == width and c.setting.steps == steps and c.setting.rank is None}
            if not chosen:
                continue
            seeds = max(c.seeds for c in columns)
            title = f"Test loss at tuned lr per shift family (width {width}, {steps} steps, {seeds} seeds)"
            saved = save(no_free_lunch_figure(chosen, title), out / f"no_free_lunch_w{width}_s{steps}")
            paths += saved
            lines += [f"![no free lunch, width {width}, {steps} steps]({saved[0].name})", ""]
    gpt = next((c for c in columns if c.setting.testbed == "gpt"), None)
    if gpt is not None:
        mlp = [c for c in columns if c.setting.testbed == "mlp" and c.setting.rank is None]
        first = mlp[0].setting
        mlp = [c for c in mlp if (c.setting.width, c.setting.steps) == (first.width, first.steps)]
        main = next((c for c in mlp if c.setting.shift == "out_of_span"), mlp[0])
        lines += transfer_lines(main, gpt, tuned, {c.setting.shift: c for c in mlp})
        figure = rank_transfer_figure({c.setting.shift: at_tuned_lr(c.grid) for c in mlp}, at_tuned_lr(gpt.grid),
                                      f"Rank by tuned test loss, MLP (width {first.width}, {first.steps} steps) "
                                      f"vs GPT (d_model {gpt.setting.width}, {gpt.setting.steps} steps)")
        saved = save(figure, out / "rank_transfer")
        paths += saved
        lines += [f"![rank on the MLP against rank on the GPT]({saved[0].name})", ""]
    (out / VERDICTS_FILE).write_text(json.dumps({"command": command, "cells": verdicts}, indent=1) + "\n")
    return {"claims": "\n".join(lines)}, [*paths, out / VERDICTS_FILE]


DECISIVE = ("supported", "not supported", "contradicted")


def agreement(mlp: str, gpt: str) -> str:
    """Whether two verdicts agree: yes or no where both are decisive, — where either is inconclusive
    or could not be measured (nothing to compare)."""
    if mlp not in DECISIVE or gpt not in DECISIVE:
        return "—"
    return "yes" if mlp == gpt else "no"


def ranking_row(shift: str, mlp: Records, gpt: Records) -> str:
    """One MLP shift family's ranking of the methods by tuned test loss against the GPT's: Kendall's
    tau over the methods both have, with its interval from each testbed's seeds resampled."""
    on_mlp, on_gpt = log_losses(at_tuned_lr(mlp)), log_losses(at_tuned_lr(gpt))
    common = [m for m in on_mlp if m in on_gpt]
    seeds = f"{len(next(iter(on_mlp.values())))} / {len(next(iter(on_gpt.values())))}" if common else "—"
    if len(common) < 2:
        return f"| {shift} | {len(common)} | {seeds} | — (needs 2 methods on both testbeds) |"
    tau, low, high = kendall_tau_interval(np.array([on_mlp[m] for m in common]), np.array([on_gpt[m] for m in common]))
    return f"| {shift} | {len(common)} | {seeds} | {tau:.2f} [{low:.2f}, {high:.2f}] |"


def transfer_lines(main: Column, gpt: Column, tuned: dict[Setting, list[Judged]],
                   by_shift: dict[str, Column]) -> list[str]:
    """The transfer section of claims.md: each claim's verdict (tuned lr) on the MLP's main column
    beside the GPT's and whether they agree; then each MLP shift family's ranking of the methods
    against the GPT's (Kendall's tau)."""
    mlp_label, gpt_label = main.setting.label(), gpt.setting.label()
    lines = ["## Does the toy transfer? MLP against GPT", "",
             f"Each claim's verdict at tuned lrs on the MLP ({mlp_label}) and on the GPT ({gpt_label}), by the same "
             "rule (in parentheses where not firm); agree: both decisive (S, N or C) and the same; — where either is "
             "inconclusive or not measurable.",
             "",
             f"| # | claim | MLP {mlp_label} | {gpt_label} | agree |", "|---|---|---|---|---|"]
    for claim, on_mlp, on_gpt in zip(CLAIMS, tuned[main.setting], tuned[gpt.setting], strict=True):
        lines.append(f"| {claim.number} | {claim.text} | {on_mlp.short} | {on_gpt.short} | "
                     f"{agreement(on_mlp.verdict, on_gpt.verdict)} |")
    lines += ["", "The methods ranked by test loss at each one's tuned lr (mean log10 over the seeds all methods "
              "share), each MLP shift family against the GPT: Kendall's tau with a 95% percentile interval from "
              "resampling each testbed's seeds independently (nfl.stats.kendall_tau_interval); 1: the same order, "
              "-1: reversed, 0: unrelated.", "",
              "| MLP shift family | methods | seeds MLP / GPT | Kendall's tau [95% interval] |", "|---|---|---|---|"]
    lines += [ranking_row(shift, c.grid, gpt.grid) for shift, c in by_shift.items()]
    return [*lines, ""]


def timing_device(timing: dict[str, Records]) -> str:
    first = next((rs[0] for rs in timing.values() if rs), None)
    if first is None:
        return "no timing records"
    return f"{first['env']['device_name']}, {first['timing']['num_threads']} thread(s)"


# --- running ------------------------------------------------------------------------------------

def sub_setup(setup: StudySetup, parser, setting: Setting) -> StudySetup:
    """The same command line for one setting, with its own store under --out."""
    argv = [*setup.argv, "--shift", setting.shift, "--width", str(setting.width),
            "--adapt-epochs", str(setting.steps), "--out", str(setup.out / setting.directory())]
    argv += [] if setting.rank is None else ["--ranks", str(setting.rank)]
    return StudySetup(parser, argv)


def run_column(sub: StudySetup, lrs: list[float]) -> tuple[Records, dict[tuple[str, int | None], list[float]]]:
    """Every method at the setting's ranks, every seed and lr of ``lrs``, the adaptability study's
    cells stored as ``adaptability.jsonl`` in the column's directory (``studies.report`` and a later
    run read them); then, while a (method, rank)'s selected lr is the edge of the lrs it tried, one
    more grid step beyond that edge (nfl.selection.extension). Returns the records and the lrs added."""
    lattice = grid_lattice(sub.lrs) if len(sub.lrs) > 1 else None
    wanted = {(m, r): list(lrs) for m, ranks in sub.method_ranks.items() for r in ranks}
    added: dict[tuple[str, int | None], list[float]] = {}
    while True:
        cell_groups = [group for (m, r), mine in wanted.items()
                       for group in sub.groups("adaptability", plan={m: [r]}, lrs=mine)]
        records = sub.run_groups("adaptability", lambda cells: adaptability.compute_group(sub, cells), cell_groups)
        sub.args.resume = True  # later passes add their cells to the store this one wrote
        more = False
        for key, mine in groups(records).items():
            beyond = extension(lr_scores(mine), lattice, LR_BOUNDS) if lattice else None
            if beyond is not None and beyond not in wanted[key]:
                wanted[key].append(beyond)
                added.setdefault(key, []).append(beyond)
                more = True
        if not more:
            return records, added


def gpt_setting(setup: StudySetup, parser) -> tuple[Setting, StudySetup]:
    """The gpt column: the same command line on the gpt testbed (its preset's settings where the command
    sets none), stored under --out/gpt."""
    sub = StudySetup(parser, [*setup.argv, "--testbed", "gpt", "--out", str(setup.out / "gpt")])
    return Setting(sub.config.width, "", None, sub.config.train.adapt_epochs, "gpt"), sub


def rank_sweep_setup(sub: StudySetup, parser) -> StudySetup:
    """Claim 14's sweep for one column: the column's command line for LoRA alone at RANK_SWEEP with alpha
    fixed, stored under the column's lora_ranks/, on the column's pretrained models."""
    ranks = ",".join(map(str, RANK_SWEEP))
    sweep = StudySetup(parser, [*sub.argv, "--methods", "lora", "--ranks", ranks, "--hparams",
                                f"lora.alpha={RANK_SWEEP_ALPHA}", "--out", str(sub.out / "lora_ranks")])
    sweep.share_pretraining(sub)  # alpha changes the adaptation only
    return sweep


def gpt_note(sub: StudySetup) -> str:
    gpt, train = sub.config.gpt, sub.config.train
    return (f"A byte-level GPT (d_model {gpt.d_model}, {gpt.n_layer} block(s), context {gpt.context}) pretrained "
            f"{train.pretrain_epochs} steps on English, adapted {train.adapt_epochs} steps to Python source; "
            "losses in bits/byte. The paper's fixed lr 1e-3 belongs to its MLP: here only tuned lrs.")


def where_the_update_lies(sub: StudySetup, rank: int = 2) -> str:
    """What makes the shift family what it is: the share of the needed update inside W0's top-r
    singular subspace (studies.span; r = 2, PiSSA's default rank), beside a random subspace's."""
    shares = span.mean_shares(sub, rank)
    width = sub.config.model.width
    chance = random_baseline((width, width), rank)
    least_squares, full = shares[("layer2", "least squares", "top")], shares[("layer1", "full FT", "top")]
    return (f"Where the needed update lies (mean over seeds, W0's top-{rank} singular subspace; a random one gets "
            f"{chance['core']:.3f} inside, {chance['tangent']:.3f} reachable): output layer's least-squares dW "
            f"{least_squares['core']:.3f} inside, {least_squares['tangent']:.3f} reachable by PiSSA's factors; "
            f"input layer's full fine-tuning dW {full['core']:.3f} inside, {full['tangent']:.3f} reachable.")


def settings(widths: Sequence[int], shifts: Sequence[str], robust: Sequence[int], steps: int, long_budget: int,
             common_rank: int) -> list[Setting]:
    """Every setting to run: each width and shift at the paper's ranks and budget; at the robustness
    widths also the long budget and the common rank."""
    out = []
    for width in widths:
        for shift in shifts:
            out.append(Setting(width, shift, None, steps))
            if width in robust and long_budget and long_budget != steps:
                out.append(Setting(width, shift, None, long_budget))
            if width in robust and common_rank:
                out.append(Setting(width, shift, common_rank, steps))
    return out


def _int_list(flag: str, text: str, allow_empty: bool = False) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{flag}: takes comma-separated integers, got {text!r}") from None
    if (not values and not allow_empty) or any(v < 1 for v in values):
        raise ValueError(f"{flag}: needs positive integers, got {text!r}")
    return values


def make_parser():
    parser = study_parser("claims", __doc__.splitlines()[0], seeds=DEFAULT_SEEDS)
    parser.add_argument("--shifts", default=",".join(SHIFTS),
                        help=f"comma-separated shift families (default: {','.join(SHIFTS)})")
    parser.add_argument("--widths", default="64,128", help="comma-separated MLP widths (default: 64,128)")
    parser.add_argument("--robust-widths", default="64",
                        help="widths that also run the long budget and the common rank (default: 64; '' for none)")
    parser.add_argument("--long-budget", type=int, default=LONG_BUDGET,
                        help=f"adaptation steps of the long-budget columns (default {LONG_BUDGET}; 0: none)")
    parser.add_argument("--common-rank", type=int, default=COMMON_RANK,
                        help=f"one rank for every method in the robustness columns (default {COMMON_RANK}; 0: none)")
    parser.add_argument("--testbeds", default="mlp",
                        help="comma-separated testbeds: mlp (the columns above), and gpt for one column at the gpt "
                             "testbed's preset (tuned lr, its budget; records under --out/gpt) and the transfer "
                             "table, MLP against GPT (default: mlp; a GPT column at 10 seeds takes about an hour "
                             "on 2 cores)")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    parser = make_parser()
    setup = StudySetup(parser, argv)
    args = setup.args
    try:
        shifts = [s for s in args.shifts.split(",") if s]
        unknown = [s for s in shifts if s not in SHIFTS]
        if unknown:
            raise ValueError(f"--shifts: unknown shift family {unknown[0]!r}; choose from {', '.join(SHIFTS)}")
        if not shifts:
            raise ValueError("--shifts: needs at least one shift family")
        widths = _int_list("--widths", args.widths)
        robust = _int_list("--robust-widths", args.robust_widths, allow_empty=True)
        if args.long_budget < 0 or args.common_rank < 0:
            raise ValueError("--long-budget and --common-rank take an integer >= 0 (0: none)")
        testbeds = [t for t in args.testbeds.split(",") if t]
        if "mlp" not in testbeds or any(t not in ("mlp", "gpt") for t in testbeds):
            raise ValueError(f"--testbeds: takes mlp or mlp,gpt, got {args.testbeds!r}")
        if args.cfg_testbed is not None:
            raise ValueError("--testbed: studies.claims takes --testbeds (mlp or mlp,gpt)")
    except ValueError as error:
        parser.error(str(error))
    steps = setup.config.train.adapt_epochs
    lrs = sorted({*setup.lrs, FIXED_LR})
    columns: list[Column] = []
    timing_by: dict[tuple[str, int, int | None], dict[str, Records]] = {}
    chosen = settings(widths, shifts, robust, steps, args.long_budget, args.common_rank)
    subs = [(s, sub_setup(setup, parser, s)) for s in chosen]  # every setting checked before any work
    if "gpt" in testbeds:
        subs.append(gpt_setting(setup, parser))
    def main_column(setting: Setting) -> bool:  # the paper's ranks and budget (the GPT's one column)
        return setting.rank is None and (setting.testbed != "mlp" or setting.steps == steps)

    sweeps = {setting: rank_sweep_setup(sub, parser) for setting, sub in subs
              if main_column(setting) and "lora" in sub.methods}
    for setting, sub in subs:
        tried = lrs if setting.testbed == "mlp" else sorted(set(sub.lrs))
        grid, added = run_column(sub, tried)
        sweep = run_column(sweeps[setting], tried)[0] if setting in sweeps else []
        key = (setting.testbed, setting.width, setting.rank)
        if key not in timing_by:  # timing does not depend on the targets or the budget
            plan = sub.method_ranks
            timing_by[key] = {"init_time": init_time.run(sub, plan), "train_time": train_time.run(sub, plan)}
        note = (gpt_note(sub) if setting.testbed == "gpt" else
                where_the_update_lies(sub) if main_column(setting) else "")
        columns.append(Column(setting, grid, timing_by[key], added, len(sub.seeds), note, sweep))
    tables, paths = outputs(columns, setup.command(), setup.out)
    # The columns judge what ran: a method whose cells failed is named with its reason, as in every study.
    everything = [sub for _, sub in subs] + list(sweeps.values())
    setup.failed = [r for sub in everything for r in sub.failed]
    setup.cells_run = [cell for sub in everything for cell in sub.cells_run]
    if setup.failed:
        tables["claims"] += f"\n\n## Failed cells (not judged)\n\n```\n{with_failures('', setup.failed)}\n```\n"
    path = Path(setup.out) / "claims.md"
    path.write_text(tables["claims"])
    show((tables, paths), [path, setup.out / VERDICTS_FILE, *(sub.out / "adaptability.jsonl" for sub in everything)])
    setup.finish()


if __name__ == "__main__":
    main()
