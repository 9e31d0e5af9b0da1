"""What every study shares: its command line, device and method choice, cells, summary table."""

from __future__ import annotations

import argparse
import itertools
import shlex
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

import adapters
from nfl import cli
from nfl.config import ExperimentConfig, add_config_arguments, config_from_args, config_to_argv
from nfl.results import DirectoryLocked, ResultStore, StoreWriteError, environment, lock_directory
from nfl.seeds import Run
from nfl.stats import format_mean_ci
from nfl.sweep import Backend, Cell, LocalBackend, SweepInterrupted, run_groups
from nfl.tasks import TaskData, make_task_data
from nfl.measure.prepared import step_seconds
from nfl.measure.threads import default_threads
from nfl.training import History, pretrain

SWEEP_RANKS = (1, 2, 4, 8, 16, 32, 64)


def study_parser(name: str, description: str, ranks_help: str = "each method's default rank") -> argparse.ArgumentParser:
    """The flags of docs/design.md's conventions plus one flag per experiment setting."""
    parser = cli.Parser(prog=f"python -m studies.{name}", description=description)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (auto: CUDA when available)")
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds (seed, seed+1, ...); default 3")
    parser.add_argument("--methods", default=None, help="comma-separated methods (default: every registered one): " + ",".join(adapters.names()))
    parser.add_argument("--ranks", default=None, help=f"comma-separated ranks (default: {ranks_help})")
    parser.add_argument("--out", default=f"results/{name}", help="output directory for records and figures")
    parser.add_argument("--quick", action="store_true",
                        help="one seed, at most three grid learning rates and (timings) only the default ranks "
                             "and the ends of the rank range, at most 11 rounds a cell, not 21; same outputs")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads torch uses for the whole study (default: 1 below width 256, else 2; see nfl.measure.threads); recorded in every record's environment")
    parser.add_argument(
        "--engine", choices=("batched", "sequential"), default="batched",
        help="quality runs: batched trains one (method, rank)'s seeds x learning rates at once (torch.func.vmap), "
        "sequential one after another (the reference; same numbers); timing always measures one run",
    )
    parser.add_argument("--resume", action="store_true", help="keep the records already in --out and compute only the missing cells")
    parser.add_argument("--adapter-module", action="append", default=[], metavar="FILE", help="a Python file registering your own adapter (repeatable); see README, Bring your own adapter")
    parser.add_argument("--backend", choices=("local", "ray"), default="local",
                        help="where cells run: in this process (local) or as Ray tasks (ray; needs the ray extra)")
    parser.add_argument("--ray-address", default=None, metavar="ADDRESS",
                        help="with --backend ray: the cluster to join (ray start --head prints it; default: local Ray)")
    add_config_arguments(parser)
    return parser


def resolve_device(name: str) -> torch.device:
    """'auto' -> CUDA if available else CPU; 'cuda' without CUDA is an error."""
    if name not in ("auto", "cpu", "cuda"):
        raise ValueError(f"unknown device {name!r}; choose auto, cpu or cuda")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but CUDA is not available on this machine")
    return torch.device(name)


def make_backend(name: str, address: str | None) -> Backend:
    """The back end ``--backend`` names; Ray is imported only when it is asked for."""
    if name == "local":
        if address is not None:
            raise ValueError("--ray-address needs --backend ray")
        return LocalBackend()
    try:
        from nfl.ray_backend import RayBackend
    except ImportError as error:
        raise ValueError(f'--backend ray needs Ray ({error}): pip install -e ".[ray]"') from None
    backend = RayBackend(address)
    backend.connect()
    return backend


