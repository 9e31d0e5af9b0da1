"""Learning-rate sensitivity: every method over the lr grid, validation selects, test reports.

The figure of "Learning Rate Matters" (Lee et al., 2026) on nfl: per method, validation and test
loss against lr (mean ± 95% CI over seeds), the tuned lr marked (``lr.{png,pdf}``); the tuned lr
against λ_max of the Hessian at initialisation with Spearman's ρ (``sharpness.{png,pdf}``); and a
table of each method's test loss at the paper's lr 1e-3 and at its tuned lr, with the spread across
methods in both columns. The runs are ``studies.adaptability``'s (``<out>/adaptability.jsonl``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

import adapters
from nfl.selection import tune
from studies import adaptability
from studies.common import StudySetup, format_table, quality_cell, study_parser
from studies.outputs import Outputs, Stores, config_of, seed_count

PAPER_LR = 1e-3


def _mean(records: list[dict[str, Any]]) -> float | None:
    values = [r["summary"]["test_loss"] for r in records if r["summary"].get("diverged_at") is None]
    return float(np.mean(values)) if values and len(values) == len(records) else None


def table(records: list[dict[str, Any]]) -> str:
    """Per method the test loss at lr 1e-3 and at its tuned lr; last row the spread across methods
    (largest mean / smallest mean) of each column."""
    rows, fixed, tuned_means = [], [], []
    for tuned in tune(records):
        key = (tuned.method, tuned.rank)
        at_paper = [r for r in records if (r["method"], r["rank"]) == key and r["lr"] == PAPER_LR]
        summaries = [r["summary"] for r in tuned.records]
        rows.append({
            "method": adapters.get(tuned.method).label,
            "rank": "-" if tuned.rank is None else tuned.rank,
            "test loss at lr 1e-3": quality_cell([r["summary"] for r in at_paper], "test_loss") if at_paper else "-",
            "tuned lr": "-" if tuned.lr is None else f"{tuned.lr:.3g}",
            "test loss at tuned lr": quality_cell(summaries, "test_loss") if summaries else "every lr diverged",
        })
        fixed.append(_mean(at_paper) if at_paper else None)
        tuned_means.append(_mean(tuned.records) if tuned.records else None)

    def spread(means: list[float | None]) -> str:
        finite = [m for m in means if m is not None]
        return f"{max(finite) / min(finite):.1f}x ({min(finite):.4f} … {max(finite):.4f})" if finite else "-"

    rows.append({
        "method": "spread across methods",
        "test loss at lr 1e-3": spread(fixed), "test loss at tuned lr": spread(tuned_means),
    })
    return format_table(rows, ["method", "rank", "test loss at lr 1e-3", "tuned lr", "test loss at tuned lr"])


def sharpness_points(records: list[dict[str, Any]]) -> tuple[list[tuple[str, float, float]], float]:
    """(method, mean λ_max, tuned lr) per tuned method and Spearman's ρ between λ_max and lr."""
    from scipy.stats import spearmanr

    points = []
    for tuned in tune(records):
        if tuned.lr is not None:
            sharpness = float(np.mean([r["summary"]["sharpness"] for r in tuned.records]))
            points.append((tuned.method, sharpness, tuned.lr))
    if len(points) < 3:
        return points, float("nan")
    return points, float(spearmanr([p[1] for p in points], [p[2] for p in points]).statistic)


STORES = ("adaptability",)


def outputs(stores: Stores, out: Path) -> Outputs:
    """The table, the ρ line, ``lr.{png,pdf}`` and ``sharpness.{png,pdf}``."""
    from figures.lr import lr_figure, sharpness_figure
    from figures.style import save  # here: matplotlib costs a second of every start-up

    records = stores["adaptability"]
    cfg = config_of(records)
    title = f"preset {cfg.preset}, width {cfg.width}, {seed_count(records)} seed(s)"
    points, rho = sharpness_points(records)
    paths = [
        *save(lr_figure(records, title), out / "lr"),
        *save(sharpness_figure(points, rho, title), out / "sharpness"),
    ]
    rho_line = f"tuned lr vs λ_max at initialisation: Spearman ρ = {rho:.2f} over {len(points)} methods"
    return {"lr": table(records) + "\n\n" + rho_line}, paths


def main(argv: Sequence[str] | None = None) -> None:
    setup = StudySetup(study_parser("lr", __doc__.splitlines()[0]), argv)
    setup.show(outputs({"adaptability": adaptability.run(setup)}, setup.out), [setup.out / "adaptability.jsonl"])


if __name__ == "__main__":
    main()
