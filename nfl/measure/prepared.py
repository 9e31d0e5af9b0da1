"""What the studies time, prepared so that a timed call does only the work measured: a method's
initialisation, one optimisation step, and a quick estimate of a step for progress bars."""

from __future__ import annotations

import copy
import statistics
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

import adapters as registry
from adapters.base import Adapter
from adapters.step import LossFn
from adapters.step import step as adapter_step
from nfl import testbeds
from nfl.config import ExperimentConfig, TrainConfig
from nfl.measure.clocks import wall_seconds
from nfl.measure.devices import accelerator_for, measured_peak_bytes
from nfl.params import trainable_parameters
from nfl.tasks import Dataset


def prepared_init(
    method: str, layers: nn.Linear | Sequence[nn.Linear], rank: int | None, device: str | torch.device, *,
    seed: int = 0, **hparams: Any,
) -> Callable[[], Any]:
    """``adapters.registry.build_all(method, layers, rank)`` on ``device``, ready to be timed:
    everything the method does before its first step (argument checks, SVDs, random projections,
    shared state).

    The layers are copied to ``device`` once, here. Building never mutates the layers it wraps,
    so every timed call starts from the same fresh layers and needs no per-call setup.
    """
    fresh = [copy.deepcopy(layer).to(device) for layer in ([layers] if isinstance(layers, nn.Linear) else layers)]
    return lambda: registry.build_all(method, fresh, rank, seed=seed, **hparams)


def prepared_train_step(
    model: nn.Module, hooks: Sequence[Adapter], data: Dataset, lr: float, device: str | torch.device, *,
    step: int | None = None, total_steps: int | None = None, loss_fn: LossFn = F.mse_loss,
    batch: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> Callable[[], None]:
    """One full optimisation step on ``data`` (its training split, or ``batch``: a testbed's minibatch) with
    the testbed's ``loss_fn``, as the pipeline takes it, ready to be measured.

    Moves ``model`` and the data to ``device``, creates Adam over the trainable parameters and
    takes one step, so Adam's lazily created state exists before anything is measured. Every
    call trains ``model`` in place: pass a copy. ``total_steps`` defaults to the adaptation's
    epochs and ``step`` to its middle: under AdaLoRA's default schedule (budgeting from 10% to
    70% of training) that is a step which updates importance and masks ranks, its costliest kind.
    """
    model.to(device)
    x, y = (t.to(device) for t in ((data.x_train, data.y_train) if batch is None else batch))
    optimizer = torch.optim.Adam(trainable_parameters(model), lr=lr)
    total_steps = TrainConfig().adapt_epochs if total_steps is None else total_steps
    step = total_steps // 2 if step is None else step

    def one_step() -> None:
        adapter_step(model, optimizer, hooks, loss_fn, x, y, step, total_steps)

    one_step()
    return one_step


def train_step_peak_bytes(
    model: nn.Module, hooks: Sequence[Adapter], data: Dataset, lr: float, device: str | torch.device, *,
    step: int | None = None, total_steps: int | None = None, loss_fn: LossFn = F.mse_loss,
    batch: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> int | None:
    """Measured peak allocated memory of one optimisation step after warm-up (CUDA); None on
    the CPU, where torch has no allocator statistics to read (nothing is run there)."""
    if accelerator_for(device) is None:
        return None
    one_step = prepared_train_step(model, hooks, data, lr, device, step=step, total_steps=total_steps,
                                   loss_fn=loss_fn, batch=batch)
    return measured_peak_bytes(one_step, device)


def step_seconds(
    cfg: ExperimentConfig, device: torch.device, steps: int = 4, method: str | None = None, rank: int | None = None,
) -> float:
    """An estimate of an Adam step of the config's testbed model (with ``method`` at ``rank`` attached,
    if given) on a batch shaped like a training step's, on ``device``, for estimates and progress bars:
    the median wall time of ``steps`` steps, the first left out (Adam's lazy state)."""
    testbed = testbeds.get(cfg.testbed)
    model = testbed.make_model(cfg, 0).to(device)
    if method is not None:
        registry.attach(model, method, testbed.target_modules(cfg), rank=rank, seed=0, **cfg.hparams_of(method))
    x, y = (t.to(device) for t in testbed.example_batch(cfg))
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.train.lr)

    def step() -> None:
        optimizer.zero_grad()
        testbed.loss_fn(model(x), y).backward()
        optimizer.step()

    return statistics.median([wall_seconds(step, device) for _ in range(steps)][1:])
