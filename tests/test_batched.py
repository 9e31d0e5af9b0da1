"""The batched engine against its reference, nfl.training.train, run by run, for every method."""

from __future__ import annotations

import copy
import math

import pytest
import torch

import adapters
from adapters.base import Adapter
from adapters.stacked import StackedAdam
from nfl.batched import train_batched
from nfl.tasks import Dataset
from nfl.training import History, train
from tests.conftest import ALL_METHODS, TwoLayer

# Batched matrix products sum in another order than one run's: the histories agree to rounding,
# amplified a little by Adam's division by sqrt(v) over the steps. Measured worst cases over every
# method: 2.4e-7 (float32) and 8e-16 (float64); the bounds leave room for other BLAS builds.
RELATIVE = {torch.float32: 1e-5, torch.float64: 1e-10}
EPOCHS = 12  # AdaLoRA's default schedule then has warm-up, budgeting, the final pattern and after
# Two seeds x two learning rates, and a fifth run whose learning rate overflows the model.
LRS = (1e-2, 3e-2)
DIVERGING_LR = {torch.float32: 1e6, torch.float64: 1e80}  # every method overflows at step 1 or 2


def dataset(seed: int, dtype: torch.dtype) -> Dataset:
    g = torch.Generator().manual_seed(100 + seed)
    draw = lambda n, width: torch.randn(n, width, generator=g, dtype=dtype)  # noqa: E731
    return Dataset(draw(20, 16), draw(20, 10), draw(12, 16), draw(12, 10), draw(8, 16), draw(8, 10))


Run = tuple[TwoLayer, list[Adapter], Dataset, float]


def make_runs(method: str, dtype: torch.dtype, lrs: list[float]) -> list[Run]:
    """Run i: seed i // 2 (pretrained weights, data, adapter init), lrs[i]; every layer adapted, so
    shared state (VeRA's projections, MoS's pools, AdaLoRA's joint budget) spans two layers."""
    runs = []
    for i, lr in enumerate(lrs):
        seed = i // 2
        model = TwoLayer(dtype, seed=seed)
        runs.append((model, adapters.attach(model, method, ["layer1", "layer2"], seed=seed), dataset(seed, dtype), lr))
    return runs


def sequential(runs, keep: str = "selected") -> tuple[list[History], list[torch.nn.Module]]:
    """The reference: each run alone, on its own copy (model and hooks copied together)."""
    histories, models = [], []
    for model, hooks, data, lr in runs:
        model, hooks = copy.deepcopy((model, hooks))
        histories.append(train(model, data, EPOCHS, lr, hooks, keep=keep))
        models.append(model)
    return histories, models


def batched(runs, keep: str = "selected") -> list[History]:
    models, hooks, data, lrs = map(list, zip(*runs))
    return train_batched(models, hooks, data, EPOCHS, lrs, keep=keep)


def assert_same(ours: History, reference: History, rel: float) -> None:
    assert ours.diverged_at == reference.diverged_at
    for key in ("train_loss", "val_loss", "test_loss", "grad_norm"):
        got, want = getattr(ours, key), getattr(reference, key)
        assert len(got) == len(want), key
        assert got == pytest.approx(want, rel=rel, abs=0), key


def trained(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach() for p in model.parameters() if p.requires_grad]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("method", ALL_METHODS)
def test_batched_runs_equal_sequential_runs(method: str, dtype: torch.dtype) -> None:
    runs = make_runs(method, dtype, [*LRS, *LRS, DIVERGING_LR[dtype]])
    reference, reference_models = sequential(runs)
    histories = batched(runs)

    rel = RELATIVE[dtype]
    for ours, theirs in zip(histories, reference):
        assert_same(ours, theirs, rel)
    assert all(h.diverged_at is None for h in reference[:4]) and reference[4].diverged_at is not None
    assert len(reference[0].train_loss) == EPOCHS
    # The trained tensors are written back into each run's own model, the diverged run's included.
    for (model, *_), theirs in zip(runs[:4], reference_models):
        for p, q in zip(trained(model), trained(theirs)):
            # amax over an empty tensor (ProLoRA's unshared factors at unshared_rank 0) is undefined: 0 then.
            scale = float(q.abs().max()) if q.numel() else 0.0
            torch.testing.assert_close(p, q, rtol=rel, atol=rel * scale)


