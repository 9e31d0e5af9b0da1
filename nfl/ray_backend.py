"""Ray as a sweep back end: each group of cells one Ray task, on a local Ray or on a cluster.

Imported only for ``--backend ray`` (the ``ray`` extra). Workers return records and the driver
writes the store, so resume, repair and figures are the same as with the local back end. The
compute callable is put into Ray's object store once per sweep, with whatever it carries (a
study's pretrained models, computed once per seed on the driver), and every task reads that one
copy instead of recomputing it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any

import ray
from ray.exceptions import RayError, RayTaskError

from nfl.sweep import Cell
from nfl.sweep import Compute as GroupCompute
from nfl.sweep import Outcome as GroupResult


# max_retries: a lost worker or an out-of-memory kill is retried once here. An exception raised by the
# compute is yielded at once: the driver (nfl.sweep) runs a failed group once more, whatever the back end.
@ray.remote(max_retries=1)
def _compute_group(compute: GroupCompute, group: list[Cell]) -> list[dict[str, Any]]:
    return compute(group)


def _gpus(group: Sequence[Cell]) -> int:
    """One GPU for a CUDA group, so a machine with several GPUs runs one group on each."""
    return int(any(cell.device.startswith("cuda") for cell in group))


class RayBackend:
    """Groups as Ray tasks, yielded as they complete; a task that fails twice is yielded as its error.

    ``address``: a running cluster to join (``ray start --head`` prints it); None starts a local
    Ray of ``num_cpus`` CPUs (None: all of them) for this process.
    """

    def __init__(self, address: str | None = None, num_cpus: int | None = None):
        self.address, self.num_cpus = address, num_cpus

    def connect(self) -> None:
        """Join the cluster or start the local Ray, once per process; a bad address is a ValueError."""
        if ray.is_initialized():
            return
        # "local" always starts a fresh instance rather than joining one another user started here.
        options = {"address": self.address} if self.address else {"address": "local", "num_cpus": self.num_cpus}
        try:
            ray.init(**options, include_dashboard=False, logging_level=logging.WARNING)
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise ValueError(f"--ray-address {self.address}: cannot join a Ray cluster there ({error})") from None

    def run(self, compute: GroupCompute, groups: Sequence[list[Cell]]) -> Iterator[GroupResult]:
        self.connect()
        shared = ray.put(compute)
        pending = {_compute_group.options(num_gpus=_gpus(g)).remote(shared, g): g for g in groups}
        try:
            while pending:
                # A timeout keeps the driver responsive to Ctrl-C while tasks run.
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
                for ref in ready:
                    group = pending.pop(ref)
                    try:
                        result: list[dict[str, Any]] | BaseException = ray.get(ref)
                    except RayTaskError as error:  # the task's own exception, without Ray's wrapper
                        result = error.cause if isinstance(error.cause, BaseException) else error
                    except RayError as error:  # a lost worker, an out-of-memory kill, a cancelled task
                        result = error
                    yield group, result
        finally:  # interrupted (or the driver stopped reading): stop the rest
            _cancel(list(pending))


def _cancel(refs: list[ray.ObjectRef], attempts: int = 3, pause_s: float = 0.5) -> None:
    """Force-cancel ``refs``, a few times: a task being handed to a worker as the first cancel arrives
    can start after it (the cancel test saw a started task alive 90 s later, once in three full runs)."""
    for attempt in range(attempts):
        for ref in refs:
            ray.cancel(ref, force=True)
        if attempt + 1 < attempts:
            time.sleep(pause_s)
