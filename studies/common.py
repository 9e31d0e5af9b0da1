"""What every study shares: its command line, device and method choice, cells, summary table."""

from __future__ import annotations

import argparse
import collections
import itertools
import shlex
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

import adapters
from nfl import cli, testbeds
from nfl.allocator import exempt_from_collection, keep_freed_memory
from nfl.config import ExperimentConfig, add_config_arguments, config_from_args, config_to_argv, format_lr_grid
from nfl.measure.prepared import step_seconds
from nfl.measure.threads import default_threads
from nfl.results import DirectoryLocked, ResultStore, StoreWriteError, environment, lock_directory, record_key
from nfl.seeds import Run
from nfl.stats import format_mean_ci
from nfl.sweep import Backend, Cell, LocalBackend, SweepInterrupted, run_groups
from nfl.tasks import TaskData
from nfl.testbeds import cache
from nfl.training import History, pretrain
from studies.outputs import Outputs, show

SWEEP_RANKS = (1, 2, 4, 8, 16, 32, 64)
DEFAULT_SEEDS = 3
# The exit status of a study that finished but where every cell of some method failed: its rows say
# why (1 is a write error or a crash, 2 a rejected input, 130 / 143 an interrupt).
EXIT_FAILED = 3
LIMIT_S = 3600  # a sweep estimated beyond this runs only with --yes
DEFAULT_QUICK_SEEDS = 1


