"""Read results later: every summary table and figure of the stores in ``--out``, computing nothing.

Each ``<study>.jsonl`` in the directory is read (damaged lines are set aside with a warning, not
repaired: this never writes a store), its failed cells and records of other settings are left
out, and the tables and figures the study that wrote it prints and draws are made again from its
records. ``--format csv`` / ``markdown`` also writes the tables to ``summary.csv`` / ``summary.md``.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from figures.anatomy import anatomy_figure, subspace_figure
from figures.curves import loss_curves_figure
from figures.efficiency import cost_figure
from figures.grad_norm import grad_norm_figure
from figures.pareto import figure2, pareto_figure
from figures.records import diverged_note
from figures.rank import rank_figure
from figures.style import save
from nfl import cli
from nfl.config import ExperimentConfig
from nfl.measure.rounds import aggregate_stored
from nfl.selection import at_tuned_lr
from nfl.results import ResultStore
from nfl.model import target_layer_names
from studies import adaptability, anatomy, grad_norm, init_time, pareto, rank

Records = dict[str, list[dict[str, Any]]]
STUDIES = ("adaptability", "grad_norm", "init_time", "train_time", "rank", "anatomy")


def load(out: Path) -> Records:
    """study -> its finished records made with the settings of its last record; a note for the rest."""
    found: Records = {}
    for study in STUDIES:
        path = out / f"{study}.jsonl"
        records = [r for r in ResultStore(path).records() if "failed" not in r] if path.exists() else []
        if not records:
            continue
        latest = records[-1]["config_hash"]
        kept = [r for r in records if r["config_hash"] == latest]
        if len(kept) < len(records):
            print(f"note: {path}: {len(records) - len(kept)} record(s) of other settings left out", file=sys.stderr)
        found[study] = aggregate_stored(kept) if study in ("init_time", "train_time") else kept
    return found


def _config(records: list[dict[str, Any]]) -> ExperimentConfig:
    return ExperimentConfig.from_dict(records[0]["config"])


def _made_by(records: list[dict[str, Any]]) -> str:
    """The study that wrote these records, from the command it ran (``python -m studies.<name>``)."""
    words = str(records[-1].get("command", "")).split()
    return words[2].removeprefix("studies.") if len(words) > 2 else ""


def _timing_subtitle(records: list[dict[str, Any]]) -> str:
    threads = records[0]["timing"]["num_threads"]
    return f"{records[0]['env']['device_name']}, {threads} thread(s), width {_config(records).model.width}"


def pareto_outputs(found: Records, out: Path) -> tuple[dict[str, str], list[Path]]:
    """The main study's table and Figures 1, 2 and the Pareto view, when its four stores are there."""
    adapt, grads, init, train = (found[s] for s in ("adaptability", "grad_norm", "init_time", "train_time"))
    cfg = _config(adapt)
    seeds = len({r["seed"] for r in adapt})
    subtitle = (
        f"preset {cfg.preset}, width {cfg.model.width}, {seeds} seed(s), {adapt[0]['env']['device_name']} "
        f"({train[0]['timing']['num_threads']} thread{'' if train[0]['timing']['num_threads'] == 1 else 's'})"
    )
    zero = float(np.mean([r["summary"]["shifted_zero_loss"] for r in adapt]))
    tuned = at_tuned_lr(adapt)  # as the study draws them: each method at its tuned lr
    paths = [
        *save(grad_norm_figure(grads, cfg), out / "figure1", diverged_note(grads)),
        *save(figure2(tuned, init, train, subtitle, zero), out / "figure2", diverged_note(tuned)),
        *save(pareto_figure(tuned, train, subtitle), out / "pareto", diverged_note(tuned)),
    ]
    table = "\n".join(adaptability.report(adapt).split("\n")[:3]) + "\n" + pareto.summary_table(adapt, init, train)
    return {"pareto": table}, paths


def _adaptability(records: list[dict[str, Any]], out: Path) -> tuple[str, list[Path]]:
    cfg, seeds = _config(records), len({r["seed"] for r in records})
    zero = float(np.mean([r["summary"]["shifted_zero_loss"] for r in records]))
    title = f"preset {cfg.preset}, width {cfg.model.width}, {seeds} seed(s)"
    tuned = at_tuned_lr(records)
    figure = loss_curves_figure(tuned, zero_loss=zero, title=title + ", each method at its tuned lr", key="test_loss")
    return adaptability.report(records), save(figure, out / "adaptability_loss", diverged_note(tuned))


def _grad_norm(records: list[dict[str, Any]], out: Path) -> tuple[str, list[Path]]:
    figure = grad_norm_figure(records, _config(records))
    return grad_norm.summary(records), save(figure, out / "grad_norm", diverged_note(records))


Outputs = Callable[[list[dict[str, Any]], Path], tuple[str, list[Path]]]


