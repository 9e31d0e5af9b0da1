"""Command-line input that fails early: one line on stderr, exit status 2, nothing written.

Every rejected input reads ``nfl: error: <flag>: <what is wrong> (see -h)``: no usage block, no
traceback. The helpers here check what argparse cannot (integer ranges the
libraries take, list items, a writable output directory, memory) before a study does any work.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import torch

import adapters
from nfl.config import SEED_MAX, ExperimentConfig, ModelConfig, TaskConfig, TrainConfig, method_hparams

T = TypeVar("T")
RANK_MAX = 2**31 - 1  # the largest tensor dimension every torch kernel takes
EXIT_INPUT = 2


def fail(message: str) -> NoReturn:
    """Print one line for a rejected input and exit with status 2."""
    print(f"nfl: error: {message} (see -h)", file=sys.stderr)
    raise SystemExit(EXIT_INPUT)


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line (``--flag: what is wrong``), not a usage block."""

    def error(self, message: str) -> NoReturn:
        fail(re.sub(r"^argument ([^:]+): ", r"\1: ", message))


_FIELDS = {f.name for cls in (ExperimentConfig, TaskConfig, ModelConfig, TrainConfig) for f in dataclasses.fields(cls)}


def flag_message(message: str) -> str:
    """A config error ("shift_amplitude must be finite, got inf") said as the flag that sets it."""
    match = re.match(r"([a-z][a-z0-9_]*) (.*)", message)
    if match and match[1] in _FIELDS:
        return f"--{match[1].replace('_', '-')}: {match[2]}"
    return message


def int_in_range(flag: str, value: int, low: int, high: int) -> int:
    """``value`` if ``low <= value <= high``; else a ValueError naming ``flag`` and the range."""
    if not low <= value <= high:
        raise ValueError(f"{flag}: must be an integer in {low} ... {high}, got {value}")
    return value


def parse_list(flag: str, text: str, convert: Callable[[str], T] = str, what: str = "item") -> list[T]:
    """Comma-separated ``text`` as a list: an empty item is an error, a duplicate is dropped with a notice."""
    items = [item.strip() for item in text.split(",")]
    if not any(items):
        raise ValueError(f"{flag}: names no {what}")
    if "" in items:
        raise ValueError(f"{flag}: empty {what} in {text!r}")
    try:
        values = [convert(item) for item in items]
    except ValueError:
        raise ValueError(f"{flag}: takes comma-separated {what}s, got {text!r}") from None
    unique = list(dict.fromkeys(values))
    if len(unique) < len(values):
        dropped = [str(v) for i, v in enumerate(values) if v in values[:i]]
        print(f"note: {flag}: dropped duplicate {what}(s) {', '.join(dropped)}", file=sys.stderr)
    return unique


def threads(flag: str, value: int | None) -> int | None:
    """A thread count between 1 and the machine's CPUs (None: torch's default)."""
    if value is None:
        return None
    return int_in_range(flag, value, 1, os.cpu_count() or 1)


def writable_dir(flag: str, path: str) -> Path:
    """Create ``path`` and prove a file can be written there; a ValueError says why not."""
    if not path.strip():
        raise ValueError(f"{flag}: must name a directory, got an empty string")
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{flag}: {out} is a file, not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".probe-") as probe:
            probe.write(b"probe")
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as error:
        raise ValueError(f"{flag}: cannot write to {out}: {error.strerror or error}") from None
    return out


def available_memory(device: torch.device) -> int | None:
    """Bytes free for a run: the GPU's free memory, or MemAvailable of /proc/meminfo; None if unknown."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        text = Path("/proc/meminfo").read_text()
    except OSError:
        return None
    match = re.search(r"^MemAvailable:\s+(\d+) kB", text, re.MULTILINE)
    return int(match[1]) * 1024 if match else None


def run_memory(cfg: ExperimentConfig) -> int:
    """A rough upper estimate of one run's bytes (float32): the pretrained and adapted MLPs, their
    gradients and Adam's two moments, a dense d x k update; inputs and targets of both tasks."""
    width = cfg.model.width
    weights = 2 * (width * width + width)
    samples = cfg.task.n_train + cfg.task.n_val + cfg.task.test_size
    return 4 * (6 * weights + 8 * samples * width)


