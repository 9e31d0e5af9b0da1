"""The ``mlp`` testbed: Linear . ReLU . Linear fitting a sine, then the sine shifted (nfl.tasks,
nfl.model): full-batch training on 50 samples, mean squared error, evaluated after every step."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from nfl.config import ExperimentConfig
from nfl.model import MLP, make_mlp, target_layer_names
from nfl.tasks import Dataset, TaskData, make_task_data

if TYPE_CHECKING:
    from nfl.training import Batches

NAME = "mlp"
METRIC = "MSE"
REFERENCE = "zero predictor"  # what a model that learnt nothing scores
CACHE_PRETRAINING = False  # a fraction of a second: not worth a file
loss_fn = F.mse_loss
SHARPNESS_TOL = 1e-6  # λ_max's relative tolerance (nfl.sharpness's default: a product costs ~1 ms here)


def make_data(cfg: ExperimentConfig, seed: int) -> TaskData:
    """Run ``seed``'s samples of the base and the shifted task, on the CPU."""
    return make_task_data(cfg.task, cfg.model.width, seed)


def make_model(cfg: ExperimentConfig, model_seed: int) -> nn.Module:
    return make_mlp(cfg.model, model_seed)


def meta_model(cfg: ExperimentConfig) -> nn.Module:
    """The model's structure without its numbers (on the meta device): to read its layers' shapes."""
    with torch.device("meta"):
        return MLP(cfg.model.width)


def target_modules(cfg: ExperimentConfig) -> list[str]:
    return target_layer_names(cfg.targets)


def reference(task: Dataset) -> float:
    return task.zero_loss


def batches(cfg: ExperimentConfig, task: Dataset, generator: torch.Generator, pretraining: bool) -> Batches | None:
    """None: every step trains on the whole training split."""
    return None


def eval_every(cfg: ExperimentConfig) -> int:
    return 1


def example_batch(cfg: ExperimentConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Random inputs and targets shaped like one training step's, for estimates of a step's time."""
    return torch.randn(cfg.task.n_train, cfg.model.width), torch.randn(cfg.task.n_train, cfg.model.width)


def resolve(cfg: ExperimentConfig) -> ExperimentConfig:
    """The config as records keep it: nothing to add for the MLP."""
    return cfg
