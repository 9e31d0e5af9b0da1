"""What every study shares: its command line, device choice, method list, summary table."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Sequence

import torch

import adapters
from nfl.config import ExperimentConfig, add_config_arguments, config_from_args


def study_parser(name: str, description: str) -> argparse.ArgumentParser:
    """The flags of DESIGN.md's conventions plus one flag per experiment setting."""
    parser = argparse.ArgumentParser(prog=f"python -m studies.{name}", description=description)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="auto: CUDA when available")
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds (seed, seed+1, ...); default 3")
    parser.add_argument("--methods", default=None, help="comma-separated methods (default: every registered one): " + ",".join(adapters.names()))
    parser.add_argument("--out", default=f"results/{name}", help="output directory for records and figures")
    parser.add_argument("--quick", action="store_true", help="fewer seeds and repeats, same outputs")
    add_config_arguments(parser)
    return parser


def resolve_device(name: str) -> torch.device:
    """'auto' -> CUDA if available else CPU; 'cuda' without CUDA is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but CUDA is not available on this machine")
    return torch.device(name)


def parse_methods(text: str | None) -> list[str]:
    """The methods named on the command line (all registered ones by default), validated."""
    if text is None:
        return adapters.names()
    methods = [m.strip() for m in text.split(",") if m.strip()]
    if not methods:
        raise ValueError("--methods names no method")
    for method in methods:
        adapters.get(method)  # raises ValueError listing the available ones
    return list(dict.fromkeys(methods))


class StudySetup:
    """The parsed and validated command line of a study."""

    def __init__(self, parser: argparse.ArgumentParser, argv: Sequence[str] | None = None):
        args = parser.parse_args(argv)
        try:
            self.config: ExperimentConfig = config_from_args(args)
            if args.seeds < 1:
                raise ValueError(f"--seeds must be a positive integer, got {args.seeds}")
            self.methods = parse_methods(args.methods)
            self.device = resolve_device(args.device)
            self.out = Path(args.out)
            if self.out.exists() and not self.out.is_dir():
                raise ValueError(f"--out {self.out} is a file, not a directory")
        except ValueError as error:
            parser.error(str(error))  # one line on stderr, exit status 2
        self.args = args
        self.seeds = [self.config.seed + i for i in range(args.seeds)]


def format_table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    """A plain-text table with aligned columns (rows are dicts of already formatted cells)."""
    cells = [[str(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    line = lambda values: "  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(values, widths)))  # noqa: E731
    return "\n".join([line(columns), line(["-" * w for w in widths]), *map(line, cells)])