def study_parser(
    name: str, description: str, ranks_help: str = "each method's default rank", seeds: int = DEFAULT_SEEDS
) -> argparse.ArgumentParser:
    """The flags of docs/design.md's conventions plus one flag per experiment setting; ``seeds`` is
    the study's default seed count (without --quick)."""
    parser = cli.Parser(prog=f"python -m studies.{name}", description=description)
    parser.set_defaults(default_seeds=seeds)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (auto: CUDA when available)")
    parser.add_argument("--seeds", type=int, default=None,
                        help=f"number of seeds (seed, seed+1, ...); default {seeds}, 1 with --quick")
    parser.add_argument(
        "--methods",
        default=None,
        help="comma-separated methods (default: every registered one): " + ",".join(adapters.names()),
    )
    parser.add_argument("--ranks", default=None, help=f"comma-separated ranks (default: {ranks_help})")
    parser.add_argument("--out", default=f"results/{name}", help="output directory for records and figures")
    parser.add_argument("--quick", action="store_true",
                        help="smaller defaults, same outputs: one seed, three learning rates of the grid and "
                             "(timings) only the default ranks and the ends of the rank range, at most 11 rounds "
                             "a cell, not 21; a flag you give (--seeds, --lr-grid, --rounds, --ranks) is kept")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads torch uses for the whole study (default: 1 below width 256, else 2; see "
        "nfl.measure.threads); recorded in every record's environment",
    )
    parser.add_argument(
        "--engine", choices=("batched", "sequential"), default="batched",
        help="quality runs: batched trains one (method, rank)'s seeds x learning rates at once (torch.func.vmap), "
        "sequential one after another (the reference; same numbers); timing always measures one run",
    )
    parser.add_argument(
        "--yes",
        action="store_true",
        help=f"run even when the time estimate is beyond {LIMIT_S // 3600} hour (else refused before any work)",
    )
    parser.add_argument(
        "--resume", action="store_true", help="keep the records already in --out and compute only the missing cells"
    )
    parser.add_argument(
        "--adapter-module",
        action="append",
        default=[],
        metavar="FILE",
        help="a Python file registering your own adapter (repeatable); see README, Bring your own adapter",
    )
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

    def __init__(
        self, parser: argparse.ArgumentParser, argv: Sequence[str] | None = None,
        default_ranks: Sequence[int] | None = None, testbeds_supported: Sequence[str] = ("mlp", "gpt"),
    ):
        self.argv = list(sys.argv[1:] if argv is None else argv)
        self.prog = parser.prog
        args = parser.parse_args(self.argv)
        try:
            config = config_from_args(args)
            if config.testbed not in testbeds_supported:
                raise ValueError(f"--testbed: {self.prog} runs on {' and '.join(testbeds_supported)} only, "
                                 f"got {config.testbed}")
            self.testbed = testbeds.get(config.testbed)
            self.config: ExperimentConfig = self.testbed.resolve(config)
            count = args.seeds if args.seeds is not None else DEFAULT_QUICK_SEEDS if args.quick else args.default_seeds
            self.seeds = cli.seeds("--seeds", self.config.seed, count)
            cli.threads("--threads", args.threads)
            for path in args.adapter_module:
                try:
                    adapters.load_module(path)
                except ValueError as error:
                    raise ValueError(f"--adapter-module: {error}") from None
            self.methods = cli.methods("--methods", args.methods, adapters.names(), adapters.get)
            cli.hparams("--hparams", self.config)
            self.ranks = cli.ranks("--ranks", args.ranks) or (list(default_ranks) if default_ranks else None)
            self.device = resolve_device(args.device)
            if not args.out.strip():
                raise ValueError("--out: must name a directory, got an empty string")
            self.out = Path(args.out)
            if self.out.exists() and not self.out.is_dir():
                raise ValueError(f"--out: {self.out} is a file, not a directory")
            if self.out.is_dir():
                cli.regular_stores("--out", self.out)
            self._strict = args.ranks is not None and len(self.ranks) == 1
            self._methods_given = args.methods is not None
            cli.check_memory("--width", cli.run_memory(self.config), self.device)
            self.backend = make_backend(args.backend, args.ray_address)
        except ValueError as error:
            cli.fail(cli.flag_message(str(error)))
        self._notices: list[str] = []  # printed before the first cell, so a rejected input gets one line
        self.method_ranks = self.plan(self.ranks)
        self.args = args
        # Small models want one thread (nfl.measure.threads); --threads overrides, and records keep the number.
        torch.set_num_threads(args.threads or default_threads(self.config.width))
        keep_freed_memory()  # before any tensor: every run of the process under one allocator policy
        exempt_from_collection()  # what start-up imported lives until exit
        self.engine = args.engine
        self.quick = args.quick
        grid = self.config.train.adaptation_lrs
        chosen_grid = args.cfg_lr_grid is not None or args.cfg_adapt_lr is not None
        self.lrs = quick_grid(grid) if args.quick and not chosen_grid else list(grid)
        if args.quick:
            default_seeds = None if args.seeds is not None else args.default_seeds
            self._notices.append(quick_notice(default_seeds, self.lrs if not chosen_grid else None, len(grid)))
        self._pretrained: dict[int, tuple[TaskData, torch.nn.Module, History]] = {}
        self._pretraining: StudySetup = self  # whose pretrained models this setup adapts (share_pretraining)
        self._out_ready = False
        self._step_times: dict[tuple[str | None, int | None], float] = {}
        self.cells_run: list[Cell] = []  # every cell asked of run_groups, and those that failed
        self.failed: list[dict[str, Any]] = []
        sys.excepthook = cli.one_line_errors(self.saved)

    def plan(self, ranks: Sequence[int] | None) -> dict[str, list[int | None]]:
        """method -> the ranks it runs at (``None``: its default rank). A rank a method cannot
        take is an error when it is the only rank asked for, else skipped with a one-line notice; a
        method left with no rank at all is an error (exit 2)."""
        width = self.config.width
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
                if self._methods_given:
                    cli.fail(f"--methods: {method} cannot run at {which} with width {width} ({reason})")
                cli.fail(
                    f"--width: {width} is too narrow for {method} at {which} ({reason}); "
                    f"widen it or leave {method} out with --methods"
                )
        return plan

    def rerun_command(self, cell: Cell) -> str:
        """A command that computes this one cell again (same config, method, rank, seed, device)."""
        skip = {"seed"} if cell.lr is None else {"seed", "lr_grid", "adapt_lr"}
        argv = [
            *config_to_argv(self.config, skip=skip),
            "--seed",
            str(cell.seed),
            "--seeds",
            "1",
            "--methods",
            cell.method,
        ]
        argv += [] if cell.rank is None else ["--ranks", str(cell.rank)]
        argv += [] if cell.lr is None else ["--adapt-lr", repr(cell.lr)]
        argv += [arg for path in self.args.adapter_module for arg in ("--adapter-module", path)]
        argv += ["--device", cell.device.split(":")[0], "--out", str(self.out / "rerun")] + (
            ["--quick"] if self.quick else []
        )
        return " ".join([f"python -m studies.{cell.study}", *map(shlex.quote, argv)])

    def command(self, resume: bool = False) -> str:
        """The command line that ran this study (with --resume added if asked)."""
        extra = ["--resume"] if resume and "--resume" not in self.argv else []
        return " ".join([self.prog, *map(shlex.quote, self.argv), *extra])

    def cells(
        self, study: str, seeds: Sequence[int] | None = None, plan: dict[str, list[int | None]] | None = None
    ) -> list[Cell]:
        """Every (method, rank, seed) cell of ``study``, methods outermost."""
        return [cell for group in self.groups(study, seeds, plan, lrs=[None]) for cell in group]

    def groups(
        self, study: str, seeds: Sequence[int] | None = None, plan: dict[str, list[int | None]] | None = None,
        lrs: Sequence[float | None] | None = None,
    ) -> list[list[Cell]]:
        """One group per (method, rank): its cells at every seed and learning rate (default: the
        study's grid), computed together (see :meth:`run_groups`)."""
        cfg, digest = self.config, self.config.digest()
        seeds, lrs = self.seeds if seeds is None else seeds, self.lrs if lrs is None else lrs
        plan = self.method_ranks if plan is None else plan
        counts = {(method, rank): len(seeds) * len(lrs) for method, ranks in plan.items() for rank in ranks}
        self.check_size(counts, self.estimate(counts, len(seeds)))  # before a million cells are built
        return [
            [
                Cell(study, method, rank, seed, cfg.width, str(self.device), digest, lr=lr)
                for seed in seeds
                for lr in lrs
            ]
            for method, ranks in plan.items()
            for rank in ranks
        ]

    def pretrained(self, seed: int) -> tuple[TaskData, torch.nn.Module, History]:
        """Data, pretrained model and its history for ``seed``, computed once per run; a testbed whose
        pretraining is costly keeps the model under ``--out/pretrained`` for the next run or study."""
        if self._pretraining is not self:
            return self._pretraining.pretrained(seed)
        if seed not in self._pretrained:
            data = self.testbed.make_data(self.config, seed).to(self.device)
            if self.testbed.CACHE_PRETRAINING:
                model, history = cache.pretrained(self.config, data, seed, self.device, self.out)
            else:
                model, history = pretrain(self.config, data, seed, self.device)
            self._pretrained[seed] = (data, model, history)
        return self._pretrained[seed]

    def share_pretraining(self, other: StudySetup) -> None:
        """Use ``other``'s pretrained models (each computed once for both): for a setup whose config
        differs from ``other``'s only in what adaptation uses, such as claims' rank sweep beside its column."""
        if cache.pretraining_digest(self.config) != cache.pretraining_digest(other.config):
            raise ValueError("share_pretraining: the two setups pretrain differently")
        self._pretraining = other

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
        node, not the driver's). Exits 130 (SIGINT) or 143 (SIGTERM) with a resume hint if
        interrupted, 1 with one line if a record cannot be written."""
        cells = [cell for group in groups for cell in group]
        if not cells:
            return []
        todo = self.todo(study, cells)
        seconds = self.estimate(
            collections.Counter((c.method, c.rank) for c in todo), len({c.seed for c in todo}), steps
        )
        self.prepare_out()
        config, command, threads = self.config.to_dict(), self.command(), self.args.threads

        def compute_group(group: list[Cell]) -> list[dict[str, Any]]:
            if threads is not None:  # a Ray worker starts with its own thread count
                torch.set_num_threads(threads)
            keep_freed_memory()  # and its own allocator settings (once a process)
            context = {"command": command, "config": config, "env": environment(self.device)}
            return [{**record, **context, "rerun": self.rerun_command(c)} for c, record in zip(group, compute(group))]

        if not isinstance(self.backend, LocalBackend):
            for seed in sorted({c.seed for c in cells}):
                self.pretrained(seed)  # once per seed, here; the back end ships them with compute_group
        store = ResultStore(self.out / f"{study}.jsonl")
        try:
            records = run_groups(groups, compute_group, store, self.args.resume, desc=study, backend=self.backend,
                                 seconds_per_cell=seconds / max(len(todo), 1))
        except SweepInterrupted as stop:
            print(f"{stop}; resume with: {self.command(resume=True)}", file=sys.stderr)
            raise SystemExit(stop.exit_status) from None
        except StoreWriteError as error:
            print(f"nfl: error: {error}; {self.saved()}", file=sys.stderr)
            raise SystemExit(1) from None
        wanted = {cell.key() for cell in cells}
        self.cells_run += cells
        self.failed += [r for r in failed_records(store.records()) if record_key(r) in wanted]
        if not records:  # nothing to draw: say what failed and stop
            self.finish()
        exempt_from_collection()  # the records, and torch's compiler (imported by the first Adam step), live on
        return records

    def show(self, made: Outputs, stores: Sequence[Path]) -> None:
        """Print the study's tables, each with the methods that failed in this run and why, and where
        its files are; then :meth:`finish`."""
        tables, paths = made
        show(({name: with_failures(text, self.failed) for name, text in tables.items()}, paths), stores)
        exempt_from_collection()  # the exit's own full collection need not walk what the run imported since
        self.finish()

    def finish(self) -> None:
        """End a study: one line counting its failed cells; exit :data:`EXIT_FAILED` when every cell
        of some (study, method, rank) failed (the tables list each failed method with its reason)."""
        if not self.failed:
            return
        failed = {record_key(r) for r in self.failed}
        outcomes: dict[tuple[str, str, int | None], list[bool]] = {}
        for cell in self.cells_run:
            outcomes.setdefault((cell.study, cell.method, cell.rank), []).append(cell.key() in failed)
        lost = [group for group, fails in outcomes.items() if all(fails)]
        named = ", ".join(f"{study} {method}" + ("" if rank is None else f" r={rank}") for study, method, rank in lost)
        print(
            f"nfl: {len(self.failed)} of {len(self.cells_run)} cells failed"
            + (f"; every cell failed for {named}" if lost else "")
            + f" (reasons above; --resume computes them again: {self.command(resume=True)})",
            file=sys.stderr,
        )
        if lost:
            raise SystemExit(EXIT_FAILED)

    def prepare_out(self) -> None:
        """Before the first cell: create --out, prove it writable and lock it (exit 2 if not)."""
        if self._out_ready:
            return
        try:
            cli.writable_dir("--out", str(self.out))
            lock_directory(self.out)
        except ValueError as error:
            cli.fail(str(error))
        except DirectoryLocked as error:
            cli.fail(f"--out: {error}; wait for it to finish or choose another --out")
        for notice in dict.fromkeys(self._notices):
            print(notice, file=sys.stderr)
        self._out_ready = True

    def todo(self, study: str, cells: list[Cell]) -> list[Cell]:
        """The cells a run will compute: all of them, or with --resume those not yet in the store."""
        path = self.out / f"{study}.jsonl"
        if not (self.args.resume and path.is_file()):
            return cells
        done = {record_key(line.record) for line in ResultStore(path).lines()
                if line.record is not None and "failed" not in line.record}
        return [cell for cell in cells if cell.key() not in done]

    def estimate(self, counts: Mapping[tuple[str, int | None], int], seeds: int, steps: int | None = None) -> float:
        """Seconds to compute ``counts[(method, rank)]`` cells of each (method, rank) over ``seeds``
        seeds: each cell its ``steps`` (default: the adaptation's), each a training step plus the
        evaluation after it (as long as a step of the MLP alone: merged adapters evaluate at the
        base's cost), plus pretraining once per seed. A training step's time is measured for the MLP
        alone and for the largest adapter among them and scales with a cell's trainable parameters
        in between (measured on a busy 2-core host: LoRA rank 100,000, 25.6 M parameters, 0.49-0.53 s
        a step against 0.23-0.26 ms for the MLP)."""
        counts = {key: n for key, n in counts.items() if n}
        if not counts:
            return 0.0
        train = self.config.train
        steps = train.adapt_epochs if steps is None else steps
        params = {key: self.trainable_params(*key) for key in counts}
        largest = max(params, key=lambda key: params[key])
        base_s, largest_s = self.step_time(None, None), self.step_time(*largest)
        per_param = largest_s / max(params[largest], 1)
        adapt = sum(n * (max(base_s, per_param * params[key]) + base_s) for key, n in counts.items())
        return steps * adapt + 2 * train.pretrain_epochs * base_s * seeds

    def trainable_params(self, method: str, rank: int | None) -> int:
        """A (method, rank)'s trainable parameters on this config's model, by its formula (nothing built)."""
        model = self.testbed.meta_model(self.config)
        if adapters.get(method).adapter is None:  # full fine-tuning: embeddings and norms too, not only the Linears
            return sum(p.numel() for p in model.parameters())
        names = adapters.trained_layer_names(model, method, self.testbed.target_modules(self.config))
        shapes = [(model.get_submodule(n).out_features, model.get_submodule(n).in_features) for n in names]
        return adapters.get(method).expected_params(shapes, rank)

    def step_time(self, method: str | None, rank: int | None) -> float:
        """One training step's seconds (measured once per (method, rank); None: the MLP alone)."""
        key = (method, rank)
        if key not in self._step_times:
            try:
                self._step_times[key] = step_seconds(self.config, self.device, method=method, rank=rank)
            except Exception:  # noqa: BLE001 - a method that cannot be built fails its cells, which say why
                if method is None:
                    raise
                self._step_times[key] = self.step_time(None, None)
        return self._step_times[key]

    def check_size(self, counts: Mapping[tuple[str, int | None], int], seconds: float) -> None:
        """Refuse, in one line and before any work, a sweep whose estimate is beyond :data:`LIMIT_S`
        (unless --yes) or whose batched group (one (method, rank)'s runs) would not fit in memory."""
        cells = sum(counts.values())
        if seconds > LIMIT_S and not self.args.yes:
            cli.fail(f"--yes: this sweep needs about {cli.duration(seconds)} ({cells:,} cells, estimated); "
                     "give --yes to run it, or fewer --seeds, --lr-grid points or --ranks")
        runs_at_once = max(counts.values(), default=0)
        if self.engine == "batched" and runs_at_once > 1:
            # Each run holds the model, its data and, in float32, an adapter with its gradient and Adam's two moments.
            per_run = cli.run_memory(self.config) + 16 * max(self.trainable_params(*key) for key in counts)
            needed, free = runs_at_once * per_run, cli.available_memory(self.device)
            if free is not None and needed > free:
                cli.fail(f"--seeds: the batched engine trains {runs_at_once:,} runs at once, about "
                         f"{needed / 2**30:.1f} GiB, but {free / 2**30:.1f} GiB are available on {self.device.type}; "
                         "fewer --seeds or --lr-grid points, or --engine sequential")

    def saved(self) -> str:
        """What a stopped run keeps, and how to go on: for one-line errors."""
        stores = [path for path in sorted(self.out.glob("*.jsonl")) if path.is_file()] if self.out.is_dir() else []
        count = sum(line.record is not None for store in stores for line in ResultStore(store).lines())
        return f"{count} cells saved in {self.out}; resume with: {self.command(resume=True)}"


def quick_grid(grid: Sequence[float]) -> list[float]:
    """At most three learning rates of ``grid`` for --quick: the grid points nearest (in log lr) to
    its top, a decade and two decades below it, or to three points spread over a grid spanning less
    (1e-3, 1e-2, 1e-1 of the default's half-decades, however dense the grid)."""
    grid = sorted(grid)
    if len(grid) <= 3:
        return grid
    top, bottom = np.log10(grid[-1]), np.log10(grid[0])
    logs = np.log10(grid)
    targets = np.linspace(max(bottom, top - 2), top, 3)
    chosen = sorted({int(np.argmin(np.abs(logs - target))) for target in targets})
    return [grid[i] for i in chosen]


def quick_notice(default_seeds: int | None, lrs: Sequence[float] | None, grid_size: int) -> str:
    """What --quick chose, and which of the user's flags it kept (``default_seeds`` None: the user's
    own --seeds; ``lrs`` None: the user's own grid)."""
    used, kept = [], []
    if default_seeds is not None:
        used.append(f"{DEFAULT_QUICK_SEEDS} seed (not {default_seeds})")
    else:
        kept.append("--seeds")
    if lrs is None:
        kept.append("--lr-grid / --adapt-lr")
    elif len(lrs) < grid_size:
        used.append(f"learning rates {format_lr_grid(tuple(lrs))} ({len(lrs)} of the grid's {grid_size})")
    used.append("fewer timing rounds where the study times")
    return f"note: --quick uses {', '.join(used)}" + (f"; kept as given: {', '.join(kept)}" if kept else "")


def failed_records(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The failed records (``"failed": reason``) of cells with no finished record, the latest per cell."""
    done = {record_key(r) for r in records if "failed" not in r}
    latest = {record_key(r): r for r in records if "failed" in r and record_key(r) not in done}
    return list(latest.values())


def _label(method: str) -> str:
    try:
        return adapters.get(method).label
    except ValueError:  # a method of an adapter file this process has not loaded
        return method


def with_failures(table: str, failed: Sequence[dict[str, Any]]) -> str:
    """``table`` (of :func:`format_table`) with one row per failed (method, rank), marked FAILED in its
    first column after method and rank, and below it one line per failure with its reason."""
    if not failed:
        return table
    table, blank, tail = table.partition("\n\n")  # lines after the table (checks, notes) stay after it
    notes, columns, rows = parse_table(table) if table.strip() else ([], ["method", "rank", "result"], [])
    by_group: dict[tuple[str, Any], list[dict[str, Any]]] = {}
    for record in failed:
        by_group.setdefault((record["method"], record["rank"]), []).append(record)
    mark = next((i for i, c in enumerate(columns) if i and c != "rank"), len(columns) - 1)
    lines, extra = [], []
    for number, ((method, rank), records) in enumerate(by_group.items(), start=1):
        row = {columns[0]: _label(method), "rank": "-" if rank is None else str(rank)}
        extra.append({**row, columns[mark]: f"FAILED [{number}]"})
        cells = f"{len(records)} cell{'s' if len(records) > 1 else ''}"
        lines.append(f"[{number}] {_label(method)}{'' if rank is None else f' r={rank}'}: {cells} failed: "
                     f"{records[-1]['failed']}")
    body = format_table([dict(zip(columns, row)) for row in rows] + extra, columns)
    return "\n".join([*notes, body, *lines]) + blank + tail


def parse_table(text: str) -> tuple[list[str], list[str], list[list[str]]]:
    """(notes above the table, its columns, its rows) from a table of :func:`format_table`, cut at
    the column spans of its dashed rule."""
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


def format_table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    """A plain-text table with aligned columns (rows are dicts of already formatted cells)."""
    cells = [[str(row.get(c, "")) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]

    def line(values: Sequence[str]) -> str:  # the first column left-aligned, the others right-aligned
        return "  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(values, widths)))

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
