"""Sweeps that survive: a study is a list of cells, each finished cell one record in the store.

``run_groups`` hands groups of cells not yet stored (with ``resume``) to a back end, appends each
record the moment its group is finished (the driver alone writes the store), and on SIGINT / SIGTERM
stops cleanly after the current group with a message saying how to resume. Figures are then drawn
from the store, so an interrupted run followed by ``--resume`` gives the same figures as an
uninterrupted one. A back end runs groups in this process (:class:`LocalBackend`) or elsewhere
(``nfl.ray_backend``); a group it reports as failed is stored with its error and computed again on
resume.
"""

from __future__ import annotations

import signal
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterator, Protocol, Sequence

from tqdm import tqdm

from nfl.results import ResultStore

CELL_FIELDS = ("study", "method", "rank", "seed", "width", "device", "config_hash", "lr", "measurement")


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
        return tuple(asdict(self).values())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def record_key(record: dict[str, Any]) -> tuple:
    return tuple(record.get(name) for name in CELL_FIELDS)


GroupCompute = Callable[[list["Cell"]], list[dict[str, Any]]]
GroupResult = tuple[list["Cell"], "list[dict[str, Any]] | BaseException"]


class Backend(Protocol):
    """Where groups are computed: yields each group with its records (or the exception that ended
    it) as it completes, in any order."""

    def run(self, compute: GroupCompute, groups: Sequence[list[Cell]]) -> Iterator[GroupResult]: ...


class LocalBackend:
    """One group after another in this process; an exception stops the sweep, as it always has."""

    def run(self, compute: GroupCompute, groups: Sequence[list[Cell]]) -> Iterator[GroupResult]:
        for group in groups:
            yield group, compute(group)


class SweepInterrupted(Exception):
    """Raised after a clean stop on SIGINT / SIGTERM; the finished cells are in the store."""

    def __init__(self, saved: int, total: int, store: ResultStore):
        self.saved, self.total, self.store = saved, total, store
        super().__init__(f"stopped: {saved} of {total} cells saved in {store.path}")


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
        print(f"\n{signal.Signals(signum).name}: stopping after the current cell (Ctrl-C again to abort it)", file=sys.stderr)

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


def run_groups(
    groups: Sequence[list[Cell]],
    compute: GroupCompute,
    store: ResultStore,
    resume: bool = False,
    desc: str = "cells",
    backend: Backend | None = None,
) -> list[dict[str, Any]]:
    """Compute every cell not already in ``store`` (when ``resume``) in its group, append each record
    as its group finishes, and return the records of ``groups`` in their order, read back from the
    store. A failed group's cells are stored with ``error`` and left out of the returned records."""
    if not resume and store.path.exists():
        backup = store.path.with_name(f"{store.path.name}.{time.strftime('%Y%m%d-%H%M%S')}.bak")
        store.path.rename(backup)
        print(f"note: previous results moved to {backup} (use --resume to continue them instead)", file=sys.stderr)
    cells = [cell for group in groups for cell in group]
    done = {record_key(r) for r in store.records() if "error" not in r}
    todo = [kept for kept in ([c for c in group if c.key() not in done] for group in groups) if kept]
    left = sum(map(len, todo))
    if resume and left < len(cells):
        print(f"resuming: {len(cells) - left} of {len(cells)} cells already in {store.path}", file=sys.stderr)
    failed = 0
    results = (backend or LocalBackend()).run(compute, todo)
    with _stop_requests() as stop, tqdm(total=left, desc=desc, unit="cell", file=sys.stderr, leave=False) as bar:
        try:
            for group, result in results:
                if isinstance(result, BaseException):
                    failed += len(group)
                    error = f"{type(result).__name__}: {result}".splitlines()[0]
                    where = f"{desc} {group[0].method} r={group[0].rank} ({len(group)} cells)"
                    print(f"failed: {where}: {error}", file=sys.stderr)
                    result = [{"error": error}] * len(group)
                for cell, record in zip(group, result):
                    store.append({**cell.to_dict(), **record})
                bar.update(len(group))
                if stop and bar.n < left:
                    raise SweepInterrupted(len(cells) - left + bar.n - failed, len(cells), store)
        finally:
            results.close()  # a remote back end cancels what is still outstanding
    if failed:
        print(f"{failed} cells failed; their errors are in {store.path}, --resume computes them again", file=sys.stderr)
    wanted = {c.key() for c in cells}
    found = {record_key(r): r for r in store.records() if record_key(r) in wanted and "error" not in r}
    return [found[c.key()] for c in cells if c.key() in found]


def run_cells(
    cells: Sequence[Cell],
    compute: Callable[[Cell], dict[str, Any]],
    store: ResultStore,
    resume: bool = False,
    desc: str = "cells",
) -> list[dict[str, Any]]:
    """``run_groups`` with one cell a group, in this process."""
    return run_groups([[cell] for cell in cells], lambda group: [compute(group[0])], store, resume, desc)
