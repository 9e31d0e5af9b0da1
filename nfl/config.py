"""Every setting of an experiment, as dataclasses with help text; the two presets; CLI flags.

Each default lives in exactly one place (a field here or a preset below). Studies generate their
command-line flags from these fields with :func:`add_config_arguments`, so a flag's default is
whatever the chosen preset says.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

SEED_MAX = 2**63 - 1  # the largest seed both torch and numpy take
TaskKind = Literal["fourier_sine", "elementwise_sine"]
Shift = Literal["out_of_span", "in_span", "mix"]
Testbed = Literal["mlp", "gpt"]
# The Linear layers an adapter wraps, per testbed (the first is each testbed's name for "every one").
TESTBED_TARGETS = {"mlp": ("all", "layer1", "layer2"), "gpt": ("all", "attn", "mlp")}


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _require_finite(config: Any) -> None:
    """Every float setting is finite: nan or inf would only fail deep inside training."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        _require(not isinstance(value, float) or math.isfinite(value), f"{f.name} must be a finite number, got {value}")


def _require_seed(name: str, value: int) -> None:
    _require(0 <= value <= SEED_MAX, f"{name} must be an integer in 0 ... {SEED_MAX}, got {value}")


def config_digest(data: dict[str, Any]) -> str:
    """The short stable hash of a config's dict, as stored in a record's ``config_hash``.

    The adaptation learning rates are left out: they choose which cells run, and each quality cell
    carries its own lr, so widening the grid reuses the runs already made."""
    train = {k: v for k, v in data.get("train", {}).items() if k not in ("lr_grid", "adapt_lr")}
    if data.get("testbed", "mlp") == "mlp":  # the MLP's hashes as before the testbeds: its stores stay valid
        data = {k: v for k, v in data.items() if k not in ("testbed", "gpt")}
    if not data.get("hparams"):  # and every store's hash as before --hparams, when it sets none
        data = {k: v for k, v in data.items() if k != "hparams"}
    return hashlib.sha256(json.dumps({**data, "train": train}, sort_keys=True).encode()).hexdigest()[:12]


def method_hparams(spec: str) -> dict[str, dict[str, Any]]:
    """``METHOD.NAME=VALUE[,...]`` -> {method: {name: value}}; a value is read as a Python literal
    (2, 0.5, True) or else kept as text. Whether the method has that hyper-parameter is checked
    where methods are known (studies.common)."""
    out: dict[str, dict[str, Any]] = {}
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        name, equals, text = item.partition("=")
        method, dot, hparam = name.strip().partition(".")
        _require(bool(equals and dot and method and hparam and text.strip()),
                 f"hparams takes METHOD.NAME=VALUE[,...], got {item!r}")
        try:
            value = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            value = text.strip()
        _require(hparam not in out.get(method, {}), f"hparams sets {method}.{hparam} twice")
        out.setdefault(method, {})[hparam] = value
    return out


def _field(default: Any, help: str, **kwargs: Any) -> Any:
    return field(default=default, metadata={"help": help, **kwargs})


