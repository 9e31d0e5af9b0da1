"""The registry of methods: ``@register``, ``build``, ``attach``, ``names``.

Studies enumerate the registry; nothing else lists methods by hand. Each entry declares a display
label, a default rank (the MiSS paper's, DESIGN.md) and an analytic trainable-parameter formula
``param_count(shapes, rank, **hparams)`` over the (out, in) shapes of the layers it trains, called
with every hyper-parameter filled in from the adapter's signature (defaults live there only).
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from adapters.base import Adapter
from nfl.model import target_layer_names

ParamCount = Callable[..., int]
_NON_HPARAMS = {"self", "base", "rank", "generator", "shared"}


@dataclass(frozen=True)
class MethodSpec:
    """One registered method. ``adapter`` is None for full fine-tuning, which wraps no layer."""

    name: str
    label: str
    default_rank: int | None
    param_count: ParamCount
    adapter: type[Adapter] | None
    reference: str = ""

    def hparam_defaults(self) -> dict[str, Any]:
        """The method's hyper-parameters and their defaults, read from the adapter's signature."""
        if self.adapter is None:
            return {}
        out: dict[str, Any] = {}
        for fn in (self.adapter.__init__, self.adapter.make_shared):
            for p in inspect.signature(fn).parameters.values():
                if p.name not in _NON_HPARAMS and p.kind is p.KEYWORD_ONLY:
                    out.setdefault(p.name, p.default)
        return out

    def resolve_hparams(self, hparams: dict[str, Any]) -> dict[str, Any]:
        """Defaults with the given values on top; an unknown name is a ValueError."""
        defaults = self.hparam_defaults()
        unknown = sorted(set(hparams) - set(defaults))
        if unknown:
            takes = ", ".join(defaults) or "none"
            raise ValueError(f"{self.label} has no hyper-parameter {', '.join(unknown)}; it takes: {takes}")
        return {**defaults, **hparams}

    def expected_params(self, shapes: list[tuple[int, int]], rank: int | None, **hparams: Any) -> int:
        """The analytic trainable-parameter count for layers of these (out, in) shapes."""
        return int(self.param_count(shapes, self.rank_or_default(rank), **self.resolve_hparams(hparams)))

    def rank_or_default(self, rank: int | None) -> int | None:
        return self.default_rank if rank is None else rank

    def check(self, shapes: list[tuple[int, int]], rank: int | None, **hparams: Any) -> None:
        """Raise ValueError if this rank and these hyper-parameters cannot go on layers of these shapes."""
        full = self.resolve_hparams(hparams)
        if self.adapter is not None:
            for out_features, in_features in shapes:
                self.adapter.check_arguments(out_features, in_features, self.rank_or_default(rank), **full)


_REGISTRY: dict[str, MethodSpec] = {}
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def add(spec: MethodSpec) -> MethodSpec:
    """Register a method; a malformed or duplicate name is an error at import time."""
    if not _NAME.match(spec.name):
        raise ValueError(f"method name {spec.name!r} must be lower-case letters, digits and underscores")
    if spec.name in _REGISTRY:
        raise ValueError(f"method {spec.name!r} is registered twice")
    if spec.adapter is not None and not spec.adapter.trainable_names:
        raise ValueError(f"{spec.adapter.__name__} declares no trainable_names")
    _REGISTRY[spec.name] = spec
    return spec


def register(name: str, *, label: str, default_rank: int, param_count: ParamCount, reference: str = ""):
    """Class decorator registering an :class:`Adapter` subclass under ``name``."""

    def decorate(cls: type[Adapter]) -> type[Adapter]:
        cls.display_label = label
        add(MethodSpec(name, label, default_rank, param_count, cls, reference))
        return cls

    return decorate


def _load_all() -> None:
    # Importing the method modules runs their @register calls.
    import adapters  # noqa: F401


def names() -> list[str]:
    """Every registered method, in registration order."""
    _load_all()
    return list(_REGISTRY)


def get(name: str) -> MethodSpec:
    """The spec of ``name``; an unknown name is a ValueError listing the available ones."""
    _load_all()
    if name not in _REGISTRY:
        raise ValueError(f"unknown method {name!r}; available: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def build_all(name: str, layers: list[nn.Linear], rank: int | None = None, seed: int = 0, **hparams: Any) -> list[Adapter]:
    """Adapters of method ``name`` around ``layers``, sharing the method's cross-layer state
    (the layers themselves are left untouched). This is all a method does before its first step."""
    spec = get(name)
    if spec.adapter is None:
        raise ValueError(f"{spec.label} wraps no layer; use attach(model, {name!r}) instead")
    rank = spec.rank_or_default(rank)
    full = spec.resolve_hparams(hparams)
    spec.check([(layer.out_features, layer.in_features) for layer in layers], rank, **hparams)
    generator = torch.Generator(device=layers[0].weight.device).manual_seed(seed)
    shared = spec.adapter.make_shared(layers, rank, generator, **full)
    return [spec.adapter(layer, rank, generator=generator, shared=shared, **full) for layer in layers]


def build(name: str, layer: nn.Linear, rank: int | None = None, seed: int = 0, **hparams: Any) -> Adapter:
    """An adapter of method ``name`` around a lone layer: :func:`build_all` with one target."""
    return build_all(name, [layer], rank, seed, **hparams)[0]


def trained_layer_names(model: nn.Module, name: str, targets: str) -> list[str]:
    """The Linear layers whose shapes enter a method's parameter formula."""
    if get(name).adapter is None:
        return [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    return target_layer_names(targets)


def attach(model: nn.Module, name: str, targets: str = "layer1", rank: int | None = None, seed: int = 0, **hparams: Any) -> list[Adapter]:
    """Freeze ``model`` and put method ``name`` on the ``targets`` layers, in place.

    Shared state (VeRA's projections, MoS's pools, AdaLoRA's budget) is created once and handed to
    every layer's adapter. Full fine-tuning instead makes every parameter trainable. Returns the
    adapters (empty for full fine-tuning).
    """
    spec = get(name)
    if spec.adapter is None:
        spec.resolve_hparams(hparams)
        model.requires_grad_(True)
        return []
    layer_names = target_layer_names(targets)
    layers = [model.get_submodule(n) for n in layer_names]
    adapters = build_all(name, layers, rank, seed, **hparams)
    model.requires_grad_(False)
    for layer_name, adapter in zip(layer_names, adapters):
        parent, _, child = layer_name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, child, adapter)
    return adapters