def _timing(study: str, title: str, unit: str, column: str) -> Outputs:
    def draw(records: list[dict[str, Any]], out: Path) -> tuple[str, list[Path]]:
        figure = cost_figure(records, title, unit, _timing_subtitle(records))
        return init_time.summary(records, column), save(figure, out / study)

    return draw


def _rank(records: list[dict[str, Any]], out: Path) -> tuple[str, list[Path]]:
    cfg = _config(records)
    tuned = at_tuned_lr(records)
    figure = rank_figure(tuned, f"preset {cfg.preset}, width {cfg.model.width}, tuned lr")
    return rank.summary_table(records), save(figure, out / "rank", diverged_note(tuned))


def _anatomy(records: list[dict[str, Any]], out: Path) -> tuple[str, list[Path]]:
    cfg = _config(records)
    title = f"preset {cfg.preset}, width {cfg.model.width}, layer {target_layer_names(cfg.targets)[0]}"
    records = at_tuned_lr(records)  # ΔW of each method at its tuned lr
    note = diverged_note(records)
    paths = save(anatomy_figure(records, title), out / "anatomy", note)
    paths += save(subspace_figure(records, title), out / "subspace", note)
    return anatomy.summary_table(records), paths


ALONE = {
    "adaptability": _adaptability,
    "grad_norm": _grad_norm,
    "init_time": _timing("init_time", "Initialisation time", "model", "init ms"),
    "train_time": _timing("train_time", "Training-step time", "step", "step ms"),
    "rank": _rank,
    "anatomy": _anatomy,
}


def outputs(found: Records, out: Path) -> tuple[dict[str, str], list[Path]]:
    """Every table (name -> text) and figure path made from the stores of one directory."""
    tables: dict[str, str] = {}
    paths: list[Path] = []
    by_pareto = [s for s in found if _made_by(found[s]) == "pareto"]
    if by_pareto and all(s in found for s in ("adaptability", "grad_norm", "init_time", "train_time")):
        tables, paths = pareto_outputs(found, out)
        found = {s: r for s, r in found.items() if s not in by_pareto}
    for study, records in found.items():
        tables[study], made = ALONE[study](records, out)
        paths += made
    return tables, paths


def parse_table(text: str) -> tuple[list[str], list[str], list[list[str]]]:
    """(notes above the table, its columns, its rows) from a table of ``studies.common.format_table``,
    cut at the column spans of its dashed rule."""
    lines = text.splitlines()
    rule = next(i for i, line in enumerate(lines) if line.strip() and set(line) <= {"-", " "})
    spans, start = [], None
    for i, char in enumerate(lines[rule] + " "):
        if char == "-" and start is None:
            start = i
        elif char != "-" and start is not None:
            spans.append((start, i))
            start = None
    cut = lambda line: [line[a:b].strip() for a, b in spans]  # noqa: E731
    return lines[: rule - 1], cut(lines[rule - 1]), [cut(line) for line in lines[rule + 1 :] if line.strip()]


def markdown(tables: dict[str, str]) -> str:
    parts = []
    for name, text in tables.items():
        notes, columns, rows = parse_table(text)
        row = lambda values: "| " + " | ".join(values) + " |"  # noqa: E731
        body = [row(columns), "|" + "---|" * len(columns), *map(row, rows)]
        parts.append("\n".join([f"## {name}", "", *notes, *([""] if notes else []), *body]))
    return "\n\n".join(parts) + "\n"


def comma_separated(tables: dict[str, str]) -> str:
    """One CSV: a ``table`` column, then the union of every table's columns (empty where absent)."""
    parsed = {name: parse_table(text)[1:] for name, text in tables.items()}
    header = list(dict.fromkeys(c for columns, _ in parsed.values() for c in columns))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["table", *header])
    for name, (columns, rows) in parsed.items():
        for row in rows:
            values = dict(zip(columns, row))
            writer.writerow([name, *(values.get(c, "") for c in header)])
    return buffer.getvalue()


def main(argv: Sequence[str] | None = None) -> None:
    parser = cli.Parser(prog="python -m studies.report", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="a directory a study wrote (its --out)")
    parser.add_argument("--format", choices=("text", "csv", "markdown"), default="text",
                        help="text: print only; csv / markdown: also write summary.csv / summary.md")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if not out.is_dir():
        cli.fail(f"--out: {out} is not a directory")
    found = load(out)
    if not found:
        cli.fail(f"--out: no study records in {out} (looked for {', '.join(s + '.jsonl' for s in STUDIES)})")
    tables, paths = outputs(found, out)
    for name, text in tables.items():
        print(f"== {name} ==\n{text}\n")
    if args.format != "text":
        target = out / ("summary.csv" if args.format == "csv" else "summary.md")
        target.write_text(comma_separated(tables) if args.format == "csv" else markdown(tables))
        print(f"summary: {target}")
    print(f"figures: {', '.join(str(p) for p in paths if p.suffix == '.png')} (and PDF)")


if __name__ == "__main__":
    main()