def test_adalora_prunes_each_run_as_alone() -> None:
    runs = make_runs("adalora", torch.float64, [*LRS, *LRS])
    _, reference_models = sequential(runs, keep="final")
    batched(runs, keep="final")
    ranks = [[a.effective_rank for a in hooks] for _, hooks, _, _ in runs]
    reference = [[m.layer1.effective_rank, m.layer2.effective_rank] for m in reference_models]
    assert ranks == reference
    assert all(sum(r) == 2 * 2 for r in ranks)  # 3 + 3 initial ranks pruned to the target 2 per layer


def test_a_run_diverging_mid_way_is_stopped_at_its_step_and_leaves_the_others_alone() -> None:
    runs = make_runs("lora", torch.float64, [*LRS, 1e30, LRS[1]])
    reference, _ = sequential(runs)
    histories = batched(runs)
    # At lr 1e30 the first step leaves the loss finite but far beyond BLOWUP x its start: diverged there.
    assert histories[2].diverged_at == reference[2].diverged_at == 1
    assert math.isfinite(histories[2].train_loss[0]) and histories[2].val_loss == reference[2].val_loss[:1]
    for ours, theirs in zip(histories, reference):
        assert_same(ours, theirs, RELATIVE[torch.float64])


def test_a_run_not_finite_at_the_start_is_diverged_at_zero_and_left_alone() -> None:
    runs = make_runs("lora", torch.float64, [*LRS, *LRS])
    with torch.no_grad():
        runs[1][0].layer2.base_weight[0, 0] = math.nan
    reference, _ = sequential(runs)
    histories = batched(runs)
    assert histories[1].diverged_at == reference[1].diverged_at == 0
    assert histories[1] == reference[1]
    for i in (0, 2, 3):
        assert_same(histories[i], reference[i], RELATIVE[torch.float64])


def test_a_hook_the_engine_does_not_know_is_refused() -> None:
    class Counter(Adapter):
        def __init__(self):
            torch.nn.Module.__init__(self)

        def on_step(self, step: int, total_steps: int) -> None:
            pass

    runs = make_runs("lora", torch.float64, list(LRS))
    runs = [(model, [*hooks, Counter()], data, lr) for model, hooks, data, lr in runs]
    with pytest.raises(ValueError, match="on_step"):
        batched(runs)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_stacked_adam_is_torch_adam_per_run_bit_for_bit(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(0)
    lrs = [1e-3, 3e-2, 0.7]
    shapes = {"weight": (5, 4), "bias": (5,), "scalar": ()}
    stacked = {name: torch.randn(len(lrs), *shape, generator=g, dtype=dtype) for name, shape in shapes.items()}
    alone = [{name: torch.nn.Parameter(t[i].clone()) for name, t in stacked.items()} for i in range(len(lrs))]
    optimizers = [torch.optim.Adam(list(params.values()), lr=lr) for params, lr in zip(alone, lrs)]
    adam = StackedAdam(stacked, lrs)
    for _ in range(6):
        grads = {name: torch.randn(t.shape, generator=g, dtype=dtype) for name, t in stacked.items()}
        adam.step(grads)
        for i, (params, optimizer) in enumerate(zip(alone, optimizers)):
            for name, p in params.items():
                p.grad = grads[name][i].clone()
            optimizer.step()
    for i, params in enumerate(alone):
        for name, p in params.items():
            assert torch.equal(stacked[name][i], p.detach()), (i, name)
