"""Every number docs/tour.md quotes, computed from the studies' records, and a check that the text
quotes each one as printed here (exit status 1 if one is missing), so that the tour's numbers come
from the figures' records and not from memory. ``docs/make_figures.sh`` runs the studies and then
``python docs/tour_numbers.py --records results/figures``, which writes the numbers to
docs/figures/tour_quotes.json (small, committed, unlike the records); without ``--records`` only the
check runs, on that file (``PYTHONPATH=. python docs/tour_numbers.py``; the test suite does this).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import adapters
from figures.records import Point, aggregate
from nfl.measure.rounds import aggregate_stored
from nfl.results import ResultStore
from nfl.selection import at_tuned_lr, tune

DOCS = Path(__file__).resolve().parent
QUOTES = DOCS / "figures" / "tour_quotes.json"  # the numbers, small and committed; the records are not
Record = dict[str, Any]


def load(records: Path, study: str, name: str) -> list[Record]:
    """The records of ``<records>/<study>/<name>.jsonl``, as a reader sees them (run contexts joined in)."""
    return ResultStore(records / study / f"{name}.jsonl").records()


def tuned(records: Path, study: str, name: str) -> list[Record]:
    """The records of each (method, rank) at its tuned learning rate, every seed."""
    return at_tuned_lr(load(records, study, name))


def tuned_lrs(records: Path, study: str, name: str) -> dict[str, float]:
    """method -> its tuned learning rate (at its default rank)."""
    return {t.method: t.lr for t in tune(load(records, study, name)) if t.rank == adapters.get(t.method).default_rank}


def points(records: list[Record], value: Callable[[Record], float]) -> dict[tuple[str, int | None], Point]:
    """(method, rank) -> mean ± 95% CI of ``value`` over seeds."""
    return {(p.method, p.rank): p for p in aggregate(records, value)}


def summary(key: str) -> Callable[[Record], float]:
    return lambda r: r["summary"][key]


def overall(records: list[Record], value: Callable[[Record], float]) -> float:
    """The mean of ``value`` over every record (a quantity shared by all methods, e.g. the pretrained loss)."""
    return float(np.mean([value(r) for r in records]))


def experiment_quotes(records: Path) -> list[tuple[str, str]]:
    """Sections 1 and 2: the paper's preset against nfl's default, each method at its tuned lr."""
    out = []
    for study, fine, coarse in (("paper", "{:.2f}", "{:.2f}"), ("adaptability", "{:.4f}", "{:.4f}")):
        recs = tuned(records, study, "adaptability")
        test = points(recs, summary("test_loss"))
        adapters_only = [p.mean for (m, _), p in test.items() if m != "full"]
        out += [
            (f"{study}: pretrained base-task validation loss",
             fine.format(overall(recs, summary("pretrained_base_val_loss")))),
            (f"{study}: zero predictor, base task", f"{overall(recs, summary('base_zero_loss')):.2f}"),
            (f"{study}: zero predictor, shifted task", f"{overall(recs, summary('shifted_zero_loss')):.2f}"),
            (f"{study}: shifted-task test loss before adaptation",
             coarse.format(overall(recs, lambda r: r["history"]["test_loss"][0]))),
            (f"{study}: full fine-tuning, test loss", fine.format(test[("full", None)].mean)),
            (f"{study}: adapters' test loss, lowest", coarse.format(min(adapters_only))),
            (f"{study}: adapters' test loss, highest", coarse.format(max(adapters_only))),
        ]
    default = tuned(records, "adaptability", "adaptability")
    test = points(default, summary("test_loss"))
    ranked = sorted((p for (m, _), p in test.items() if m != "full"), key=lambda p: p.mean)
    forgetting = points(default, summary("forgetting_base_test_loss"))
    lrs = tuned_lrs(records, "adaptability", "adaptability")
    out += [
        ("adaptability: the adapter with the lowest test loss", adapters.get(ranked[0].method).label),
        ("adaptability: the adapter with the highest test loss", adapters.get(ranked[-1].method).label),
        ("adaptability: full fine-tuning, base-task loss after", f"{forgetting[('full', None)].mean:.3f}"),
        ("adaptability: PiSSA, base-task loss after", f"{at_default(forgetting, 'pissa').mean:.3f}"),
        ("adaptability: LoRA's tuned lr", f"{lrs['lora']:g}"),
        ("adaptability: PiSSA's tuned lr", f"{lrs['pissa']:g}"),
    ]
    return out


def setting_quotes(records: Path) -> list[tuple[str, str]]:
    """The settings the text names, read from the records' config (the same in both presets)."""
    config = load(records, "adaptability", "adaptability")[0]["config"]
    grid = config["train"]["lr_grid"]
    return [
        ("config: width", str(config["model"]["width"])),
        ("config: training samples", str(config["task"]["n_train"])),
        ("config: pretraining steps", str(config["train"]["pretrain_epochs"])),
        ("config: adaptation steps", str(config["train"]["adapt_epochs"])),
        ("config: learning rates of the grid", str(len(grid))),
        ("config: the grid's lowest learning rate", f"{min(grid):g}"),
        ("config: the grid's highest learning rate", f"{max(grid):g}"),
    ]


def at_default(table: dict[tuple[str, int | None], Point], method: str) -> Point:
    """``method``'s point at its default rank (full fine-tuning's has none)."""
    return table[(method, adapters.get(method).default_rank)]


