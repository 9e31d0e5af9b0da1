"""Result records: a JSON-lines store with atomic appends, its repair and its lock; the environment.

A store is one JSON object a line. A line that is not one (torn by a crash, undecodable, edited
so that its config no longer hashes to its ``config_hash``) or that repeats a cell is *set aside*:
left out of what is read, with one line saying so, and moved to ``<store>.rejected`` with its line
number by :meth:`ResultStore.repair`. Nothing is ever deleted.

What many records share -- a run's config, command and environment -- may be stored once, as a
*run context* line (:func:`context_record`), and named by each record (``"context": <id>``);
reading joins the context's fields back into every record that names it, so readers see whole
records. A record whose context is not in the store is set aside like a damaged line.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import hashlib
import json
import os
import platform
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nfl import allocator
from nfl.config import config_digest
from nfl.measure.devices import cpu_name, device_name

CELL_FIELDS = ("study", "method", "rank", "seed", "width", "device", "config_hash", "lr", "measurement")


CONTEXT = "context"


def context_record(fields: dict[str, Any]) -> dict[str, Any]:
    """A run context holding ``fields`` (config, command, environment), named by a digest of them."""
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True, allow_nan=True).encode()).hexdigest()[:16]
    return {CONTEXT: digest, **fields}


def is_context(record: dict[str, Any]) -> bool:
    """Whether ``record`` is a run context line rather than a cell's record."""
    return CONTEXT in record and "study" not in record


def record_key(record: dict[str, Any]) -> tuple:
    """The identity of the cell a record belongs to (the fields of ``nfl.sweep.Cell``)."""
    return tuple(record.get(name) for name in CELL_FIELDS)