class StudySetup:
    """The parsed and validated command line of a study: bad input exits 2 before any work."""

    def __init__(self, parser: argparse.ArgumentParser, argv: Sequence[str] | None = None, default_ranks: Sequence[int] | None = None):
        self.argv = list(sys.argv[1:] if argv is None else argv)
        self.prog = parser.prog
        args = parser.parse_args(self.argv)
        try:
            self.config: ExperimentConfig = config_from_args(args)
            self.seeds = cli.seeds("--seeds", self.config.seed, args.seeds)[: 1 if args.quick else None]
            cli.threads("--threads", args.threads)
            for path in args.adapter_module:
                adapters.load_module(path)
            self.methods = cli.methods("--methods", args.methods, adapters.names(), adapters.get)
            self.ranks = cli.ranks("--ranks", args.ranks) or (list(default_ranks) if default_ranks else None)
            self.device = resolve_device(args.device)
            if not args.out.strip():
                raise ValueError("--out: must name a directory, got an empty string")
            self.out = Path(args.out)
            if self.out.exists() and not self.out.is_dir():
                raise ValueError(f"--out: {self.out} is a file, not a directory")
            self._strict = args.ranks is not None and len(self.ranks) == 1
            cli.check_memory("--width", cli.run_memory(self.config), self.device)
            self.backend = make_backend(args.backend, args.ray_address)
        except ValueError as error:
            cli.fail(cli.flag_message(str(error)))
        self._notices: list[str] = []  # printed before the first cell, so a rejected input gets one line
        self.method_ranks = self.plan(self.ranks)
        self.args = args
        # Small models want one thread (nfl.measure.threads); --threads overrides, and records keep the number.
        torch.set_num_threads(args.threads or default_threads(self.config.model.width))
        self.engine = args.engine
        self.quick = args.quick
        grid = self.config.train.adaptation_lrs
        self.lrs = quick_grid(grid) if args.quick else list(grid)
        self._pretrained: dict[int, tuple[TaskData, torch.nn.Module, History]] = {}
        self._out_ready = False
        self._step_s: float | None = None
        sys.excepthook = cli.one_line_errors(self.saved)

    def plan(self, ranks: Sequence[int] | None) -> dict[str, list[int | None]]:
        """method -> the ranks it runs at (``None``: its default rank). A rank a method cannot
        take is an error when it is the only rank asked for, else skipped with a one-line notice; a
        method left with no rank at all is an error (exit 2)."""
        width = self.config.model.width
        shapes = Run(self.config, self.config.seed).shapes()
        plan: dict[str, list[int | None]] = {}
        for method in self.methods:
            spec = adapters.get(method)
            if not spec.takes_rank:
                plan[method] = [None]
                continue
            plan[method] = []
            for rank in ranks or [spec.default_rank]:
                try:
                    spec.check(shapes, rank)
                except ValueError as error:
                    if self._strict:
                        cli.fail(f"--ranks: {error}")
                    self._notices.append(f"skipping {method} at rank {rank}: {error}")
                    reason = error
                else:
                    plan[method].append(rank)
            if not plan[method]:
                which = "any rank of --ranks" if ranks else f"its default rank {spec.default_rank}"
                cli.fail(f"--methods: {method} cannot run at {which} with width {width} ({reason})")
        return plan

    def rerun_command(self, cell: Cell) -> str:
        """A command that computes this one cell again (same config, method, rank, seed, device)."""
        skip = {"seed"} if cell.lr is None else {"seed", "lr_grid", "adapt_lr"}
        argv = [*config_to_argv(self.config, skip=skip), "--seed", str(cell.seed), "--seeds", "1", "--methods", cell.method]
        argv += [] if cell.rank is None else ["--ranks", str(cell.rank)]
        argv += [] if cell.lr is None else ["--adapt-lr", repr(cell.lr)]
        argv += [arg for path in self.args.adapter_module for arg in ("--adapter-module", path)]
        argv += ["--device", cell.device.split(":")[0], "--out", str(self.out / "rerun")] + (["--quick"] if self.quick else [])
        return " ".join([f"python -m studies.{cell.study}", *map(shlex.quote, argv)])

    def command(self, resume: bool = False) -> str:
        """The command line that ran this study (with --resume added if asked)."""
        extra = ["--resume"] if resume and "--resume" not in self.argv else []
        return " ".join([self.prog, *map(shlex.quote, self.argv), *extra])

    def cells(self, study: str, seeds: Sequence[int] | None = None, plan: dict[str, list[int | None]] | None = None) -> list[Cell]:
        """Every (method, rank, seed) cell of ``study``, methods outermost."""
        return [cell for group in self.groups(study, seeds, plan, lrs=[None]) for cell in group]

    def groups(
        self, study: str, seeds: Sequence[int] | None = None, plan: dict[str, list[int | None]] | None = None,
        lrs: Sequence[float | None] | None = None,
    ) -> list[list[Cell]]:
        """One group per (method, rank): its cells at every seed and learning rate (default: the
        study's grid), computed together (see :meth:`run_groups`)."""
        cfg = self.config
        return [
            [
                Cell(study, method, rank, seed, cfg.model.width, str(self.device), cfg.digest(), lr=lr)
                for seed in (self.seeds if seeds is None else seeds)
                for lr in (self.lrs if lrs is None else lrs)
            ]
            for method, ranks in (self.method_ranks if plan is None else plan).items()
            for rank in ranks
        ]

    def pretrained(self, seed: int) -> tuple[TaskData, torch.nn.Module, History]:
        """Data, pretrained model and its history for ``seed``, computed once per run."""
        if seed not in self._pretrained:
            data = make_task_data(self.config.task, self.config.model.width, seed).to(self.device)
            model, history = pretrain(self.config, data, seed, self.device)
            self._pretrained[seed] = (data, model, history)
        return self._pretrained[seed]

    def run(
        self, study: str, compute: Callable[[Cell], dict[str, Any]], cells: list[Cell] | None = None,
        steps: int | None = None,
    ) -> list[dict[str, Any]]:
        """:meth:`run_groups` for a study whose cells are computed one by one (default: all of
        ``study``), grouped by method and rank."""
        cells = cells if cells is not None else self.cells(study)
        groups = [list(g) for _, g in itertools.groupby(cells, key=lambda c: (c.method, c.rank))]
        return self.run_groups(study, lambda group: [compute(c) for c in group], groups, steps)

    def run_groups(
        self, study: str, compute: Callable[[list[Cell]], list[dict[str, Any]]], groups: list[list[Cell]],
        steps: int | None = None,
    ) -> list[dict[str, Any]]:
        """Run ``groups`` into ``<out>/<study>.jsonl``, each group's missing cells computed in one
        ``compute(cells)`` call (the batched engine trains them together) on the chosen back end;
        every record also gets the config and the environment it was computed in (a Ray worker's
        node, not the driver's). Exits 130 with a resume hint if interrupted, 1 with one line if a
        record cannot be written."""
        cells = [cell for group in groups for cell in group]
        if not cells:
            return []
        self.prepare_out()
        config, command, threads = self.config.to_dict(), self.command(), self.args.threads

        def compute_group(group: list[Cell]) -> list[dict[str, Any]]:
            if threads is not None:  # a Ray worker starts with its own thread count
                torch.set_num_threads(threads)
            context = {"command": command, "config": config, "env": environment(self.device)}
            return [{**record, **context, "rerun": self.rerun_command(c)} for c, record in zip(group, compute(group))]

        if not isinstance(self.backend, LocalBackend):
            for seed in sorted({c.seed for c in cells}):
                self.pretrained(seed)  # once per seed, here; the back end ships them with compute_group
        store = ResultStore(self.out / f"{study}.jsonl")
        try:
            return run_groups(groups, compute_group, store, self.args.resume, desc=study, backend=self.backend,
                              seconds_per_cell=self.cell_seconds(cells, steps))
        except SweepInterrupted as stop:
            print(f"{stop}; resume with: {self.command(resume=True)}", file=sys.stderr)
            raise SystemExit(130) from None
        except StoreWriteError as error:
            print(f"nfl: error: {error}; {self.saved()}", file=sys.stderr)
            raise SystemExit(1) from None

    def prepare_out(self) -> None:
        """Before the first cell: create --out, prove it writable and lock it (exit 2 if not)."""
        if self._out_ready:
            return
        for notice in dict.fromkeys(self._notices):
            print(notice, file=sys.stderr)
        try:
            cli.writable_dir("--out", str(self.out))
            lock_directory(self.out)
        except ValueError as error:
            cli.fail(str(error))
        except DirectoryLocked as error:
            cli.fail(f"--out: {error}; wait for it to finish or choose another --out")
        self._out_ready = True

    def cell_seconds(self, cells: list[Cell], steps: int | None = None) -> float:
        """An estimate of one cell's time: its ``steps`` (default: the adaptation's) plus its share
        of pretraining, at a measured step time (twice it, for the evaluation after every step)."""
        if self._step_s is None:
            self._step_s = step_seconds(self.config, self.device)
        train = self.config.train
        seeds = len({c.seed for c in cells})
        steps = train.adapt_epochs if steps is None else steps
        return 2 * self._step_s * (steps + train.pretrain_epochs * seeds / len(cells))

    def saved(self) -> str:
        """What a stopped run keeps, and how to go on: for one-line errors."""
        stores = sorted(self.out.glob("*.jsonl")) if self.out.is_dir() else []
        count = sum(line.record is not None for store in stores for line in ResultStore(store).lines())
        return f"{count} cells saved in {self.out}; resume with: {self.command(resume=True)}"


