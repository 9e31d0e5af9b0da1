"""Sweeps that survive: a study is a list of groups of cells, each finished cell one record in the store.

A group is the cells computed together (the batched engine trains one (method, rank)'s seeds and
learning rates in one call). :func:`run_groups` hands the groups not yet stored to a
:class:`Backend`, and the driver alone appends each group's records the moment they arrive. A
group whose compute raises is run once more after the others, then recorded as failed with its
error (``"failed": "<error line>"``) and computed again on ``--resume``. SIGINT / SIGTERM stop
cleanly after the current group; a second Ctrl-C aborts it. Figures are drawn from the store, so
an interrupted run followed by ``--resume`` gives the same figures as an uninterrupted one.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, fields
from typing import Any, Protocol

from tqdm import tqdm

from nfl.cli import duration, first_line
from nfl.results import CELL_FIELDS, ResultStore, lock_directory, record_key

__all__ = [
    "CELL_FIELDS", "Backend", "Cell", "LocalBackend", "SweepInterrupted", "record_key", "run_cells", "run_groups",
]


@dataclass(frozen=True)
class Cell:
    """One unit of a sweep; its fields identify its record in the store: everything that changes
    its numbers. ``lr`` is the adaptation learning rate of a quality cell (None: the config's);
    ``measurement`` names how a timing cell is measured (None for quality cells)."""

    study: str
    method: str
    rank: int | None
    seed: int
    width: int
    device: str
    config_hash: str
    lr: float | None = None
    measurement: str | None = None

    def key(self) -> tuple:
        return tuple(getattr(self, f.name) for f in fields(self))  # asdict's deep copy cost 0.2 s a pareto run

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


Compute = Callable[[list[Cell]], list[dict[str, Any]]]
Outcome = tuple[list[Cell], list[dict[str, Any]] | BaseException]


class Backend(Protocol):
    """Where groups are computed. ``run`` yields each group with its records (one per cell, in
    order) or the exception its compute raised, as groups complete, in any order; it never
    writes the store. It must be lazy enough that closing the iterator stops further work."""

    def run(self, compute: Compute, groups: list[list[Cell]]) -> Iterator[Outcome]: ...


class LocalBackend:
    """Every group in this process, one after the other."""

    def run(self, compute: Compute, groups: list[list[Cell]]) -> Iterator[Outcome]:
        for group in groups:
            try:
                yield group, compute(group)
            except Exception as error:  # recorded as the group's outcome; interrupts pass through
                yield group, error


class SweepInterrupted(Exception):
    """Raised after a clean stop on SIGINT / SIGTERM (or an abort on a second Ctrl-C); the finished
    cells are in the store. ``exit_status`` is the shell's for the signal: 130 (SIGINT), 143 (SIGTERM)."""

    def __init__(self, saved: int, total: int, store: ResultStore, aborted: bool = False,
                 signum: int = signal.SIGINT):
        self.saved, self.total, self.store, self.aborted, self.signum = saved, total, store, aborted, signum
        super().__init__(f"{'aborted' if aborted else 'stopped'}: {saved} of {total} cells saved in {store.path}")

    @property
    def exit_status(self) -> int:
        return 128 + int(self.signum)


@contextmanager
def _stop_requests() -> Iterator[list[int]]:
    """Turn the first SIGINT / SIGTERM into a request (a list that gets the signal number);
    a second SIGINT interrupts at once."""
    requests: list[int] = []
    previous = {}

    def handler(signum: int, frame: Any) -> None:
        if requests and signum == signal.SIGINT:
            raise KeyboardInterrupt
        requests.append(signum)
        name = signal.Signals(signum).name
        print(f"\n{name}: stopping after the current group of cells (Ctrl-C again to abort it)", file=sys.stderr)

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread: leave signals alone
            pass
    try:
        yield requests
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _checked(group: list[Cell], result: list[dict[str, Any]] | BaseException) -> list[dict[str, Any]] | BaseException:
    """``result`` if it is an exception or one record (a dict) per cell; else the error saying why not."""
    if isinstance(result, BaseException):
        return result
    if not isinstance(result, list) or len(result) != len(group) or not all(isinstance(r, dict) for r in result):
        return TypeError(f"compute returned {type(result).__name__} for {len(group)} cells, not one dict per cell")
    return result


def _name(group: list[Cell]) -> str:
    cell = group[0]
    seeds = ",".join(dict.fromkeys(str(c.seed) for c in group))
    return f"{cell.method} r={cell.rank} seed {seeds}"


def _outcomes(backend: Backend, compute: Compute, groups: list[list[Cell]], desc: str) -> Iterator[Outcome]:
    """Every group's outcome; a group whose compute fails is run once more, after the others."""
    retry = []
    for group, result in backend.run(compute, groups):
        result = _checked(group, result)
        if isinstance(result, BaseException):
            print(f"{desc}: {_name(group)} failed ({first_line(result)}); trying it once more", file=sys.stderr)
            retry.append(group)
        else:
            yield group, result
    if retry:
        for group, result in backend.run(compute, retry):
            yield group, _checked(group, result)


def _prepare(store: ResultStore, resume: bool) -> list[dict[str, Any]]:
    """Move an old store aside (a new run) or repair it (a resumed one); its good records."""
    if resume:
        lines = store.lines()  # read once: the repair moves the set-aside lines, the good ones are the records
        store.repair(lines)
        return store.records([line for line in lines if line.record is not None])
    if store.path.exists():
        backup = store.path.with_name(f"{store.path.name}.{time.strftime('%Y%m%d-%H%M%S')}.bak")
        store.path.rename(backup)
        print(f"note: previous results moved to {backup} (use --resume to continue them instead)", file=sys.stderr)
    return []


def _announce(desc: str, store: ResultStore, total: int, todo: int, unused: int, estimate: float | None) -> str:
    """Say up front how many cells there are and how long they should take; the estimate's text."""
    about = f"about {duration(estimate)} (estimate)" if estimate is not None else "no time estimate"
    done = f"; {total - todo} already in {store.path}" if todo < total else ""
    if todo:
        print(f"{desc}: {todo} of {total} cells to compute, {about}{done}", file=sys.stderr)
    else:
        print(f"{desc}: all {total} cells already in {store.path}", file=sys.stderr)
    if unused:
        print(
            f"note: {store.path}: {unused} record(s) made with other settings (config, measurement, device) "
            "are kept but not reused",
            file=sys.stderr,
        )
    return f"~{duration(estimate)}" if estimate is not None else ""


def run_groups(
    groups: Sequence[Sequence[Cell]],
    compute: Compute,
    store: ResultStore,
    resume: bool = False,
    desc: str = "cells",
    backend: Backend | None = None,
    seconds_per_cell: float | None = None,
    announce: bool = True,
) -> list[dict[str, Any]]:
    """Compute every cell of ``groups`` not already in ``store`` (when ``resume``), a group at a time
    (``compute(group)`` returns one record per cell), append each record as it arrives, and return
    the records of the cells that succeeded, in their order, read back from the store. ``announce``
    False leaves saying what is to come to the caller (a sweep made of several calls)."""
    cells = [cell for group in groups for cell in group]
    if not cells:
        return []
    lock_directory(store.path.parent)
    wanted = {cell.key() for cell in cells}
    records = _prepare(store, resume)
    done = {record_key(r) for r in records if "failed" not in r}
    todo = [pending for pending in ([c for c in group if c.key() not in done] for group in groups) if pending]
    count = sum(map(len, todo))
    unused = sum(1 for r in records if "failed" not in r and record_key(r) not in wanted)
    total_s = None if seconds_per_cell is None else seconds_per_cell * count
    with ExitStack() as stack:
        stop = stack.enter_context(_stop_requests())  # first: a signal once the sweep is announced stops it cleanly
        estimate = _announce(desc, store, len(cells), count, unused, total_s) if announce else ""
        saved, failed = len(cells) - count, 0
        label = f"{desc} {estimate}".strip()
        bar = stack.enter_context(tqdm(total=count, desc=label, unit="cell", file=sys.stderr, leave=False))
        outcomes = _outcomes(backend or LocalBackend(), compute, [list(g) for g in todo], desc)
        try:
            for group, result in outcomes:
                if isinstance(result, BaseException):
                    error = first_line(result)
                    for cell in group:
                        store.append({**cell.to_dict(), "failed": error})
                    failed += len(group)
                    print(f"{desc}: {_name(group)} failed again ({error}); recorded as failed", file=sys.stderr)
                else:
                    for cell, record in zip(group, result):
                        store.append({**cell.to_dict(), **record})
                    saved += len(group)
                bar.update(len(group))
                bar.set_postfix_str(_name(group))
                if stop:
                    raise SweepInterrupted(saved, len(cells), store, signum=stop[0])
        except KeyboardInterrupt:
            raise SweepInterrupted(saved, len(cells), store, aborted=True) from None
        finally:
            outcomes.close()
    if failed:
        why = "their records say why; --resume computes them again"
        print(f"note: {failed} of {len(cells)} cells failed; {why}", file=sys.stderr)
    found: dict[tuple, dict[str, Any]] = {}
    for record in store.records() if count else records:  # nothing appended: the store is what was read
        if "failed" not in record and record_key(record) in wanted:
            found.setdefault(record_key(record), record)
    return [found[c.key()] for c in cells if c.key() in found]


def run_cells(
    cells: Sequence[Cell],
    compute: Callable[[Cell], dict[str, Any]],
    store: ResultStore,
    resume: bool = False,
    desc: str = "cells",
    backend: Backend | None = None,
    seconds_per_cell: float | None = None,
    announce: bool = True,
) -> list[dict[str, Any]]:
    """:func:`run_groups` with one cell a group: ``compute(cell)`` returns its record."""
    groups = [[cell] for cell in cells]
    return run_groups(groups, lambda group: [compute(group[0])], store, resume, desc, backend, seconds_per_cell,
                      announce)
