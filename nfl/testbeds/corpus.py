"""The ``gpt`` testbed's text: bytes from the running Python, split into train / validation / test.

Base task: English prose, Python's bundled documentation (``pydoc_data.topics``, the text ``help()``
shows), topics in sorted order. Shifted task: Python source, the standard-library modules in
:data:`CODE_MODULES` (a fixed, sorted list, each present in Python 3.10-3.13) read from the running
interpreter's ``sysconfig`` stdlib directory. Either may be replaced by a user's file.

No tokenizer: a byte is a token (vocabulary 256). Each corpus is cut into three disjoint contiguous
spans (train, validation, test, in that order) and a window never crosses a border: a training
batch is ``batch`` windows at random starts inside the train span, drawn from a generator the
caller owns; validation and test are fixed windows spread evenly over their spans.

A corpus is known by its sha256 (and the Python version it came from): two Pythons whose documents
differ are two experiments, and the identity enters records and the config hash.
"""

from __future__ import annotations

import hashlib
import platform
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import torch

CODE_MODULES = (
    "argparse.py", "ast.py", "calendar.py", "csv.py", "dataclasses.py", "difflib.py", "fractions.py",
    "functools.py", "heapq.py", "json/decoder.py", "json/encoder.py", "pprint.py", "random.py", "shutil.py",
    "statistics.py", "string.py", "textwrap.py", "tokenize.py",
)
SPLITS = ("train", "val", "test")
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)


def english_bytes() -> bytes:
    """Python's bundled documentation topics, in sorted order, separated by blank lines."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[name] for name in sorted(topics)).encode()


def code_bytes(stdlib: str | None = None) -> bytes:
    """The modules of :data:`CODE_MODULES` from the interpreter's standard library, one after another."""
    root = Path(stdlib or sysconfig.get_paths()["stdlib"])
    missing = [name for name in CODE_MODULES if not (root / name).is_file()]
    if missing:
        raise FileNotFoundError(f"the standard library at {root} lacks {', '.join(missing)}")
    return b"\n\n".join((root / name).read_bytes() for name in CODE_MODULES)


@dataclass(frozen=True)
class Corpus:
    """One corpus as a byte tensor, where it came from and its sha256."""

    source: str
    data: torch.Tensor  # (N,) uint8
    sha256: str

    @classmethod
    def from_bytes(cls, source: str, raw: bytes) -> Corpus:
        data = torch.frombuffer(bytearray(raw), dtype=torch.uint8)
        return cls(source, data, hashlib.sha256(raw).hexdigest())

    @property
    def identity(self) -> dict[str, str | int]:
        return {"source": self.source, "sha256": self.sha256, "bytes": len(self.data)}

    def spans(self) -> dict[str, torch.Tensor]:
        """Train, validation and test: disjoint contiguous views, in order, by :data:`SPLIT_FRACTIONS`."""
        n = len(self.data)
        cuts = [0, int(SPLIT_FRACTIONS[0] * n), int((SPLIT_FRACTIONS[0] + SPLIT_FRACTIONS[1]) * n), n]
        return {name: self.data[lo:hi] for name, lo, hi in zip(SPLITS, cuts, cuts[1:])}


def load(which: str, path: str | Path | None = None) -> Corpus:
    """The base (``"english"``) or shifted (``"code"``) corpus, or a user's file in its place."""
    if path is not None:
        return Corpus.from_bytes(str(path), Path(path).read_bytes())
    if which == "english":
        return Corpus.from_bytes("pydoc_data.topics", english_bytes())
    if which == "code":
        return Corpus.from_bytes("stdlib:" + ",".join(CODE_MODULES), code_bytes())
    raise ValueError(f"unknown corpus {which!r}; choose english or code")


def identity(base: Corpus, shifted: Corpus) -> dict[str, object]:
    """What a record and the config hash know of the text: both corpora and the Python version."""
    return {"base": base.identity, "shifted": shifted.identity, "python": platform.python_version()}


def windows(span: torch.Tensor, starts: torch.Tensor, context: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and next-byte targets of the windows at ``starts``: two (n, context) int64 tensors."""
    offsets = (starts[:, None] + torch.arange(context + 1)).to(span.device)
    if len(starts) and int(offsets.max()) >= len(span):
        raise ValueError(f"a window of {context + 1} bytes at {int(starts.max())} crosses the span's end ({len(span)})")
    chunk = span[offsets].long()  # (n, context + 1)
    return chunk[:, :-1], chunk[:, 1:]


def random_windows(
    span: torch.Tensor, batch: int, context: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """A training batch: ``batch`` windows at uniform random starts inside ``span``."""
    starts = torch.randint(len(span) - context, (batch,), generator=generator)
    return windows(span, starts, context)


def fixed_windows(span: torch.Tensor, count: int, context: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` held-out windows, their starts spread evenly from the span's first to its last
    possible one (no generator: every run evaluates on the same bytes)."""
    last = len(span) - context - 1
    if last < 0:
        raise ValueError(f"a span of {len(span)} bytes holds no window of {context + 1}")
    starts = torch.linspace(0, last, count, dtype=torch.float64).round().long()
    return windows(span, starts, context)
