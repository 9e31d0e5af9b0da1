"""Read results later: every summary table and figure of the stores in ``--out``, computing nothing.

Each ``<study>.jsonl`` in the directory is read (damaged lines are set aside with a warning, not
repaired: this never writes a store), its failed cells and records of other settings are left
out, and the tables and figures the study that wrote it prints and draws are made again from its
records. ``--format markdown`` also writes the tables to ``summary.md``; ``--format csv`` writes their
numbers to ``summary.csv``, one number per column (``studies.export``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nfl import cli
from nfl.measure.rounds import aggregate_stored
from nfl.results import ResultStore
from studies import adaptability, anatomy, grad_norm, init_time, lr, pareto, rank, train_time
from studies.common import EXIT_FAILED, failed_records, parse_table, with_failures
from studies.export import numeric_rows, to_csv
from studies.outputs import Outputs, Stores

# The studies whose stores report draws, each through its own ``outputs`` (what its main() draws).
STUDIES = {module.__name__.removeprefix("studies."): module
           for module in (pareto, adaptability, lr, grad_norm, init_time, train_time, rank, anatomy)}
STORES = tuple(dict.fromkeys(store for module in STUDIES.values() for store in module.STORES))


def load(out: Path) -> Stores:
    """store -> its finished records made with the settings of its last record; a note for the rest."""
    found: Stores = {}
    for study in STORES:
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


def load_failed(out: Path) -> Stores:
    """store -> the failed records of its cells that never finished (the latest per cell)."""
    found: Stores = {}
    for study in STORES:
        path = out / f"{study}.jsonl"
        lines = ResultStore(path).lines() if path.exists() else []  # load() warns of damaged lines once
        records = failed_records([line.record for line in lines if line.record is not None])
        if records:
            found[study] = records
    return found


def _made_by(records: list[dict[str, Any]]) -> str:
    """The study that wrote these records, from the command it ran (``python -m studies.<name>``)."""
    words = str(records[-1].get("command", "")).split()
    return words[2].removeprefix("studies.") if len(words) > 2 else ""


def outputs(found: Stores, out: Path) -> Outputs:
    """Every table (name -> text) and figure path of the stores of one directory, each drawn by the
    study that wrote it; a store whose study's other stores are missing (a stopped pareto run) is
    drawn by its own study."""
    by_study: dict[str, Stores] = {}
    for store, records in found.items():
        made = _made_by(records)
        study = made if made in STUDIES and store in STUDIES[made].STORES else store
        by_study.setdefault(study, {})[store] = records
    tables: dict[str, str] = {}
    paths: list[Path] = []
    for study, stores in by_study.items():
        whole = set(STUDIES[study].STORES) <= set(stores)
        for module, part in ([(STUDIES[study], stores)] if whole else
                             [(STUDIES[store], {store: records}) for store, records in stores.items()]):
            made, drawn = module.outputs(part, out)
            tables.update(made)
            paths += drawn
    return tables, paths


def markdown(tables: dict[str, str]) -> str:
    parts = []
    for name, text in tables.items():
        notes, columns, rows = parse_table(text)
        row = lambda values: "| " + " | ".join(values) + " |"  # noqa: E731
        body = [row(columns), "|" + "---|" * len(columns), *map(row, rows)]
        parts.append("\n".join([f"## {name}", "", *notes, *([""] if notes else []), *body]))
    return "\n\n".join(parts) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    parser = cli.Parser(prog="python -m studies.report", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="a directory a study wrote (its --out)")
    parser.add_argument("--format", choices=("text", "csv", "markdown"), default="text",
                        help="text: print only; csv / markdown: also write summary.csv / summary.md")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if not out.is_dir():
        cli.fail(f"--out: {out} is not a directory")
    try:
        cli.regular_stores("--out", out, STORES)
    except ValueError as error:
        cli.fail(str(error))
    found, failed = load(out), load_failed(out)
    if not found and not failed:
        cli.fail(f"--out: no study records in {out} (looked for {', '.join(s + '.jsonl' for s in STORES)})")
    tables, paths = outputs(found, out)
    tables.update({store: "" for store in failed if not any(store in _stores(name) for name in tables)})
    tables = {name: with_failures(text, [r for s in _stores(name) for r in failed.get(s, [])])
              for name, text in tables.items()}
    for name, text in tables.items():
        print(f"== {name} ==\n{text}\n")
    if args.format != "text":
        target = out / ("summary.csv" if args.format == "csv" else "summary.md")
        target.write_text(to_csv(numeric_rows(found, failed)) if args.format == "csv" else markdown(tables))
        print(f"summary: {target}")
    if paths:
        print(f"figures: {', '.join(str(p) for p in paths if p.suffix == '.png')} (and PDF)")
    groups = lambda stores: {(r["study"], r["method"], r["rank"]) for rs in stores.values() for r in rs}  # noqa: E731
    lost = groups(failed) - groups(found)
    if failed:
        named = ", ".join(f"{s} {m}" + ("" if k is None else f" r={k}") for s, m, k in sorted(lost, key=str))
        count = sum(map(len, failed.values()))
        print(f"nfl: {count} cells failed" + (f"; every cell failed for {named}" if lost else ""), file=sys.stderr)
    if lost:
        raise SystemExit(EXIT_FAILED)


def _stores(table: str) -> tuple[str, ...]:
    """The stores a table of this name shows: its study's, or the store of that name."""
    return STUDIES[table].STORES if table in STUDIES else (table,)


if __name__ == "__main__":
    main()
