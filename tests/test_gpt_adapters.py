"""Every registered adapter on the tiny GPT's layers (nfl.testbeds.gpt_model): attaches to every
target selection, preserves the model at init, equals its merged weights once perturbed, and trains
with finite loss and gradients; the shared state crosses the GPT's four shapes as it should."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

import adapters
from adapters.contract import perturb_
from nfl.testbeds.gpt_model import GPT, GPTConfig, bits_per_byte, make_gpt, target_pattern
from tests.conftest import ADAPTER_METHODS, ALL_METHODS

TINY = GPTConfig(n_layer=2, n_head=2, d_model=16, context=16)
SHAPES = {"attn.qkv": (48, 16), "attn.proj": (16, 16), "mlp.fc": (64, 16), "mlp.proj": (16, 64)}
SELECTED = {"attn": ("attn.qkv", "attn.proj"), "mlp": ("mlp.fc", "mlp.proj"), "all": tuple(SHAPES)}


def tiny_gpt(dtype: torch.dtype = torch.float64) -> GPT:
    return make_gpt(TINY, torch.Generator().manual_seed(0), dtype)


def batch(rows: int = 4, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    data = torch.randint(256, (rows, TINY.context + 1), generator=torch.Generator().manual_seed(seed))
    return data[:, :-1], data[:, 1:]


@pytest.mark.parametrize("targets", sorted(SELECTED))
def test_targets_select_the_named_projections(targets: str) -> None:
    chosen = adapters.target_names(tiny_gpt(), target_pattern(targets))
    assert chosen == [f"blocks.{i}.{name}" for i in range(TINY.n_layer) for name in SELECTED[targets]]
    model = tiny_gpt()
    for name in chosen:
        layer = model.get_submodule(name)
        assert (layer.out_features, layer.in_features) == SHAPES[name.split(".", 2)[2]]


def test_an_unknown_target_selection_is_refused() -> None:
    with pytest.raises(ValueError, match="choose one of: attn, mlp, all"):
        target_pattern("head")


@pytest.mark.parametrize("targets", sorted(SELECTED))
@pytest.mark.parametrize("method", ALL_METHODS)
def test_identity_at_init_on_the_gpt(method: str, targets: str) -> None:
    model = tiny_gpt()
    x, _ = batch()
    adapted = copy.deepcopy(model)
    adapters.attach(adapted, method, target_pattern(targets), seed=3)
    # float64: a wrong init is off by O(1e-2) or more, rounding through the whole model by O(1e-14).
    assert (adapted(x) - model(x)).abs().max() < 1e-10


@pytest.mark.parametrize("method", ADAPTER_METHODS)
def test_perturbed_adapters_equal_their_merged_weights_on_the_gpt(method: str) -> None:
    model = tiny_gpt()
    x, _ = batch()
    before = model(x)
    hooks = adapters.attach(model, method, target_pattern("all"), seed=5)
    for hook in hooks:
        perturb_(hook)
    own = model(x)
    with adapters.merged(model):
        merged = model(x)
    for hook in hooks:  # each layer alone, on inputs of its own width
        inputs = torch.randn(6, hook.in_features, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
        assert (hook(inputs) - F.linear(inputs, hook.merged_weight(), hook.bias)).abs().max() < 1e-10
    assert (own - merged).abs().max() < 1e-10
    assert (own - before).abs().max() > 1e-3, "perturbing the adapters must change the model's output"


@pytest.mark.parametrize("method", ALL_METHODS)
def test_a_few_steps_on_the_gpt_have_finite_loss_and_gradients(method: str) -> None:
    model = tiny_gpt(torch.float32)
    hooks = adapters.attach(model, method, target_pattern("all"), seed=7)
    for hook in hooks:  # off the zero-update init, so every trainable tensor gets a gradient
        perturb_(hook, scale=0.05)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=1e-2)
    steps = 5
    for step in range(steps):
        x, y = batch(seed=step)
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        for term in (hook.regularization() for hook in hooks):
            loss = loss if term is None else loss + term
        loss.backward()
        assert torch.isfinite(loss)
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in params)
        assert all(p.grad.abs().sum() > 0 for p in params if p.numel()), "a trainable tensor got no gradient"
        optimizer.step()
        for hook in hooks:
            hook.on_step(step, steps)


@pytest.mark.parametrize("method", ADAPTER_METHODS)
def test_the_trainable_count_equals_the_formula_on_the_gpts_four_shapes(method: str) -> None:
    model = tiny_gpt()
    names = adapters.target_names(model, target_pattern("all"))
    shapes = [(model.get_submodule(n).out_features, model.get_submodule(n).in_features) for n in names]
    adapters.attach(model, method, target_pattern("all"), seed=0)
    counted = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert counted == adapters.get(method).expected_params(shapes, None)


def test_vera_shares_one_pair_of_projections_across_the_gpts_shapes() -> None:
    hooks = adapters.attach(tiny_gpt(), "vera", target_pattern("all"), seed=0)
    assert len({hook.vera_A.data_ptr() for hook in hooks}) == len({hook.vera_B.data_ptr() for hook in hooks}) == 1
    assert hooks[0].vera_A.shape[1] == 64 and hooks[0].vera_B.shape[0] == 64  # sized to the widest layer


def test_mos_keeps_one_pool_per_shape_and_draws_a_proper_subset_of_its_shared_shards() -> None:
    model = tiny_gpt()
    hooks = adapters.attach(model, "mos", target_pattern("all"), seed=0)
    pools = {hook.shard_pool_A.data_ptr(): hook for hook in hooks}
    assert len(pools) == len(SHAPES)
    for hook in hooks:
        shared = hook.shard_index_A[:-1].flatten()  # the last rank is the layer's private one
        assert len(set(shared.tolist())) == len(shared) < hook.shard_pool_A.shape[0]


def test_adalora_meets_one_budget_across_all_the_gpts_layers() -> None:
    model = tiny_gpt(torch.float32)
    hooks = adapters.attach(model, "adalora", target_pattern("all"), seed=0)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    steps = 10  # warm-up 1 step, budgeting to step 7, the final 3 at the target budget
    for step in range(steps):
        x, y = batch(seed=step)
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten()) + sum(hook.regularization() for hook in hooks)
        loss.backward()
        optimizer.step()
        for hook in hooks:
            hook.on_step(step, steps)
    ranks = [hook.effective_rank for hook in hooks]
    assert sum(ranks) == 2 * len(hooks) and max(ranks) <= 3  # target rank 2 per layer on average, r0 = 3


def test_bits_per_byte_of_a_uniform_prediction_is_eight() -> None:
    logits = torch.zeros(3, 5, 256)
    assert bits_per_byte(logits, torch.randint(256, (3, 5))).item() == pytest.approx(8.0)


def test_the_head_is_the_token_embedding_and_not_an_adaptable_linear() -> None:
    model = tiny_gpt()
    linears = adapters.target_names(model, lambda name, module: True)
    assert all(name.startswith("blocks.") for name in linears)
    x, _ = batch()
    with torch.no_grad():
        model.wte.weight[7] += 1.0
    assert not torch.equal(model(x), tiny_gpt()(x))


def test_a_sequence_longer_than_the_context_is_refused() -> None:
    with pytest.raises(ValueError, match="exceeds the context"):
        tiny_gpt()(torch.zeros(1, TINY.context + 1, dtype=torch.long))
