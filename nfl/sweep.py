"""Sweeps that survive: a study is a list of cells, each finished cell one record in the store.

``run_cells`` computes the cells not yet stored (with ``resume``), appends each record the moment it
is finished, and on SIGINT / SIGTERM stops cleanly after the current cell with a message saying how
to resume. Figures are then drawn from the store, so an interrupted run followed by ``--resume``
gives the same figures as an uninterrupted one.
"""

from __future__ import annotations

import signal
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterator, Sequence

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


def run_cells(
    cells: Sequence[Cell],
    compute: Callable[[Cell], dict[str, Any]],
    store: ResultStore,
    resume: bool = False,
    desc: str = "cells",
) -> list[dict[str, Any]]:
    """Compute every cell not already in ``store`` (when ``resume``), append each record as it
    finishes, and return the records of ``cells`` in their order, read back from the store."""
    if not resume and store.path.exists():
        backup = store.path.with_name(f"{store.path.name}.{time.strftime('%Y%m%d-%H%M%S')}.bak")
        store.path.rename(backup)
        print(f"note: previous results moved to {backup} (use --resume to continue them instead)", file=sys.stderr)
    done = {record_key(r) for r in store.records()}
    todo = [c for c in cells if c.key() not in done]
    if resume and len(todo) < len(cells):
        print(f"resuming: {len(cells) - len(todo)} of {len(cells)} cells already in {store.path}", file=sys.stderr)
    with _stop_requests() as stop, tqdm(total=len(todo), desc=desc, unit="cell", file=sys.stderr, leave=False) as bar:
        for cell in todo:
            if stop:
                raise SweepInterrupted(len(cells) - len(todo) + bar.n, len(cells), store)
            bar.set_postfix_str(f"{cell.method} r={cell.rank} seed={cell.seed}")
            store.append({**cell.to_dict(), **compute(cell)})
            bar.update()
    wanted = {c.key(): i for i, c in enumerate(cells)}
    found = {record_key(r): r for r in store.records() if record_key(r) in wanted}
    return [found[c.key()] for c in cells if c.key() in found]