def quick_grid(grid: Sequence[float]) -> list[float]:
    """At most three learning rates of ``grid`` for --quick: every other one of its top five
    (1e-3, 1e-2, 1e-1 of the default's half-decades)."""
    grid = sorted(grid)
    return grid if len(grid) <= 3 else grid[::-2][:3][::-1]


def format_table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    """A plain-text table with aligned columns (rows are dicts of already formatted cells)."""
    cells = [[str(row.get(c, "")) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    line = lambda values: "  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(values, widths)))  # noqa: E731
    return "\n".join([line(columns), line(["-" * w for w in widths]), *map(line, cells)])


def group_summaries(records: list[dict[str, Any]]) -> dict[tuple[str, int | None], list[dict[str, Any]]]:
    """(method, rank) -> the summaries of its records (one per seed), in first-seen order."""
    groups: dict[tuple[str, int | None], list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault((record["method"], record["rank"]), []).append(record["summary"])
    return groups


def quality_cell(summaries: list[dict[str, Any]], key: str, digits: int = 4) -> str:
    """``mean ± 95% CI`` of ``key`` over the runs that did not diverge, and how many did."""
    values = [s[key] for s in summaries if s.get("diverged_at") is None]
    diverged = [s["diverged_at"] for s in summaries if s.get("diverged_at") is not None]
    if not values:
        return f"diverged (step {min(diverged)})"
    text = format_mean_ci(values, digits)
    return text + (f" ({len(diverged)} diverged)" if diverged else "")
