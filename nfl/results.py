"""Result records: a JSON-lines store with atomic appends, and the environment a record was made in."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from nfl.devices import cpu_name


def git_commit() -> str | None:
    """The commit of the checkout this code runs from, when there is one."""
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
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "device": str(device),
        "device_name": name,
        "cpu_model": cpu_name(),  # with device_name, the kind of node a timing is comparable within
        "cpu_threads": torch.get_num_threads(),
        "git_commit": git_commit(),
    }


class ResultStore:
    """Append-only JSON lines, one record a line.

    Each record is written with a single ``os.write`` on an O_APPEND descriptor and fsynced, so a
    crash can at worst leave a truncated last line, which :meth:`records` skips with a warning.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def append(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record, allow_nan=True) + "\n").encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            # A previous crash may have left a line without its newline: start on a fresh line.
            if os.fstat(fd).st_size and not self._ends_with_newline():
                line = b"\n" + line
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    def _ends_with_newline(self) -> bool:
        with self.path.open("rb") as f:
            f.seek(-1, os.SEEK_END)
            return f.read(1) == b"\n"

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.records())

    def records(self) -> list[dict[str, Any]]:
        """Every complete record; a line that does not parse is skipped with a warning."""
        if not self.path.exists():
            return []
        out = []
        for number, line in enumerate(self.path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                warnings.warn(f"{self.path}:{number}: skipping an incomplete record (interrupted write?)", stacklevel=2)
        return out
