"""The adapter contract, checked for every registered method (present and future) alike."""

from __future__ import annotations

import copy
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import adapters
from adapters.contract import run_checks
from nfl.params import count_trainable
from tests.conftest import ADAPTER_METHODS, ALL_METHODS, TwoLayer, perturb_

TARGETS = [["layer1"], ["layer1", "layer2"]]


@pytest.mark.parametrize("targets", TARGETS)
@pytest.mark.parametrize("method", ALL_METHODS)
def test_identity_at_init(method: str, targets: list[str]) -> None:
    model = TwoLayer()
    x = torch.randn(32, 16, generator=torch.Generator().manual_seed(0))
    expected = model(x)
    adapted = copy.deepcopy(model)
    adapters.attach(adapted, method, targets, seed=3)
    # float32, ops reordered (PiSSA's residual + BA, DoRA's rescale): 1e-5 is the bound.
    assert (adapted(x) - expected).abs().max() < 1e-5


@pytest.mark.parametrize("method", ADAPTER_METHODS)
def test_forward_equals_merged_weight_once_perturbed(method: str) -> None:
    layer = TwoLayer(torch.float64).layer1
    adapter = adapters.build(method, layer, seed=5)
    perturb_(adapter)
    x = torch.randn(20, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    out = adapter(x)
    # float64 exactness check: a wrong merge is off by O(1), rounding by O(1e-15).
    assert (out - F.linear(x, adapter.merged_weight(), adapter.bias)).abs().max() < 1e-10
    assert (out - layer(x)).abs().max() > 1e-3, "perturbing the adapter must change its output"
    assert torch.allclose(adapter.delta_weight(), adapter.merged_weight() - layer.weight)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("method", ADAPTER_METHODS)
def test_evaluating_merged_computes_the_merged_layers_and_then_the_methods_own_forward(method: str) -> None:
    model = TwoLayer(torch.float64)
    hooks = adapters.attach(model, method, ["layer1", "layer2"], seed=5)
    for hook in hooks:
        perturb_(hook)
    x = torch.randn(20, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    own = model(x)
    calls = []
    with adapters.merged(model):
        for hook in hooks:
            hook.merged_weight = lambda hook=hook: calls.append(hook) or type(hook).merged_weight(hook)
        inside = model(x)
        for hook in hooks:
            del hook.merged_weight
    assert calls == hooks, "inside the block every adapter computes through its merged weight"
    assert (inside - own).abs().max() < 1e-10
    with pytest.raises(RuntimeError), adapters.merged(model):
        raise RuntimeError("an error inside the block")
    assert all("forward" not in vars(hook) for hook in hooks), "after the block (error or not): the method's forward"
    assert (model(x) - own).abs().max() == 0


@pytest.mark.parametrize("targets", TARGETS)
@pytest.mark.parametrize("method", ALL_METHODS)
def test_parameter_formula_equals_count(method: str, targets: list[str]) -> None:
    model = TwoLayer()
    spec = adapters.get(method)
    layers = map(model.get_submodule, adapters.trained_layer_names(model, method, targets))
    shapes = [(m.out_features, m.in_features) for m in layers]
    adapters.attach(model, method, targets, seed=0)
    assert count_trainable(model) == spec.expected_params(shapes, None) > 0


@pytest.mark.parametrize("method", ADAPTER_METHODS)
def test_trainable_tensors_are_exactly_the_declared_ones(method: str) -> None:
    adapter = adapters.build(method, TwoLayer().layer1)
    trainable = {n for n, p in adapter.named_parameters() if p.requires_grad}
    assert trainable == set(type(adapter).trainable_names)
    assert not adapter.base_weight.requires_grad


@pytest.mark.parametrize("method", ADAPTER_METHODS)
def test_every_trainable_tensor_gets_gradient_once_perturbed(method: str) -> None:
    adapter = adapters.build(method, TwoLayer(torch.float64).layer1)
    perturb_(adapter)
    x = torch.randn(20, 16, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    adapter(x).pow(2).sum().backward()
    for name, p in adapter.named_parameters():
        if p.requires_grad and p.numel():  # an empty tensor (ProLoRA's A_u at u = 0) has nothing to move
            assert p.grad is not None and p.grad.abs().sum() > 0, f"{name} received no gradient"


@pytest.mark.parametrize("targets", TARGETS)
@pytest.mark.parametrize("method", ALL_METHODS)
def test_only_the_adapter_moves(method: str, targets: list[str]) -> None:
    from nfl.tasks import Dataset
    from nfl.training import train

    model = TwoLayer()
    before = copy.deepcopy(model)
    adapted_layers = set(adapters.trained_layer_names(model, method, targets))
    attached = adapters.attach(model, method, targets, seed=0)
    frozen = {n: t.clone() for n, t in model.named_buffers()}
    initial = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(24, 16, generator=g), torch.randn(24, 10, generator=g)
    train(model, Dataset(x, y, x, y, x, y), epochs=6, lr=1e-2, hooks=attached)

    for name, tensor in frozen.items():
        if name.endswith(("base_weight", "bias")):
            assert torch.equal(tensor, dict(model.named_buffers())[name]), f"{name} moved"
    for name, param in before.named_parameters():
        layer = name.split(".")[0]
        if method != "full" and layer not in adapted_layers:
            assert torch.equal(param, model.get_parameter(name)), f"{name} (not adapted) moved"
    for name, value in initial.items():
        assert not value.numel() or not torch.equal(value, dict(model.named_parameters())[name]), (
            f"trainable {name} never moved"
        )


@pytest.mark.parametrize("method", ADAPTER_METHODS)
def test_build_leaves_the_layer_alone(method: str) -> None:
    layer = TwoLayer().layer1
    weight, bias = layer.weight.detach().clone(), layer.bias.detach().clone()
    adapters.build(method, layer, seed=0)
    assert torch.equal(layer.weight, weight) and torch.equal(layer.bias, bias)
    assert layer.weight.requires_grad and layer.bias.requires_grad


@pytest.mark.parametrize("method", ADAPTER_METHODS)
def test_seeded_initialisation_is_deterministic(method: str) -> None:
    layer = TwoLayer().layer1
    first, second = (dict(adapters.build(method, layer, seed=7).named_parameters()) for _ in range(2))
    assert first.keys() == second.keys()
    for name in first:
        assert torch.equal(first[name], second[name]), name


@pytest.mark.parametrize("method", [m for m in ADAPTER_METHODS if "alpha" in adapters.get(m).hparam_defaults()])
def test_a_non_positive_alpha_is_a_clear_error(method: str) -> None:
    label = adapters.get(method).label
    for alpha in (0.0, -1.0):
        with pytest.raises(ValueError, match=f"{re.escape(label)} needs alpha > 0, got {alpha}"):
            adapters.build(method, TwoLayer().layer1, alpha=alpha)


def test_unknown_method_names_the_available_ones() -> None:
    with pytest.raises(ValueError, match="unknown method 'nope'.*lora"):
        adapters.build("nope", nn.Linear(4, 4))


def test_unknown_hyperparameter_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="LoRA has no hyper-parameter bogus; it takes: alpha"):
        adapters.build("lora", nn.Linear(4, 4), bogus=1)


def test_full_fine_tuning_wraps_no_single_layer() -> None:
    with pytest.raises(ValueError, match="attach"):
        adapters.build("full", nn.Linear(4, 4))


@pytest.mark.parametrize("method", ALL_METHODS)
def test_the_contract_checks_pass(method: str) -> None:
    """What ``python -m adapters.check`` runs on an external adapter, on every registered one."""
    failed = [f"{v.check}: {v.detail}" for v in run_checks(method) if not v.passed]
    assert not failed, failed
