"""Target functions and seeded dataset generation.

Two tasks, both "fit a sine, then the sine shifts":

* ``elementwise_sine`` (the MiSS paper, Appendix C): x ~ U[-1, 1]^width, y = sin(2 pi x) per
  coordinate; the shift adds 0.3 cos(3 pi x). With 50 samples this cannot be learnt (docs/design.md).
* ``fourier_sine`` (nfl's well-posed default): a scalar t ~ U[-1, 1] enters through a fixed random
  Fourier encoding x_j = cos(omega_j t + beta_j); the targets are width phase-shifted sines
  y_j = sin(2 pi t + phi_j), and the shift adds 0.3 cos(3 pi t + psi_j).

Shift families (``TaskConfig.shift``): ``out_of_span`` is the shift above (a frequency the model
never learnt); ``in_span`` turns the learnt sine into 1.2 sin(... + 0.2), a change of amplitude and
phase that the pretrained output layer already spans; ``mix`` adds both.

The same seed gives bit-identical data; base and shifted data are drawn independently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from nfl import seeds
from nfl.config import TaskConfig


@dataclass(frozen=True)
class Dataset:
    """Training (noisy), validation (noise-free, selects) and test (noise-free, held out, reports)
    samples of one target function."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    @property
    def zero_loss(self) -> float:
        """Validation MSE of the predictor that always outputs 0: the bar a model must clear."""
        return float(self.y_val.pow(2).mean())

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> Dataset:
        tensors = (self.x_train, self.y_train, self.x_val, self.y_val, self.x_test, self.y_test)
        return Dataset(*(t.to(device=device, dtype=dtype) for t in tensors))


@dataclass(frozen=True)
class TaskData:
    """The base task (pretraining) and the shifted task (adaptation), drawn independently."""

    base: Dataset
    shifted: Dataset

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> TaskData:
        return TaskData(self.base.to(device, dtype), self.shifted.to(device, dtype))


class _Task:
    """Maps a latent sample u to the MLP input x and to the base or shifted target."""

    def __init__(self, cfg: TaskConfig, width: int, task_seed: int):
        self.cfg = cfg
        self.width = width
        if cfg.kind == "fourier_sine":
            g = torch.Generator().manual_seed(task_seed)
            self.omega = torch.randn(width, generator=g, dtype=torch.float64) * cfg.encoding_scale
            self.beta = torch.rand(width, generator=g, dtype=torch.float64) * 2 * math.pi
            self.phi = torch.rand(width, generator=g, dtype=torch.float64) * 2 * math.pi
            self.psi = torch.rand(width, generator=g, dtype=torch.float64) * 2 * math.pi
        elif cfg.kind == "elementwise_sine":
            self.phi = self.psi = torch.zeros(width, dtype=torch.float64)
        else:
            raise ValueError(f"unknown task kind {cfg.kind!r}; choose fourier_sine or elementwise_sine")

    def sample_latent(self, n: int, generator: torch.Generator) -> torch.Tensor:
        cols = 1 if self.cfg.kind == "fourier_sine" else self.width
        return torch.rand(n, cols, generator=generator, dtype=torch.float64) * 2 - 1

    def inputs(self, u: torch.Tensor) -> torch.Tensor:
        if self.cfg.kind == "fourier_sine":
            return torch.cos(u * self.omega + self.beta)
        return u

    def targets(self, u: torch.Tensor, shifted: bool) -> torch.Tensor:
        """The base sine, or it shifted by ``cfg.shift``: out_of_span adds a new frequency, in_span
        rescales and rephases the learnt sine, mix adds both with energy shares shift_mix, 1 - shift_mix
        (the two parts are orthogonal over a period, so the shares add up)."""
        c = self.cfg
        y = torch.sin(c.base_frequency * math.pi * u + self.phi)
        if not shifted:
            return y
        out_of_span = c.shift_amplitude * torch.cos(c.shift_frequency * math.pi * u + self.psi)
        if c.shift == "out_of_span":
            return y + out_of_span
        in_span = c.shift_gain * torch.sin(c.base_frequency * math.pi * u + self.phi + c.shift_phase) - y
        if c.shift == "in_span":
            return y + in_span
        if c.shift == "mix":
            return y + math.sqrt(c.shift_mix) * out_of_span + math.sqrt(1 - c.shift_mix) * in_span
        raise ValueError(f"unknown shift {c.shift!r}; choose out_of_span, in_span or mix")

    def dataset(self, shifted: bool, generator: torch.Generator) -> Dataset:
        u_train = self.sample_latent(self.cfg.n_train, generator)
        u_val = self.sample_latent(self.cfg.n_val, generator)
        y_train = self.targets(u_train, shifted)
        y_train = y_train + self.cfg.noise_std * torch.randn(y_train.shape, generator=generator, dtype=torch.float64)
        # Drawn last, so adding the test split left the train and validation samples as they were.
        u_test = self.sample_latent(self.cfg.test_size, generator)
        return Dataset(
            self.inputs(u_train), y_train, self.inputs(u_val), self.targets(u_val, shifted),
            self.inputs(u_test), self.targets(u_test, shifted),
        )


def make_task_data(cfg: TaskConfig, width: int, seed: int, dtype: torch.dtype = torch.float32) -> TaskData:
    """Base and shifted datasets for run ``seed`` (its task stream), on the CPU (move them with ``.to``)."""
    task = _Task(cfg, width, seeds.task_function_seed(cfg.task_seed, seed))
    generator = seeds.generator(seed, "task")
    base = task.dataset(shifted=False, generator=generator)
    shifted = task.dataset(shifted=True, generator=generator)
    return TaskData(base, shifted).to("cpu", dtype)
