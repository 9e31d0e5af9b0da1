"""What a study draws from its records, written once: each study module exposes

    STORES = ("adaptability", ...)            # the stores (``<out>/<name>.jsonl``) it reads
    def outputs(stores, out) -> Outputs       # {store name: its records} -> (tables, figure paths)

and both its ``main()`` and ``studies.report`` call that function, so a study and the report of its
store draw exactly the same files with the same tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nfl.config import ExperimentConfig

Records = list[dict[str, Any]]
Stores = dict[str, Records]
Tables = dict[str, str]  # table name -> its text, as printed
Outputs = tuple[Tables, list[Path]]


def config_of(records: Records) -> ExperimentConfig:
    """The settings the records were made with (a store holds one config; ``studies.report`` keeps
    the latest)."""
    return ExperimentConfig.from_dict(records[0]["config"])


def seed_count(records: Records) -> int:
    return len({r["seed"] for r in records})


def show(outputs: Outputs, stores: Sequence[Path]) -> None:
    """Print a study's tables, then where its records and figures are."""
    tables, paths = outputs
    print("\n\n".join(tables.values()))
    print(f"\nrecords: {', '.join(map(str, stores))}")
    if paths:
        print(f"figures: {', '.join(str(p) for p in paths if p.suffix == '.png')} (and PDF)")
