"""The ``gpt`` testbed: a tiny byte-level GPT pretrained on English, adapted to Python source.

The learning-versus-forgetting setting of Biderman et al. 2024 ("LoRA Learns Less and Forgets
Less": continued training on code, forgetting measured on general English) in miniature, on text
every Python installation carries (:mod:`nfl.testbeds.corpus`) and a model in one file
(:mod:`nfl.testbeds.gpt_model`). Training batches are random windows of the train span drawn from a
run's own stream; validation and test are fixed windows, the same for every run, evaluated every
``eval_every`` steps (an evaluation of 2 x 64 windows costs about two training steps).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from nfl.config import ExperimentConfig, GPTSettings
from nfl.testbeds import corpus
from nfl.testbeds.gpt_model import GPT, GPTConfig, bits_per_byte, make_gpt, target_pattern

if TYPE_CHECKING:
    from nfl.training import Batches

NAME = "gpt"
METRIC = "bits/byte"
REFERENCE = "unigram entropy"  # what a model that ignores context scores
CACHE_PRETRAINING = True  # tens of seconds: paid once per (config, seed) under --out
# The loss minimised is the metric itself: cross-entropy in bits, nats / ln 2 (the same minimiser; Adam's
# steps do not depend on the loss's scale), so that every history and selection reads in bits/byte.
loss_fn = bits_per_byte
# λ_max's relative tolerance: a Hessian-vector product costs ~35 ms here (one thread) and at 1e-6 LoRA's took
# 250 of them; at 1e-3, 98, and λ_max moved by 0.1% (LoRA, full fine-tuning) to 0.5% (VeRA) from 1e-6's.
SHARPNESS_TOL = 1e-3


def model_config(settings: GPTSettings) -> GPTConfig:
    return GPTConfig(n_layer=settings.n_layer, n_head=settings.n_head, d_model=settings.d_model,
                     context=settings.context)


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
        window = settings.context + 1
        for name, span in spans.items():
            if len(span) < window:
                needed = math.ceil(window / min(corpus.SPLIT_FRACTIONS))
                raise ValueError(f"{text.source}: its {name} span of {len(span)} bytes holds no window of {window} "
                                 f"(the corpus needs at least {needed} bytes)")
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


def load_corpora(settings: GPTSettings) -> tuple[corpus.Corpus, corpus.Corpus]:
    """The base and shifted corpora: the user's files where given, else Python's own."""
    return corpus.load("english", settings.corpus_base), corpus.load("code", settings.corpus_shift)


def resolve(cfg: ExperimentConfig) -> ExperimentConfig:
    """``cfg`` with the corpora's identity (sha256 of each, the Python version) in its gpt settings, so
    that it enters the config hash and every record: other text, another experiment. A corpus that cannot
    be read, or is too small for the windows, is a ValueError naming its flag."""
    texts = []
    for flag, which, path in (("--corpus-base", "english", cfg.gpt.corpus_base),
                              ("--corpus-shift", "code", cfg.gpt.corpus_shift)):
        try:
            texts.append(corpus.load(which, path))
            TextTask.from_corpus(texts[-1], cfg.gpt)
        except OSError as error:
            raise ValueError(f"{flag}: {error.strerror}: {path}") from None
        except ValueError as error:
            raise ValueError(f"{flag}: {error}") from None
    identity = json.dumps(corpus.identity(*texts), sort_keys=True)
    return dataclasses.replace(cfg, gpt=dataclasses.replace(cfg.gpt, identity=identity))


def make_data(cfg: ExperimentConfig, seed: int) -> TextData:
    """Both corpora, split and windowed, on the CPU. The text is the same for every seed: a run's
    seed draws its training windows instead (:func:`batches`)."""
    base, shifted = load_corpora(cfg.gpt)
    return TextData(TextTask.from_corpus(base, cfg.gpt), TextTask.from_corpus(shifted, cfg.gpt),
                    corpus.identity(base, shifted))


def make_model(cfg: ExperimentConfig, model_seed: int) -> nn.Module:
    return make_gpt(model_config(cfg.gpt), torch.Generator().manual_seed(model_seed))


def meta_model(cfg: ExperimentConfig) -> nn.Module:
    """The model's structure without its numbers (on the meta device): to read its layers' shapes."""
    with torch.device("meta"):
        return GPT(model_config(cfg.gpt))


def target_modules(cfg: ExperimentConfig) -> re.Pattern[str]:
    return target_pattern(cfg.targets)


def reference(task: TextTask) -> float:
    return task.unigram_bits


def batches(cfg: ExperimentConfig, task: TextTask, generator: torch.Generator, pretraining: bool) -> Batches:
    """Each step's minibatch: random windows of the train span, drawn from ``generator`` (a run's own)."""
    size = cfg.gpt.pretrain_batch if pretraining else cfg.gpt.batch
    return lambda step: task.batch(size, cfg.gpt.context, generator)


def eval_every(cfg: ExperimentConfig) -> int:
    return cfg.gpt.eval_every


def example_batch(cfg: ExperimentConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Random bytes shaped like one adaptation step's windows, for estimates of a step's time."""
    shape = (cfg.gpt.batch, cfg.gpt.context)
    return torch.randint(256, shape), torch.randint(256, shape)