@functools.cache
def git_commit() -> str | None:
    """The commit of the checkout this code runs from, when there is one (asked once a process: each
    ask is a subprocess, and a study asks for every group it computes)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def environment(device: torch.device | str = "cpu") -> dict[str, Any]:
    """Versions, device and thread count: enough to trace a number back to how it was made."""
    device = torch.device(device)
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "device": str(device),
        "device_name": device_name(device),
        "cpu_model": cpu_name(),  # with device_name, the kind of node a timing is comparable within
        "cpu_threads": torch.get_num_threads(),
        "allocator": allocator.settings(),  # set by every study before its first tensor (None: the libc's own)
        "git_commit": git_commit(),
    }


class StoreWriteError(Exception):
    """A record could not be written in full; the store holds every earlier record, intact."""

    def __init__(self, path: Path, error: OSError):
        self.path, self.error = path, error
        super().__init__(f"could not write a record to {path}: {error.strerror or error}")


class DirectoryLocked(Exception):
    """Another process holds the lock of an output directory."""

    def __init__(self, directory: Path, holder: str):
        self.directory, self.holder = directory, holder
        super().__init__(f"{directory} is in use by another run (PID {holder})")


_LOCKS: dict[Path, int] = {}  # directory -> descriptor of its lock file, held until the process exits


def lock_directory(directory: str | Path) -> None:
    """Hold an exclusive ``flock`` on ``<directory>/.lock`` (holding it already is fine); the file
    names the holder's PID. Raises :class:`DirectoryLocked` at once if another process holds it."""
    key = Path(directory).resolve()
    if key in _LOCKS:
        return
    key.mkdir(parents=True, exist_ok=True)
    fd = os.open(key / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise DirectoryLocked(key, holder) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _LOCKS[key] = fd


def _write_all(fd: int, data: bytes) -> None:
    """``os.write`` until every byte is written; a write that makes no progress is a full disk."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[written:]


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Line:
    """One line of a store: its number, its bytes, and the record or why it was set aside."""

    number: int
    raw: bytes
    record: dict[str, Any] | None
    reason: str | None = None


def _parse(number: int, raw: bytes) -> Line:
    try:
        value = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return Line(number, raw, None, "not valid UTF-8")
    except json.JSONDecodeError:
        return Line(number, raw, None, "not complete JSON (a torn write?)")
    if not isinstance(value, dict):
        return Line(number, raw, None, f"a JSON {type(value).__name__}, not a record")
    config, digest = value.get("config"), value.get("config_hash")
    if config is not None and digest is not None and (not isinstance(config, dict) or config_digest(config) != digest):
        return Line(number, raw, None, f"its config does not hash to its config_hash {digest}")
    return Line(number, raw, value)


def _names_missing(line: Line, contexts: set[str]) -> bool:
    record = line.record
    return record is not None and not is_context(record) and CONTEXT in record and record[CONTEXT] not in contexts


def _orphaned(line: Line) -> Line:
    return Line(line.number, line.raw, None, f"names run context {line.record[CONTEXT]}, which the store does not hold")


class ResultStore:
    """Append-only JSON lines, one record a line.

    Each record is written whole with ``os.write`` on an O_APPEND descriptor (short writes
    continued, the return value checked) and fsynced. A write that fails is cut back off, so the
    store keeps only complete records, and raises :class:`StoreWriteError`.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.rejected_path = self.path.with_name(self.path.name + ".rejected")

    def append(self, record: dict[str, Any]) -> None:
        data = (json.dumps(record, allow_nan=True) + "\n").encode()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as error:
            raise StoreWriteError(self.path, error) from None
        try:
            size = os.fstat(fd).st_size
            # A previous crash may have left a line without its newline: start on a fresh line.
            if size and not self._ends_with_newline():
                data = b"\n" + data
            try:
                _write_all(fd, data)
                os.fsync(fd)
            except OSError:
                os.ftruncate(fd, size)  # drop the partial line: what was there stays valid
                raise
        except OSError as error:
            raise StoreWriteError(self.path, error) from None
        finally:
            os.close(fd)

    def _ends_with_newline(self) -> bool:
        with self.path.open("rb") as f:
            f.seek(-1, os.SEEK_END)
            return f.read(1) == b"\n"

    def lines(self) -> list[Line]:
        """Every non-blank line, parsed; a later record of a cell (or context) already seen, and a
        record naming a context the store does not hold, are set aside."""
        if not self.path.exists():
            return []
        out, seen = [], {}
        for number, raw in enumerate(self.path.read_bytes().split(b"\n"), start=1):
            if not raw.strip():
                continue
            line = _parse(number, raw)
            if line.record is not None and "failed" not in line.record:
                context = is_context(line.record)
                key = (CONTEXT, line.record[CONTEXT]) if context else record_key(line.record)
                if key in seen:
                    first = seen[key]
                    same = "same" if first.record == line.record else "different"
                    what = CONTEXT if context else "cell"
                    why = f"a second record of the {what} on line {first.number} ({same} values)"
                    line = Line(number, raw, None, why)
                else:
                    seen[key] = line
            out.append(line)
        held = {key[1] for key in seen if key[0] == CONTEXT}
        return [_orphaned(line) if _names_missing(line, held) else line for line in out]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.records())

    def records(self, lines: list[Line] | None = None) -> list[dict[str, Any]]:
        """Every good record, in order, its run context's fields joined in (contexts themselves are
        not returned); one line on stderr says how many lines were set aside. ``lines``: this store's,
        already read by :meth:`lines` (a caller that needs both reads the file once)."""
        lines = self.lines() if lines is None else lines
        bad = [line for line in lines if line.record is None]
        if bad:
            numbers = ", ".join(str(line.number) for line in bad)
            print(
                f"warning: {self.path}: {len(bad)} line(s) set aside (line {numbers}: {bad[0].reason}); "
                f"--resume moves them to {self.rejected_path.name}",
                file=sys.stderr,
            )
        good = [line.record for line in lines if line.record is not None]
        contexts = {r[CONTEXT]: r for r in good if is_context(r)}
        return [{**contexts[r[CONTEXT]], **r} if CONTEXT in r else r for r in good if not is_context(r)]

    def contexts(self) -> set[str]:
        """The ids of the run contexts the store holds."""
        return {line.record[CONTEXT] for line in self.lines() if line.record is not None and is_context(line.record)}

    def repair(self, lines: list[Line] | None = None) -> int:
        """Move every set-aside line to ``<store>.rejected`` (with its line number and why), then
        rewrite the store without them atomically (new file, fsync, rename); return how many.
        ``lines``: as in :meth:`records`."""
        lines = self.lines() if lines is None else lines
        bad = [line for line in lines if line.record is None]
        if not bad:
            return 0
        new = self.path.with_name(f".{self.path.name}.repair")
        try:
            with self.rejected_path.open("ab") as f:
                for line in bad:
                    f.write(f"# line {line.number} of {self.path.name}: {line.reason}\n".encode() + line.raw + b"\n")
                f.flush()
                os.fsync(f.fileno())
            with new.open("wb") as f:
                f.write(b"".join(line.raw + b"\n" for line in lines if line.record is not None))
                f.flush()
                os.fsync(f.fileno())
            os.replace(new, self.path)
            _fsync_directory(self.path.parent)
        except OSError as error:
            raise StoreWriteError(self.path, error) from None
        numbers = ", ".join(str(line.number) for line in bad)
        moved = f"{len(bad)} line(s) moved to {self.rejected_path} (line {numbers})"
        print(f"repaired {self.path}: {moved}", file=sys.stderr)
        return len(bad)