@dataclass(frozen=True)
class TaskConfig:
    """The base task, its shift, and how many samples are drawn."""

    kind: TaskKind = _field(
        "fourier_sine",
        "fourier_sine: a scalar t through a fixed random Fourier encoding (well-posed); "
        "elementwise_sine: y = sin(2*pi*x) per coordinate of x ~ U[-1,1]^width (the paper's)",
        choices=("fourier_sine", "elementwise_sine"),
    )
    n_train: int = _field(50, "training samples (noisy targets)")
    n_val: int = _field(100, "validation samples (noise-free targets; they select learning rates and steps)")
    n_test: int | None = _field(
        None, "test samples (noise-free, held out: every reported loss); default the validation size", type=int
    )
    noise_std: float = _field(0.05, "std of the Gaussian noise added to training targets")
    base_frequency: float = _field(2.0, "base target sin(base_frequency * pi * u + phase)")
    shift_amplitude: float = _field(0.3, "the shift adds shift_amplitude * cos(shift_frequency * pi * u + phase)")
    shift_frequency: float = _field(3.0, "frequency (in units of pi) of the added cosine")
    shift: Shift = _field(
        "out_of_span",
        "out_of_span: add the cosine of a new frequency (the paper's shift); in_span: change the amplitude "
        "and phase of the learnt sine (shift_gain, shift_phase), an update inside what the model already "
        "represents; mix: both, out_of_span carrying shift_mix of the shift's energy",
        choices=("out_of_span", "in_span", "mix"),
    )
    shift_gain: float = _field(
        1.2, "in_span: the learnt sine becomes shift_gain * sin(... + shift_phase) (1.2 with phase 0.2 moves "
        "the targets about as far as the default out_of_span shift)"
    )
    shift_phase: float = _field(0.2, "in_span: phase (radians) added to the learnt sine")
    shift_mix: float = _field(0.5, "mix: share of the shift's energy that is out_of_span (0: in_span, 1: out_of_span)")
    encoding_scale: float = _field(
        3.0, "fourier_sine: std of the random frequencies omega_j ~ N(0, scale^2) of the encoding"
    )
    task_seed: int | None = _field(
        None, "fourier_sine: seed of the task function itself (its encoding and phases); unset: each run seed "
        "draws its own task, so a verdict over seeds is about the task family", type=int
    )

    @property
    def test_size(self) -> int:
        return self.n_val if self.n_test is None else self.n_test

    def __post_init__(self) -> None:
        _require_finite(self)
        if self.task_seed is not None:
            _require_seed("task_seed", self.task_seed)
        _require(self.n_train >= 1, f"n_train must be >= 1, got {self.n_train}")
        _require(self.n_val >= 1, f"n_val must be >= 1, got {self.n_val}")
        _require(self.n_test is None or self.n_test >= 1, f"n_test must be >= 1, got {self.n_test}")
        _require(self.noise_std >= 0, f"noise_std must be >= 0, got {self.noise_std}")
        _require(0 <= self.shift_mix <= 1, f"shift_mix must be in [0, 1], got {self.shift_mix}")


@dataclass(frozen=True)
class ModelConfig:
    """The MLP: Linear(width -> width) . ReLU . Linear(width -> width)."""

    width: int = _field(64, "input, hidden and output size of the MLP")

    def __post_init__(self) -> None:
        _require(self.width >= 1, f"width must be a positive integer, got {self.width}")


@dataclass(frozen=True)
class GPTSettings:
    """The gpt testbed: a byte-level GPT pretrained on English, adapted to Python source
    (nfl.testbeds.gpt); its steps and learning rates are the train settings."""

    d_model: int = _field(64, "gpt: width of the residual stream")
    n_layer: int = _field(2, "gpt: transformer blocks")
    n_head: int = _field(4, "gpt: attention heads (must divide d_model)")
    context: int = _field(64, "gpt: bytes in a window (the model's context)")
    corpus_base: str | None = _field(
        None, "gpt: a text file to pretrain on instead of Python's documentation (pydoc_data.topics)", type=str,
        metavar="FILE",
    )
    corpus_shift: str | None = _field(
        None, "gpt: a text file to adapt to instead of standard-library source", type=str, metavar="FILE"
    )
    pretrain_batch: int = _field(32, "gpt: windows in a pretraining step")
    batch: int = _field(16, "gpt: windows in an adaptation step")
    eval_windows: int = _field(64, "gpt: fixed windows in each of the validation and test sets")
    eval_every: int = _field(10, "gpt: steps between two evaluations (validation selects among them)")
    identity: str = _field("", "the corpora's sha256 and the Python version, filled in when the text is read",
                           cli=False)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.type == "int":
                _require(isinstance(value, int) and value >= 1, f"{f.name} must be an integer >= 1, got {value!r}")
        _require(self.d_model % self.n_head == 0, f"n_head must divide d_model, got {self.n_head} and {self.d_model}")


def log_grid(lo: float, hi: float, n: int) -> tuple[float, ...]:
    """``n`` log-spaced values from ``lo`` to ``hi``, both exactly; the points between rounded to 3
    significant digits (more where 3 would make two points equal)."""
    _require(math.isfinite(lo) and lo > 0, f"lo:hi:n needs a learning rate lo > 0, got lo = {lo:g}")
    _require(math.isfinite(hi) and hi >= lo, f"lo:hi:n runs from the smaller to the larger, got {lo:g}:{hi:g}")
    _require(n >= 1, f"lo:hi:n needs n >= 1 points, got n = {n}")
    _require(
        (n == 1) == (lo == hi), f"lo:hi:n with n = {n} needs {'lo == hi' if n == 1 else 'lo < hi'}, got {lo:g}:{hi:g}"
    )
    values = np.geomspace(lo, hi, n)
    step = (hi / lo) ** (1 / max(n - 1, 1)) - 1  # relative gap between neighbours: fewer digits cannot tell them apart
    for digits in range(max(3, math.ceil(-math.log10(step)) + 1 if step > 0 else 3), 18):
        grid = (lo, *(float(f"{v:.{digits}g}") for v in values[1:-1]), hi)[:n]
        if len(set(grid)) == n:
            break
    return grid


