"""The ``gpt`` testbed: a tiny byte-level GPT pretrained on English, adapted to Python source.

The learning-versus-forgetting setting of Biderman et al. 2024 ("LoRA Learns Less and Forgets
Less": continued training on code, forgetting measured on general English) in miniature, on text
every Python installation carries (:mod:`nfl.testbeds.corpus`) and a model in one file
(:mod:`nfl.testbeds.gpt_model`). The loss is the next byte's cross-entropy (nats, what Adam sees);
the metric is the same in bits per byte. Training batches are random windows of the train span drawn
from a run's own stream; validation and test are fixed windows, the same for every run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from nfl.testbeds import corpus
from nfl.testbeds.gpt_model import GPTConfig

METRIC = "bits/byte"


def _setting(default, help: str, **kwargs):
    return field(default=default, metadata={"help": help, **kwargs})


@dataclass(frozen=True)
class GPTSettings:
    """The gpt testbed's model, text and batches (steps and learning rates are the run's TrainConfig)."""

    d_model: int = _setting(64, "gpt: width of the residual stream")
    n_layer: int = _setting(2, "gpt: transformer blocks")
    n_head: int = _setting(4, "gpt: attention heads (must divide d_model)")
    context: int = _setting(64, "gpt: bytes a window holds (the model's context)")
    corpus_base: str | None = _setting(None, "gpt: a text file to pretrain on instead of pydoc_data.topics", type=str,
                                       metavar="FILE")
    corpus_shift: str | None = _setting(None, "gpt: a text file to adapt to instead of the standard library's source",
                                        type=str, metavar="FILE")
    pretrain_batch: int = _setting(32, "gpt: windows per pretraining step")
    batch: int = _setting(16, "gpt: windows per adaptation step")
    eval_windows: int = _setting(64, "gpt: fixed windows in each validation and test set")
    eval_every: int = _setting(10, "gpt: adaptation steps between two evaluations (validation selects among them)")

    def __post_init__(self) -> None:
        for name in ("pretrain_batch", "batch", "eval_windows", "eval_every"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        self.model()  # its own checks: sizes >= 1, n_head divides d_model

    def model(self) -> GPTConfig:
        return GPTConfig(n_layer=self.n_layer, n_head=self.n_head, d_model=self.d_model, context=self.context)


def unigram_bits(span: torch.Tensor) -> float:
    """Entropy of the byte frequencies of ``span`` in bits: what a model that ignores context pays."""
    p = torch.bincount(span.long(), minlength=256).double() / len(span)
    p = p[p > 0]
    return float(-(p * p.log2()).sum())


@dataclass(frozen=True)
class TextTask:
    """One corpus as a task: the train span (random windows) and fixed validation and test windows."""

    train: torch.Tensor  # (N,) uint8: the train span
    x_val: torch.Tensor  # (eval_windows, context) int64, and the next bytes below
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    unigram_bits: float  # the reference a model must clear, as the MLP's zero predictor

    @classmethod
    def from_corpus(cls, text: corpus.Corpus, settings: GPTSettings) -> TextTask:
        spans = text.spans()
        for name, span in spans.items():
            if len(span) < settings.context + 1:
                raise ValueError(
                    f"{text.source}: its {name} span of {len(span)} bytes holds no window of {settings.context + 1} "
                    f"(the corpus needs at least {math.ceil((settings.context + 1) / min(corpus.SPLIT_FRACTIONS))} bytes)"
                )
        val = corpus.fixed_windows(spans["val"], settings.eval_windows, settings.context)
        test = corpus.fixed_windows(spans["test"], settings.eval_windows, settings.context)
        return cls(spans["train"], *val, *test, unigram_bits(spans["train"]))

    def batch(self, size: int, context: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """A training batch of ``size`` random windows from the train span, drawn from ``generator``."""
        return corpus.random_windows(self.train, size, context, generator)

    def to(self, device: torch.device | str) -> TextTask:
        moved = (t.to(device) for t in (self.train, self.x_val, self.y_val, self.x_test, self.y_test))
        return TextTask(*moved, self.unigram_bits)


@dataclass(frozen=True)
class TextData:
    """The base task (English) and the shifted task (code), and where their text came from."""

    base: TextTask
    shifted: TextTask
    identity: dict

    def to(self, device: torch.device | str) -> TextData:
        return TextData(self.base.to(device), self.shifted.to(device), self.identity)


def load_data(settings: GPTSettings) -> TextData:
    """Both corpora (the user's files where given), split and windowed; the same for every seed."""
    base = corpus.load("english", settings.corpus_base)
    shifted = corpus.load("code", settings.corpus_shift)
    return TextData(
        TextTask.from_corpus(base, settings), TextTask.from_corpus(shifted, settings), corpus.identity(base, shifted)
    )
