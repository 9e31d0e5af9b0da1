"""The pretrain -> shift -> adapt pipeline: determinism, well-posedness, the paper preset's warning."""

from __future__ import annotations

import dataclasses
import warnings

import pytest
import torch

from nfl.config import preset
from nfl.tasks import make_task_data
from nfl.training import DegenerateTaskWarning, adapt, evaluate, pretrain

pytestmark = pytest.mark.slow  # whole studies / reference parity: the full suite only


def test_same_seed_gives_identical_data() -> None:
    cfg = preset("default").task
    first, second = make_task_data(cfg, 64, seed=5), make_task_data(cfg, 64, seed=5)
    for a, b in ((first.base, second.base), (first.shifted, second.shifted)):
        for name in ("x_train", "y_train", "x_val", "y_val"):
            assert torch.equal(getattr(a, name), getattr(b, name))
    assert not torch.equal(first.base.x_train, make_task_data(cfg, 64, seed=6).base.x_train)


@pytest.mark.parametrize("kind", ["fourier_sine", "elementwise_sine"])
def test_base_and_shifted_data_are_drawn_independently(kind: str) -> None:
    cfg = dataclasses.replace(preset("default").task, kind=kind)
    data = make_task_data(cfg, 8, seed=0)
    assert not torch.equal(data.base.x_train, data.shifted.x_train)
    assert data.base.x_train.shape == (50, 8) and data.shifted.y_val.shape == (100, 8)


def test_zero_loss_is_the_mean_square_of_the_targets() -> None:
    data = make_task_data(preset("default").task, 64, seed=0)
    assert data.base.zero_loss == pytest.approx(float((data.base.y_val**2).mean()))
    assert 0.4 < data.base.zero_loss < 0.6  # E[sin^2] = 1/2


def test_same_seed_gives_identical_training() -> None:
    cfg = dataclasses.replace(
        preset("default"), train=dataclasses.replace(preset("default").train, pretrain_epochs=30, adapt_epochs=10)
    )
    data = make_task_data(cfg.task, cfg.model.width, seed=1)
    runs = []
    for _ in range(2):
        model, pre = pretrain(cfg, data, seed=1)
        runs.append((model, pre, adapt(model, "lora", cfg, data.shifted, seed=1)))
    (m1, p1, a1), (m2, p2, a2) = runs
    assert all(torch.equal(x, y) for x, y in zip(m1.state_dict().values(), m2.state_dict().values()))
    assert p1.to_dict() == p2.to_dict()
    assert a1.history.to_dict() == a2.history.to_dict()


@pytest.mark.parametrize("seed", [43, 44, 45])
def test_default_preset_is_well_posed(seed: int) -> None:
    """docs/design.md's four criteria (the fourth, reporting, is checked by the study's CLI test)."""
    cfg = preset("default")
    data = make_task_data(cfg.task, cfg.model.width, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DegenerateTaskWarning)
        model, history = pretrain(cfg, data, seed)
    base_loss = history.final_val_loss
    assert base_loss <= 0.1 * data.base.zero_loss  # 1. pretraining stores knowledge
    shifted_before = evaluate(model, data.shifted.x_val, data.shifted.y_val)
    assert shifted_before >= 5 * base_loss  # 2. the shift matters
    # 3. adaptation can recover: full fine-tuning at its tuned lr (the preset's grid, chosen on validation).
    runs = [adapt(model, "full", cfg, data.shifted, seed=seed, lr=lr).history for lr in cfg.train.adaptation_lrs]
    assert all(h.val_loss[0] == pytest.approx(shifted_before) for h in runs)
    assert min(min(h.val_loss) for h in runs if h.diverged_at is None) <= shifted_before / 5


def test_paper_preset_warns_that_pretraining_learnt_nothing() -> None:
    cfg = preset("paper")
    data = make_task_data(cfg.task, cfg.model.width, cfg.seed)
    with pytest.warns(DegenerateTaskWarning, match="no better than the zero predictor"):
        _, history = pretrain(cfg, data, cfg.seed)
    assert history.final_val_loss > data.base.zero_loss


def test_paper_preset_is_the_appendix_table() -> None:
    cfg = preset("paper")
    assert (cfg.seed, cfg.model.width, cfg.task.kind, cfg.targets) == (43, 64, "elementwise_sine", "layer1")
    assert (cfg.task.n_train, cfg.task.n_val, cfg.task.noise_std, cfg.task.shift_amplitude) == (50, 100, 0.05, 0.3)
    assert (cfg.train.lr, cfg.train.pretrain_epochs, cfg.train.adapt_epochs) == (1e-3, 250, 100)
    assert cfg.train_unadapted_layers is False


def test_train_unadapted_layers_trains_layer2_too() -> None:
    cfg = dataclasses.replace(
        preset("paper"), train_unadapted_layers=True, train=dataclasses.replace(preset("paper").train, adapt_epochs=2)
    )
    data = make_task_data(cfg.task, cfg.model.width, 0)
    model, _ = pretrain(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, pretrain_epochs=1)), data, 0)
    result = adapt(model, "lora", cfg, data.shifted, seed=0)
    assert result.trainable_params == 2 * (64 + 64) + 64 * 64 + 64  # LoRA r=2 plus all of layer 2
    assert not torch.equal(result.model.layer2.weight, model.layer2.weight)