def parse_lr_grid(text: str) -> tuple[float, ...]:
    """``'1e-3,1e-2'`` (a comma list) or ``'1e-4:1e-1:7'`` (lo:hi:n, log-spaced); a ValueError says what
    is wrong in the flag's own terms (an empty or repeated item, a part that is not a number)."""
    if ":" in text:
        parts = [part.strip() for part in text.split(":")]
        _require(len(parts) == 3 and all(parts), f"takes lo:hi:n (three numbers, e.g. 1e-4:1e-1:7), got {text!r}")
        try:
            lo, hi = float(parts[0]), float(parts[1])
        except ValueError:
            raise ValueError(f"lo and hi of lo:hi:n must be numbers, got {text!r}") from None
        _require(parts[2].isdigit(), f"n of lo:hi:n must be a whole number of points, got {parts[2]!r}")
        return log_grid(lo, hi, int(parts[2]))
    items = [item.strip() for item in text.split(",")]
    _require(any(items), f"names no learning rate: {text!r}")
    _require("" not in items, f"empty learning rate in {text!r}")
    try:
        grid = tuple(float(item) for item in items)
    except ValueError:
        raise ValueError(f"takes comma-separated learning rates or lo:hi:n, got {text!r}") from None
    repeated = sorted({lr for i, lr in enumerate(grid) if lr in grid[:i]})
    _require(not repeated, f"learning rate {', '.join(f'{lr:g}' for lr in repeated)} given twice in {text!r}")
    _require(all(math.isfinite(lr) and lr > 0 for lr in grid), f"learning rates must be finite and > 0, got {text!r}")
    return grid


