"""The papers' claims, tested: a verdict with its evidence per shift family, width and LR protocol.

For every width and shift family, adapts each method at every learning rate of the grid and at the
paper's fixed 1e-3 (several seeds; stored cells are reused), times initialisation and one training
step, then measures each claim of :mod:`nfl.claims` at the fixed lr and at each method's tuned lr,
writes ``claims.md`` and the no-free-lunch figure, and prints the tables.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence, get_args

import numpy as np

from nfl.claims import (
    CLAIMS, RULE, Claim, Effect, Part, bootstrap_effect, combine, timing_ratio, verdict, welch_difference,
)
from nfl.config import Shift
from nfl.selection import at_tuned_lr
from nfl.span import random_baseline
from studies import adaptability, init_time, span, train_time
from studies.common import StudySetup, study_parser

FIXED_LR = 1e-3  # the paper's adaptation learning rate
SHIFTS = get_args(Shift)
Records = list[dict[str, Any]]


# --- the protocol this study relies on (tuned LRs, test split: nfl.selection, studies.adaptability) ---

def lr_grid(setup: StudySetup) -> list[float]:
    """The study's tuning grid (the preset's, or three points with --quick) and the paper's fixed lr."""
    return sorted({*setup.lrs, FIXED_LR})


# --- measuring a claim from records -------------------------------------------------------------

QUALITY_KEYS = {"test_loss": "test_loss", "forgetting": "forgetting_base_test_loss",
                "initial_grad_norm": "initial_grad_norm", "early_loss": "early_test_loss"}
TIMING_STUDIES = {"init_time": "init_time", "step_time": "train_time"}


def per_seed(records: Records, methods: tuple[str, ...], key: str) -> list[float]:
    """log10 of ``key`` per seed, averaged over ``methods`` (a geometric mean) on the seeds all share."""
    values: dict[str, dict[int, float]] = {m: {} for m in methods}
    for r in records:
        value = r["summary"].get(key)
        if r["method"] in values and value is not None and value > 0:
            values[r["method"]][r["seed"]] = math.log10(value)
    common = set.intersection(*(set(v) for v in values.values())) if methods else set()
    return [float(np.mean([values[m][s] for m in methods])) for s in sorted(common)]


def spread(records: Records) -> Effect | None:
    """log10 of the worst over the best adapter's mean test loss, bootstrapped over each one's seeds."""
    samples = [per_seed(records, (m,), "test_loss") for m in dict.fromkeys(r["method"] for r in records) if m != "full"]
    samples = [s for s in samples if s]
    if len(samples) < 2:
        return None
    return bootstrap_effect(lambda *s: max(x.mean() for x in s) - min(x.mean() for x in s), samples)