def pareto_quotes(records: Path) -> list[tuple[str, str]]:
    """Section 3: the first step's gradient norm (default ranks) and the training-step times."""
    grads = points(load(records, "pareto", "grad_norm"), summary("initial_grad_norm"))
    out = [
        (f"pareto: initial gradient norm, {m}", f"{at_default(grads, m).mean:.2g}")
        for m in ("full", "lora", "milora", "pissa")
    ]
    defaults = {(m, adapters.get(m).default_rank) for m in adapters.names()}
    timed = aggregate_stored(load(records, "pareto", "train_time"))  # one record per (cell, round) -> one per cell
    step_ms = [1e3 * r["timing"]["fastest_s"] for r in timed if (r["method"], r["rank"]) in defaults]
    out += [
        ("pareto: fastest training step, ms (default ranks)", f"{min(step_ms):.2f}"),
        ("pareto: slowest training step, ms (default ranks)", f"{max(step_ms):.2f}"),
    ]
    return out


def anatomy_quotes(records: Path) -> list[tuple[str, str]]:
    """Sections 4 and 5: rank bounds, dead rows, subspace similarity and amplification (default ranks, tuned lr)."""
    recs = tuned(records, "anatomy", "anatomy")

    def stat(key: str, method: str, fmt: str) -> str:
        return fmt.format(at_default(points(recs, summary(key)), method).mean)

    first = min(r["seed"] for r in recs)
    full = next(r for r in recs if r["method"] == "full" and r["seed"] == first)
    dead_rows = int((np.abs(np.asarray(full["delta_weight"])).max(axis=1) == 0).sum())
    mos_bounds = [r["summary"]["rank_bound"] for r in recs if r["method"] == "mos"]
    return [
        ("anatomy: PiSSA rank bound", stat("rank_bound", "pissa", "{:.0f}")),
        ("anatomy: DoRA rank bound", stat("rank_bound", "dora", "{:.0f}")),
        ("anatomy: MoS lowest rank bound over seeds", str(min(mos_bounds))),
        ("anatomy: MoS highest rank bound over seeds", str(max(mos_bounds))),
        ("anatomy: full fine-tuning, mean rank of ΔW", stat("delta_rank", "full", "{:.1f}")),
        (f"anatomy: full fine-tuning, zero rows of ΔW at seed {first}", str(dead_rows)),
        ("anatomy: φ top-r, PiSSA", stat("phi_top", "pissa", "{:.2f}")),
        ("anatomy: φ random, PiSSA", stat("phi_random", "pissa", "{:.2f}")),
        ("anatomy: φ top-r, LoRA", stat("phi_top", "lora", "{:.2f}")),
        ("anatomy: φ bottom-r, MiLoRA", stat("phi_bottom", "milora", "{:.2f}")),
        ("anatomy: φ random, MiLoRA", stat("phi_random", "milora", "{:.2f}")),
        ("anatomy: amplification, PiSSA", stat("amplification", "pissa", "{:.1f}")),
        ("anatomy: amplification, LoRA", stat("amplification", "lora", "{:.1f}")),
        ("anatomy: amplification, MiSS^e", stat("amplification", "miss_e", "{:.1f}")),
    ]


def rank_quotes(records: Path) -> list[tuple[str, str]]:
    """Section 6: LoRA from rank 1 to 64 against full fine-tuning; VeRA's and AdaLoRA's lines."""
    recs = tuned(records, "rank", "rank")
    loss, forgetting = points(recs, summary("test_loss")), points(recs, summary("forgetting_base_test_loss"))
    return [
        ("rank: LoRA r=1 test loss", f"{loss[('lora', 1)].mean:.4f}"),
        ("rank: LoRA r=64 test loss", f"{loss[('lora', 64)].mean:.4f}"),
        ("rank: LoRA r=64 trainable parameters", f"{loss[('lora', 64)].params:,}"),
        ("rank: full fine-tuning trainable parameters", f"{loss[('full', None)].params:,}"),
        ("rank: full fine-tuning test loss", f"{loss[('full', None)].mean:.4f}"),
        ("rank: LoRA r=1 base-task loss after", f"{forgetting[('lora', 1)].mean:.4f}"),
        ("rank: LoRA r=64 base-task loss after", f"{forgetting[('lora', 64)].mean:.4f}"),
        ("rank: pretrained base-task loss", f"{overall(recs, summary('pretrained_base_val_loss')):.4f}"),
        ("rank: VeRA r=1 test loss", f"{loss[('vera', 1)].mean:.4f}"),
        ("rank: VeRA r=64 test loss", f"{loss[('vera', 64)].mean:.4f}"),
        ("rank: AdaLoRA r=64 base-task loss after", f"{forgetting[('adalora', 64)].mean:.4f}"),
    ]


def quotes(records: Path) -> dict[str, str]:
    """description -> the number as the tour prints it, computed from the studies' records."""
    sections = (setting_quotes, experiment_quotes, pareto_quotes, anatomy_quotes, rank_quotes)
    return dict(quote for section in sections for quote in section(records))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=Path, help="compute the quotes from the records under DIR/<study>/ (what "
                        f"docs/make_figures.sh writes) into {QUOTES.relative_to(DOCS.parent)} first")
    args = parser.parse_args(argv)
    if args.records is not None:
        QUOTES.write_text(json.dumps(quotes(args.records), indent=1, ensure_ascii=False) + "\n")
    text = (DOCS / "tour.md").read_text()
    missing = []
    for description, value in json.loads(QUOTES.read_text()).items():
        quoted = (
            re.search(rf"(?<![\w.]){re.escape(value)}(?!\w|\.\d)", text) is not None
        )  # a whole number, not a prefix
        missing += [] if quoted else [description]
        print(f"{'  ' if quoted else '! '}{description}: {value}")
    if missing:
        print(
            f"\ndocs/tour.md does not quote {len(missing)} of these numbers (marked !): update the text.",
            file=sys.stderr,
        )
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