def format_lr_grid(grid: tuple[float, ...]) -> str:
    return ",".join(f"{lr:g}" for lr in grid)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation: Adam, full batch, one step per epoch."""

    lr: float = _field(1e-3, "Adam learning rate for pretraining (and adaptation, unless adapt_lr is set)")
    adapt_lr: float | None = _field(None, "Adam learning rate for adaptation, if not lr", type=float)
    pretrain_epochs: int = _field(250, "full-batch Adam steps on the base task")
    adapt_epochs: int = _field(100, "full-batch Adam steps on the shifted task")
    lr_grid: tuple[float, ...] | None = _field(
        None,
        "adaptation learning rates each (method, rank) is tuned over, chosen by mean validation loss over "
        "seeds (comma list or lo:hi:n, log-spaced); unset: the one adaptation lr",
        type=parse_lr_grid, format=format_lr_grid, metavar="GRID",
    )

    def __post_init__(self) -> None:
        _require_finite(self)
        if self.lr_grid is not None:  # from JSON, a list
            object.__setattr__(self, "lr_grid", tuple(float(lr) for lr in self.lr_grid))
            _require(
                bool(self.lr_grid) and all(math.isfinite(lr) and lr > 0 for lr in self.lr_grid),
                f"lr_grid needs finite learning rates > 0, got {self.lr_grid}",
            )
        _require(self.lr > 0, f"lr must be > 0, got {self.lr}")
        _require(self.adapt_lr is None or self.adapt_lr > 0, f"adapt_lr must be > 0, got {self.adapt_lr}")
        _require(self.pretrain_epochs >= 0, f"pretrain_epochs must be >= 0, got {self.pretrain_epochs}")
        _require(self.adapt_epochs >= 1, f"adapt_epochs must be >= 1, got {self.adapt_epochs}")

    @property
    def adaptation_lr(self) -> float:
        return self.lr if self.adapt_lr is None else self.adapt_lr

    @property
    def adaptation_lrs(self) -> tuple[float, ...]:
        """The learning rates a (method, rank) is adapted at: the grid, or the one adaptation lr."""
        return self.adaptation_lr_grid if self.lr_grid is not None else (self.adaptation_lr,)

    @property
    def adaptation_lr_grid(self) -> tuple[float, ...]:
        return tuple(sorted(set(self.lr_grid or ())))


@dataclass(frozen=True)
class ExperimentConfig:
    """One experiment: pretrain on the base task, shift it, adapt with a method."""

    preset: str = _field("default", "the preset these settings started from", cli=False)
    seed: int = _field(43, "first seed; a study with --seeds N uses seed, seed+1, ..., seed+N-1")
    testbed: Testbed = _field(
        "mlp", "mlp: the MLP fitting a shifted sine (the paper's experiment); gpt: a byte-level GPT pretrained on "
        "English and adapted to Python code, with its own defaults (1,000 pretraining and 150 adaptation steps, "
        "pretraining lr 3e-3)", choices=("mlp", "gpt"),
    )
    task: TaskConfig = field(default_factory=TaskConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    gpt: GPTSettings = field(default_factory=GPTSettings)
    train: TrainConfig = field(default_factory=TrainConfig)
    targets: str = _field(
        "layer1", "which Linear layers an adapter wraps: layer1, layer2 or all (mlp); attn, mlp or all (gpt)",
        choices=tuple(dict.fromkeys(t for names in TESTBED_TARGETS.values() for t in names)),
    )
    train_unadapted_layers: bool = _field(
        False,
        "also train the Linear layers no adapter wraps (the paper's code did this; off keeps "
        "each adapter alone)",
    )
    hparams: str = _field(
        "", "adapter hyper-parameters other than the defaults, METHOD.NAME=VALUE[,...] (e.g. lora.alpha=2: "
        "LoRA's scale alpha / r with alpha fixed instead of alpha = r); an unknown name is refused with the "
        "list the method takes",
        metavar="SPEC",
    )

    def __post_init__(self) -> None:
        _require_seed("seed", self.seed)
        testbeds = ", ".join(TESTBED_TARGETS)
        _require(self.testbed in TESTBED_TARGETS, f"testbed must be one of {testbeds}, got {self.testbed!r}")
        choices = TESTBED_TARGETS[self.testbed]
        _require(self.targets in choices,
                 f"targets must be one of {', '.join(choices)} on testbed {self.testbed}, got {self.targets!r}")
        method_hparams(self.hparams)  # a malformed spec fails here, before any work
        if self.testbed == "gpt":
            every = self.gpt.eval_every
            for name in ("pretrain_epochs", "adapt_epochs"):
                steps = getattr(self.train, name)
                _require(steps % every == 0, f"eval_every must divide {name} = {steps}, got {every}")

    def hparams_of(self, method: str) -> dict[str, Any]:
        """The hyper-parameters ``--hparams`` sets for ``method`` (none: its defaults)."""
        return method_hparams(self.hparams).get(method, {})

    @property
    def width(self) -> int:
        """The width of the adapted model: the MLP's, or the GPT's residual stream."""
        return self.gpt.d_model if self.testbed == "gpt" else self.model.width

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def digest(self) -> str:
        """A short stable hash of every setting, to recognise records made with the same config
        (see :func:`config_digest`)."""
        return config_digest(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExperimentConfig:
        return cls(
            **{
                **data,
                "task": TaskConfig(**data["task"]),
                "model": ModelConfig(**data["model"]),
                "gpt": GPTSettings(**data.get("gpt", {})),  # records made before the gpt testbed lack it
                "train": TrainConfig(**data["train"]),
            }
        )


PRESETS: dict[str, ExperimentConfig] = {
    # Appendix C of the MiSS paper, exactly. Degenerate: see docs/design.md; the pipeline warns.
    "paper": ExperimentConfig(preset="paper", task=TaskConfig(kind="elementwise_sine")),
    # The same experiment on a task the MLP can learn from 50 samples, every Linear adapted and each
    # method at its own learning rate from a half-decade grid (docs/design.md, the comparison protocol).
    "default": ExperimentConfig(
        preset="default", targets="all", train=TrainConfig(lr_grid=log_grid(1e-4, 1e-1, 7))
    ),
}


# The gpt testbed's one preset: 1,000 pretraining steps at lr 3e-3 reach 2.1 bits/byte on held-out English
# (the unigram entropy is 4.7); 150 adaptation steps take full fine-tuning from 3.2 to 2.6 bits/byte on code.
TESTBED_PRESETS: dict[str, dict[str, ExperimentConfig]] = {
    "gpt": {
        "default": ExperimentConfig(
            preset="default", testbed="gpt", targets="all",
            train=TrainConfig(lr=3e-3, pretrain_epochs=1000, adapt_epochs=150, lr_grid=log_grid(1e-4, 1e-1, 7)),
        )
    }
}


def preset(name: str, testbed: str = "mlp") -> ExperimentConfig:
    """The named preset of ``testbed``; a ValueError lists the valid names."""
    presets = PRESETS if testbed == "mlp" else TESTBED_PRESETS.get(testbed)
    if presets is None:
        raise ValueError(f"unknown testbed {testbed!r}; choose one of: mlp, {', '.join(TESTBED_PRESETS)}")
    if name not in presets:
        raise ValueError(f"unknown preset {name!r} for testbed {testbed}; choose one of: {', '.join(presets)}")
    return presets[name]


# --- command-line flags generated from the fields -------------------------------------------

_SECTIONS = {"task": TaskConfig, "model": ModelConfig, "gpt": GPTSettings, "train": TrainConfig}


def _cli_fields() -> list[tuple[str | None, dataclasses.Field]]:
    """(section or None, field) for every setting that gets a flag."""
    out: list[tuple[str | None, dataclasses.Field]] = []
    for f in dataclasses.fields(ExperimentConfig):
        if f.name in _SECTIONS:
            out += [(f.name, sub) for sub in dataclasses.fields(_SECTIONS[f.name]) if sub.metadata.get("cli", True)]
        elif f.metadata.get("cli", True):
            out.append((None, f))
    return out


def _said(convert: Any) -> Any:
    """A flag's converter whose ValueError argparse prints as it is (not "invalid <function> value")."""
    if convert is None or convert in (int, float):
        return convert

    def converted(text: str) -> Any:
        try:
            return convert(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    converted.__name__ = convert.__name__
    return converted


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """Add --preset and one flag per setting; unset flags keep the preset's value."""
    group = parser.add_argument_group("experiment settings (defaults: the chosen preset's)")
    group.add_argument("--preset", default="default", choices=sorted(PRESETS), help="starting settings")
    reference = PRESETS["default"]
    for section, f in _cli_fields():
        shown = getattr(getattr(reference, section), f.name) if section else getattr(reference, f.name)
        flag = "--" + f.name.replace("_", "-")
        kwargs: dict[str, Any] = {"default": None, "dest": f"cfg_{f.name}"}
        if f.type in ("bool", bool):
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = _said(f.metadata.get("type")) or {"int": int, "float": float}.get(str(f.type), str)
            if "choices" in f.metadata:
                kwargs["choices"] = f.metadata["choices"]
            else:
                kwargs["metavar"] = f.metadata.get("metavar", f.name.upper())
        if shown is not None and "format" in f.metadata:
            shown = f.metadata["format"](shown)
        group.add_argument(flag, help=f"{f.metadata['help']} (default preset: {shown})", **kwargs)


def config_from_args(args: argparse.Namespace) -> ExperimentConfig:
    """The preset named by --preset with every flag the user set applied on top."""
    cfg = preset(args.preset, getattr(args, "cfg_testbed", None) or "mlp")
    overrides: dict[str | None, dict[str, Any]] = {}
    for section, f in _cli_fields():
        value = getattr(args, f"cfg_{f.name}", None)
        if value is not None:
            overrides.setdefault(section, {})[f.name] = value
    train = overrides.get("train", {})
    if "adapt_lr" in train:  # one fixed adaptation lr: a one-point grid
        _require("lr_grid" not in train, "give --adapt-lr (one learning rate) or --lr-grid, not both")
        train["lr_grid"] = None
    for section, values in overrides.items():
        if section is None:
            cfg = dataclasses.replace(cfg, **values)
        else:
            cfg = dataclasses.replace(cfg, **{section: dataclasses.replace(getattr(cfg, section), **values)})
    return cfg


def config_to_argv(cfg: ExperimentConfig, skip: set[str] = frozenset()) -> list[str]:
    """Flags that rebuild ``cfg``: its preset, then every setting that differs from the preset's."""
    reference = preset(cfg.preset, cfg.testbed)
    argv = ["--preset", cfg.preset] + ([] if cfg.testbed == "mlp" else ["--testbed", cfg.testbed])
    for section, f in _cli_fields():
        if f.name in skip:
            continue
        value, default = (
            getattr(getattr(c, section), f.name) if section else getattr(c, f.name) for c in (cfg, reference)
        )
        if value == default or value is None:  # None differs from a preset's grid only by --adapt-lr
            continue
        flag = "--" + f.name.replace("_", "-")
        if isinstance(value, bool):
            argv.append(flag if value else "--no-" + flag[2:])
        else:
            argv += [flag, f.metadata.get("format", str)(value)]
    return argv