def check_memory(flag: str, needed: int, device: torch.device) -> None:
    """A ValueError when a run's estimate exceeds the memory the device has free."""
    free = available_memory(device)
    if free is not None and needed > free:
        raise ValueError(
            f"{flag}: a run needs about {needed / 2**30:.1f} GiB, but only {free / 2**30:.1f} GiB are available"
            f" on {device.type}"
        )


def duration(seconds: float) -> str:
    """A rough human duration: '40 s', '12 min', '3.5 h'."""
    if seconds < 90:
        return f"{max(seconds, 1):.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def first_line(error: BaseException, limit: int = 200) -> str:
    """``Type: message`` of an error, its first line, at most ``limit`` characters."""
    text = f"{type(error).__name__}: {error}".strip().splitlines()[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def one_line_errors(saved: Callable[[], str]) -> Callable[..., Any]:
    """A ``sys.excepthook`` that ends a run on a failed write (OSError) or Ctrl-C with one
    line; ``saved()`` says what is kept and how to resume. Anything else keeps its traceback (a bug).
    The hook itself never raises: if ``saved()`` fails, the line says so instead."""
    default = sys.excepthook

    def kept() -> str:
        try:
            return saved()
        except Exception as error:  # the hook must not raise: "Error in sys.excepthook" is two tracebacks
            return f"what was saved is unknown ({first_line(error)})"

    def hook(kind: type[BaseException], error: BaseException, trace: Any) -> None:
        if issubclass(kind, KeyboardInterrupt):
            print(f"nfl: interrupted; {kept()}", file=sys.stderr)
        elif issubclass(kind, OSError):
            where = f" {error.filename}" if getattr(error, "filename", None) else ""
            print(f"nfl: error: could not write{where}: {error.strerror or error}; {kept()}", file=sys.stderr)
        else:
            default(kind, error, trace)

    return hook


def regular_stores(flag: str, out: Path, names: Sequence[str] | None = None) -> None:
    """A ValueError when a store in ``out`` (``<name>.jsonl``; default: every one there) is not a
    regular file, e.g. a directory: a study would fail on it after its work, report on reading it."""
    paths = [out / f"{name}.jsonl" for name in names] if names is not None else sorted(out.glob("*.jsonl"))
    for path in paths:
        if path.exists() and not path.is_file():
            raise ValueError(f"{flag}: {path} is not a regular file; move it away or choose another {flag}")


def seeds(flag: str, first: int, count: int) -> list[int]:
    """``first, first + 1, ..., first + count - 1``, all within the integer range seeds take."""
    int_in_range(flag, count, 1, SEED_MAX)
    int_in_range("--seed", first, 0, SEED_MAX - count + 1)
    return [first + i for i in range(count)]


def ranks(flag: str, text: str | None) -> list[int] | None:
    """The ranks named by ``text`` (None: each method's default), each within a tensor's dimension range."""
    if text is None:
        return None
    values = parse_list(flag, text, int, what="rank")
    for value in values:
        int_in_range(flag, value, 1, RANK_MAX)
    return values


def methods(flag: str, text: str | None, known: Sequence[str], check: Callable[[str], Any]) -> list[str]:
    """The methods named by ``text`` (None: every one in ``known``), each validated by ``check``."""
    if text is None:
        return list(known)
    names = parse_list(flag, text, what="method")
    for name in names:
        try:
            check(name)
        except ValueError as error:
            raise ValueError(f"{flag}: {error}") from None
    return names


def hparams(flag: str, config: ExperimentConfig) -> None:
    """Check that every method ``--hparams`` names is registered and takes the values it is given."""
    for method, values in method_hparams(config.hparams).items():
        try:
            adapters.get(method).make_hparams(**values)
        except (ValueError, TypeError) as error:
            raise ValueError(f"{flag}: {method}: {error}") from None
