"""adapters/ as a library: no import from nfl, attaching by name / regex / predicate to models
that are not the experiment's MLP, independent random streams, a registry that validates."""

from __future__ import annotations

import ast
import copy
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import adapters
from adapters.contract import perturb_, train_
from adapters.registry import _REGISTRY, MethodSpec
from adapters.streams import PURPOSES, Streams, stream_seed
from tests.conftest import ADAPTER_METHODS, ALL_METHODS

ROOT = Path(__file__).resolve().parents[1]


def test_adapters_imports_nothing_from_nfl() -> None:
    for path in (ROOT / "adapters").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            modules += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(m == "nfl" or m.startswith("nfl.") for m in modules), f"{path.name} imports {modules}"
    loaded = "import sys, adapters, adapters.check; print(sorted(m for m in sys.modules if m.split('.')[0] == 'nfl'))"
    out = subprocess.run([sys.executable, "-c", loaded], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- any model --------------------------------------------------------------------------------


class Nested(nn.Module):
    """Two residual blocks of nested Sequentials and a head: qualified names like blocks.0.mlp.0."""

    def __init__(self) -> None:
        super().__init__()
        mlp = lambda: nn.Sequential(nn.Linear(8, 12), nn.GELU(), nn.Linear(12, 8))  # noqa: E731
        self.blocks = nn.ModuleList([nn.ModuleDict({"mlp": mlp()}) for _ in range(2)])
        self.norm = nn.LayerNorm(8)
        self.head = nn.Linear(8, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = x + block["mlp"](x)
        return self.head(self.norm(x))


def _nested() -> Nested:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return Nested().double()


MLP_LAYERS = re.compile(r"blocks\.\d\.mlp\.\d")


@pytest.mark.parametrize("method", ALL_METHODS)
def test_every_method_attaches_to_a_nested_model(method: str) -> None:
    model = _nested()
    x = torch.randn(10, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    expected = model(x)
    before = copy.deepcopy(model)
    names = adapters.trained_layer_names(model, method, MLP_LAYERS)
    attached = adapters.attach(model, method, MLP_LAYERS, seed=0)
    assert (model(x) - expected).abs().max() < 1e-10, "identity at initialisation"
    assert [type(model.get_submodule(n)).__name__ for n in names][:1] != ["Linear"] or not attached
    shapes = [(m.out_features, m.in_features) for m in map(before.get_submodule, names)]
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if method != "full":  # full fine-tuning also trains the LayerNorm, which no Linear formula covers
        assert trainable == adapters.get(method).expected_params(shapes, None)
    train_(model, attached, x, torch.randn(10, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64))
    adapted = {f"{n}." for n in names}
    for name, param in before.named_parameters():
        if method != "full" and not any(name.startswith(prefix) for prefix in adapted):
            assert torch.equal(param, model.get_parameter(name)), f"{name} is not the adapter's but moved"
    for adapter in attached:
        perturb_(adapter)
        h = torch.randn(5, adapter.in_features, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        assert (adapter(h) - F.linear(h, adapter.merged_weight(), adapter.bias)).abs().max() < 1e-10


@pytest.mark.parametrize("method", ADAPTER_METHODS)
def test_every_adapter_attaches_to_a_transformer_layer_feed_forward(method: str) -> None:
    # MultiheadAttention's out_proj is bypassed by F.multi_head_attention_forward: target the FFN only.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0, batch_first=True).double()
    x = torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    layer.train()  # dropout is 0; eval mode's fast path reads linear1.weight, which an adapter replaces
    expected = layer(x)
    attached = adapters.attach(layer, method, ["linear1", "linear2"], seed=0)
    assert len(attached) == 2 and (layer(x) - expected).abs().max() < 1e-10
    assert all(not p.requires_grad for p in layer.self_attn.parameters())
    perturb_(layer)
    assert (layer(x) - expected).abs().max() > 1e-3, "the perturbed adapters change the output"


def test_target_modules_by_name_list_regex_and_predicate() -> None:
    model = _nested()
    assert adapters.target_names(model, "head") == ["head"]
    assert adapters.target_names(model, ["head", "blocks.1.mlp.0"]) == ["blocks.1.mlp.0", "head"]
    expected = ["blocks.0.mlp.0", "blocks.0.mlp.2", "blocks.1.mlp.0", "blocks.1.mlp.2"]
    assert adapters.target_names(model, MLP_LAYERS) == expected
    assert adapters.target_names(model, lambda name, m: m.out_features == 6) == ["head"]
    with pytest.raises(ValueError, match="target 'norm' is not an nn.Linear"):
        adapters.target_names(model, "norm")
    with pytest.raises(ValueError, match="target 'nope' is no module"):
        adapters.target_names(model, ["nope"])
    with pytest.raises(ValueError, match="selects no nn.Linear"):
        adapters.target_names(model, re.compile("mlp"))  # fullmatch: a bare substring selects nothing


# --- random streams -------------------------------------------------------------------------


def test_every_purpose_and_seed_gets_its_own_integer() -> None:
    seeds = [stream_seed(seed, purpose) for seed in range(50) for purpose in PURPOSES]
    assert len(set(seeds)) == len(seeds)
    assert not set(seeds) & set(range(50)), "no stream reuses the run's seed itself"


def test_streams_are_independent_of_the_raw_seed() -> None:
    """v1 seeded the MLP and the adapter with one integer: LoRA's A equalled the MLP's first rows."""
    layer = nn.Linear(16, 12)
    lora = adapters.build("lora", layer, seed=43)
    raw = torch.empty_like(lora.lora_A)
    nn.init.kaiming_uniform_(raw, a=5**0.5, generator=torch.Generator().manual_seed(43))
    assert not torch.equal(lora.lora_A, raw)
    streams = Streams.from_seed(43)
    draws = [torch.rand(4, generator=g) for g in (streams.init, streams.shared, streams.index)]
    assert not any(torch.equal(a, b) for i, a in enumerate(draws) for b in draws[i + 1 :])


def test_index_selection_and_initialisation_draw_from_different_streams() -> None:
    # The same seed: MoS's pool (init stream) and indices (index stream) are not one sequence.
    first = adapters.build("mos", nn.Linear(16, 12), seed=0)
    again = adapters.build("mos", nn.Linear(16, 12), seed=0, shards_per_vector=1)
    assert torch.equal(first.shard_index_A, adapters.build("mos", nn.Linear(16, 12), seed=0).shard_index_A)
    assert again.shard_index_A.shape != first.shard_index_A.shape


# --- the registry validates declarations ---------------------------------------------------


def _spec(**change) -> MethodSpec:
    fields = {**adapters.get("lora").__dict__, "name": "probe_method", "color": "#123456", **change}
    return MethodSpec(**fields)


@pytest.mark.parametrize(
    "change,message",
    [
        ({"name": "lora"}, "method 'lora': a method of this name is registered already"),
        ({"name": "Bad-Name"}, "lower-case letters"),
        ({"color": "blue"}, "color must be '#rrggbb'"),
        ({"marker": "?"}, "marker must be one of"),
        ({"color": "#0072B2"}, "are lora's already"),
        ({"default_rank": 0}, "default_rank must be None or an integer >= 1"),
        ({"param_count": lambda shapes, rank: 0}, "param_count\\(shapes, rank, hp\\) failed: TypeError"),
        ({"hparams": dict}, "hparams must be a subclass of adapters.HParams"),
        ({"dense_update": ""}, "dense_update must be None or a sentence"),
    ],
)
def test_a_malformed_declaration_fails_naming_the_method(change: dict, message: str) -> None:
    before = dict(_REGISTRY)
    with pytest.raises(ValueError, match=message):
        adapters.add(_spec(**change))
    assert _REGISTRY == before


def test_hyperparameters_need_help_and_a_frozen_dataclass() -> None:
    import dataclasses

    class Undecorated(adapters.HParams):  # a field without @dataclass is no hyper-parameter at all
        x: int = 1

    @dataclasses.dataclass(frozen=True)
    class Helpless(adapters.HParams):
        x: int = 1

    with pytest.raises(ValueError, match="method 'probe_method': Undecorated must be a frozen dataclass"):
        adapters.add(_spec(hparams=Undecorated))
    with pytest.raises(ValueError, match="hyper-parameter x needs a default and help text"):
        adapters.add(_spec(hparams=Helpless))


def test_every_method_declares_its_figure_style_and_help() -> None:
    styles = [(adapters.get(m).color.lower(), adapters.get(m).marker) for m in ALL_METHODS]
    assert len(set(styles)) == len(styles)
    assert adapters.get("miss_e").tex_label == r"MiSS$^e$" and adapters.get("miss_e").label == "MiSS^e"
    for method in ALL_METHODS:
        assert all(adapters.get(method).hparam_help().values())