def lr_sharpness(grid_records: Records) -> Effect | None:
    """Spearman's rho of tuned lr against 1 / lambda_max (mean over seeds) across methods (bootstrap),
    lambda_max being ``summary["sharpness"]`` (nfl.sharpness, at initialisation)."""
    pairs = []
    for record_group in _by_method(at_tuned_lr(grid_records)).values():
        sharp = [r["summary"].get("sharpness") for r in record_group]
        if all(s is not None and s > 0 for s in sharp):
            pairs.append((record_group[0]["lr"], 1 / np.mean(sharp)))
    if len(pairs) < 3:
        return None
    lrs, inverse = map(np.asarray, zip(*pairs))
    return bootstrap_effect(_spearman, [lrs, inverse], paired=True)


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho, 0 where a resample is constant (tuned LRs are grid points and tie often):
    rho is undefined there, and 0, no tracking, is the reading that favours no claim."""
    from scipy import stats

    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return float(stats.spearmanr(a, b).statistic)


def _by_method(records: Records) -> dict[str, Records]:
    out: dict[str, Records] = {}
    for r in records:
        out.setdefault(r["method"], []).append(r)
    return out


def timing_effect(records: Records, part: Part) -> Effect | None:
    """log10 ratio of the timing costs (geometric mean over a side's methods), each at its default rank."""
    costs = {r["method"]: (r["timing"]["fastest_s"], r["timing"]["median_s"]) for r in records}
    if not all(m in costs for m in part.treatment + part.control):
        return None
    def side(methods: tuple[str, ...]) -> tuple[float, float]:
        return tuple(float(np.exp(np.mean(np.log([costs[m][i] for m in methods])))) for i in (0, 1))

    return timing_ratio(side(part.treatment), side(part.control))


def measure(part: Part, quality_records: Records, grid_records: Records, timing: dict[str, Records]) -> Effect | None:
    """The effect a part of a claim predicts positive (before orientation), or None without records."""
    if part.metric in QUALITY_KEYS:
        a, b = (per_seed(quality_records, side, QUALITY_KEYS[part.metric]) for side in (part.treatment, part.control))
        return welch_difference(a, b) if a and b else None
    if part.metric in TIMING_STUDIES:
        return timing_effect(timing.get(TIMING_STUDIES[part.metric], []), part)
    if part.metric == "spread":
        return spread(quality_records)
    if part.metric == "lr_sharpness":
        return lr_sharpness(grid_records)
    raise ValueError(f"claim part with unknown metric {part.metric!r}")


def show(part: Part, effect: Effect | None) -> str:
    if effect is None:
        return "no records"
    if part.metric == "lr_sharpness":
        return f"ρ {effect.estimate:.2f} [{effect.low:.2f}, {effect.high:.2f}]"
    ratio = lambda v: f"{10 ** v:.3g}" if math.isfinite(v) else ("∞" if v > 0 else "0")  # noqa: E731
    return f"×{ratio(effect.estimate)} [{ratio(effect.low)}, {ratio(effect.high)}]"


def judge(claim: Claim, quality_records: Records, grid_records: Records, timing: dict[str, Records]) -> str:
    """'verdict: effect [interval]; ...' over the claim's parts."""
    shown, verdicts = [], []
    for part in claim.parts:
        effect = measure(part, quality_records, grid_records, timing)
        verdicts.append(verdict(effect, part.direction, part.margin))
        shown.append(show(part, effect))
    return f"**{combine(verdicts)}**: " + "; ".join(shown)


# --- running and writing ------------------------------------------------------------------------

def sub_setup(setup: StudySetup, parser, shift: str, width: int) -> StudySetup:
    """The same command line for one shift family and width, with its own store under --out."""
    argv = [*setup.argv, "--shift", shift, "--width", str(width), "--out", str(setup.out / f"{shift}-w{width}")]
    return StudySetup(parser, argv)


def run_column(sub: StudySetup, lrs: list[float]) -> Records:
    """Every method at its default rank, every seed, every lr of ``lrs``: the adaptability study's
    cells (trained a (method, rank) at a time), stored as ``adaptability.jsonl`` in the column's
    directory, so ``studies.report`` and a later run both read them."""
    groups = sub.groups("adaptability", plan=sub.plan(None), lrs=lrs)
    return sub.run_groups("adaptability", lambda cells: adaptability.compute_group(sub, cells), groups)


def table(columns: dict[str, tuple[Records, Records]], timing: dict[str, Records]) -> list[str]:
    """Markdown rows, one per claim: claim, measurement, then one cell per column."""
    head = ["#", "claim", "measurement", *columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for claim in CLAIMS:
        cells = [judge(claim, q, grid, timing) for q, grid in columns.values()]
        lines.append(f"| {claim.number} | {claim.text} ({claim.source}) | {claim.measurement} | {' | '.join(cells)} |")
    return lines


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


def timing_device(timing: dict[str, Records]) -> str:
    first = next((rs[0] for rs in timing.values() if rs), None)
    if first is None:
        return "no timing records"
    return f"{first['env']['device_name']}, {first['timing']['num_threads']} thread(s)"


def main(argv: Sequence[str] | None = None) -> None:
    parser = study_parser("claims", __doc__.splitlines()[0])
    parser.add_argument("--shifts", default=",".join(SHIFTS),
                        help=f"comma-separated shift families (default: {','.join(SHIFTS)})")
    parser.add_argument("--widths", default="64,128", help="comma-separated MLP widths (default: 64,128)")
    setup = StudySetup(parser, argv)
    from figures.claims import no_free_lunch_figure
    from figures.style import save  # here: matplotlib costs a second of every start-up
    try:
        shifts = [s for s in setup.args.shifts.split(",") if s]
        widths = [int(w) for w in setup.args.widths.split(",") if w]
        unknown = [s for s in shifts if s not in SHIFTS]
        if unknown:
            raise ValueError(f"unknown shift family {unknown[0]!r}; choose from {', '.join(SHIFTS)}")
        if not shifts or not widths or min(widths) < 1:
            raise ValueError("--shifts and --widths need at least one valid entry each")
    except ValueError as error:
        parser.error(str(error))
    lrs = sorted({*lr_grid(setup), FIXED_LR})
    lines = ["# What nfl says about the papers' claims", "", f"Command: `{setup.command()}`", "", f"Rule: {RULE}.", ""]
    for width in widths:
        timing: dict[str, Records] = {}
        figure_records: dict[str, Records] = {}
        for i, shift in enumerate(shifts):
            sub = sub_setup(setup, parser, shift, width)
            grid = run_column(sub, lrs)
            if i == 0:  # timing does not depend on the targets: measured once per width
                plan = sub.plan(None)
                timing = {"init_time": init_time.run(sub, plan), "train_time": train_time.run(sub, plan)}
            columns = {"lr 1e-3": ([r for r in grid if r["lr"] == FIXED_LR], grid), "tuned lr": (at_tuned_lr(grid), grid)}
            figure_records[shift] = columns["tuned lr"][0]
            lines += [f"## width {width}, shift {shift}", "",
                      f"{len(sub.seeds)} seed(s), learning-rate grid {', '.join(f'{lr:g}' for lr in lrs)}; "
                      f"quality on {grid[0]['env']['device_name']}; "
                      f"timing costs (fastest rounds) on {timing_device(timing)}.", "",
                      where_the_update_lies(sub), "", *table(columns, timing), ""]
        title = f"Test loss at tuned lr per shift family (width {width}, {len(setup.seeds)} seed(s))"
        paths = save(no_free_lunch_figure(figure_records, title), setup.out / f"no_free_lunch_w{width}")
        lines += [f"![no free lunch, width {width}]({paths[0].name})", ""]
    path = Path(setup.out) / "claims.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    print("\n".join(lines))
    print(f"\nwritten: {path}")


if __name__ == "__main__":
    main()
