"""The registry of methods: ``register``, ``names``, ``get``, ``build``, ``build_all``.

Each method declares itself in its own file with :func:`register` (or :func:`add` for a method
that wraps no layer, like full fine-tuning): its label, colour and marker, its hyper-parameter
dataclass, its default rank (None: it takes no rank), its parameter count and whether it forms the
dense d x k update. Everything is checked here, at import, with an error naming the method; and
ranks and hyper-parameters are validated here only, by :meth:`MethodSpec.check`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from adapters.base import Adapter, HParams, is_int
from adapters.streams import Streams

Shapes = list[tuple[int, int]]
ParamCount = Callable[[Shapes, Any, Any], int]  # (shapes, rank, hp) -> trainable parameters

# Matplotlib's filled markers: a figure can draw every registered method with its own.
MARKERS = frozenset("os^v<>DdPXph*H8")


@dataclass(frozen=True)
class MethodSpec:
    """One registered method. ``adapter`` is None for full fine-tuning, which wraps no layer."""

    name: str
    label: str
    adapter: type[Adapter] | None
    hparams: type[HParams]
    default_rank: int | None
    param_count: ParamCount
    color: str
    marker: str
    dense_update: str | None = None  # why the method forms the d x k update; None: it never does
    tex_label: str = ""  # mathtext for figures; defaults to the label
    reference: str = ""

    def __post_init__(self) -> None:
        if not self.tex_label:
            object.__setattr__(self, "tex_label", self.label)

    @property
    def takes_rank(self) -> bool:
        return self.default_rank is not None

    def hparam_defaults(self) -> dict[str, Any]:
        return {f.name: f.default for f in dataclasses.fields(self.hparams)}

    def hparam_help(self) -> dict[str, str]:
        return {f.name: f.metadata["help"] for f in dataclasses.fields(self.hparams)}

    def make_hparams(self, **hparams: Any) -> HParams:
        """The validated hyper-parameters: defaults with these on top; a bad one is a ValueError."""
        unknown = sorted(set(hparams) - set(self.hparam_defaults()))
        if unknown:
            takes = ", ".join(self.hparam_defaults()) or "none"
            raise ValueError(f"{self.label} has no hyper-parameter {', '.join(unknown)}; it takes: {takes}")
        try:
            return self.hparams(**hparams)
        except ValueError as error:
            raise ValueError(f"{self.label} {error}") from None

    def rank_or_default(self, rank: int | None) -> int | None:
        return self.default_rank if rank is None else rank

    def check(self, shapes: Shapes, rank: int | None, **hparams: Any) -> HParams:
        """Validate a rank and hyper-parameters for layers of these (out, in) shapes, the one place
        this happens; return the hyper-parameters. Raises ValueError naming the constraint."""
        hp = self.make_hparams(**hparams)
        rank = self.rank_or_default(rank)
        if not self.takes_rank:
            if rank is not None:
                raise ValueError(f"{self.label} takes no rank, got {rank!r}")
        elif not is_int(rank):
            raise ValueError(f"{self.label} needs an integer rank, got {rank!r}")
        elif rank < 1:
            raise ValueError(f"{self.label} needs 1 <= rank, got {rank}")
        if self.adapter is not None:
            for out_features, in_features in shapes:
                try:
                    self.adapter.check(out_features, in_features, rank, hp)
                except ValueError as error:
                    raise ValueError(f"{self.label} {error}") from None
        return hp

    def expected_params(self, shapes: Shapes, rank: int | None, **hparams: Any) -> int:
        """The analytic trainable-parameter count for layers of these (out, in) shapes."""
        return int(self.param_count(shapes, self.rank_or_default(rank), self.make_hparams(**hparams)))


_REGISTRY: dict[str, MethodSpec] = {}
_NAME = re.compile(r"[a-z][a-z0-9_]*")
_COLOR = re.compile(r"#[0-9a-fA-F]{6}")


def _validate(spec: MethodSpec) -> None:
    """Every declaration a study, a figure or the contract relies on; raises naming the method."""
    fail = lambda why: ValueError(f"method {spec.name!r}: {why}")  # noqa: E731
    if not _NAME.fullmatch(spec.name):
        raise fail("the name must be lower-case letters, digits and underscores")
    if spec.name in _REGISTRY:
        raise fail("a method of this name is registered already; choose another name")
    if not spec.label or not isinstance(spec.label, str):
        raise fail("needs a label")
    if not (isinstance(spec.hparams, type) and issubclass(spec.hparams, HParams)):
        raise fail("hparams must be a subclass of adapters.HParams")
    if "__dataclass_params__" not in vars(spec.hparams) or not spec.hparams.__dataclass_params__.frozen:
        raise fail(f"{spec.hparams.__name__} must be a frozen dataclass: @dataclasses.dataclass(frozen=True)")
    for f in dataclasses.fields(spec.hparams):
        if f.default is dataclasses.MISSING or not f.metadata.get("help"):
            raise fail(f"hyper-parameter {f.name} needs a default and help text (use adapters.hparam)")
    try:
        spec.hparams()
    except ValueError as error:
        raise fail(f"its default hyper-parameters are invalid: {error}") from None
    if spec.default_rank is not None and not (is_int(spec.default_rank) and spec.default_rank >= 1):
        raise fail(f"default_rank must be None or an integer >= 1, got {spec.default_rank!r}")
    if not callable(spec.param_count):
        raise fail("param_count must be a function (shapes, rank, hp) -> int")
    if not (isinstance(spec.color, str) and _COLOR.fullmatch(spec.color)):
        raise fail(f"color must be '#rrggbb', got {spec.color!r}")
    if spec.marker not in MARKERS:
        raise fail(f"marker must be one of {''.join(sorted(MARKERS))}, got {spec.marker!r}")
    for other in _REGISTRY.values():
        if (other.color.lower(), other.marker) == (spec.color.lower(), spec.marker):
            raise fail(f"colour {spec.color} and marker {spec.marker!r} are {other.name}'s already")
    if spec.dense_update is not None and not (isinstance(spec.dense_update, str) and spec.dense_update):
        raise fail("dense_update must be None or a sentence saying why the method forms d x k")
    if spec.adapter is not None:
        if not (isinstance(spec.adapter, type) and issubclass(spec.adapter, Adapter)):
            raise fail("the adapter must subclass adapters.Adapter")
        if not spec.adapter.trainable_names:
            raise fail(f"{spec.adapter.__name__} declares no trainable_names")
        if "bias" in spec.adapter.trainable_names:
            raise fail("the bias belongs to the base layer (adapters/contract.py); drop 'bias' from trainable_names")
    try:
        count = spec.param_count([(64, 64)], spec.default_rank, spec.hparams())
    except Exception as error:  # a formula that cannot be called is a registration error
        raise fail(f"param_count(shapes, rank, hp) failed: {type(error).__name__}: {error}") from None
    if not is_int(count) or count < 0:
        raise fail(f"param_count must return an integer >= 0, got {count!r}")


def add(spec: MethodSpec) -> MethodSpec:
    """Register a method; a malformed or duplicate declaration is an error at import time."""
    _validate(spec)
    _REGISTRY[spec.name] = spec
    return spec


def register(name: str, **declaration: Any) -> Callable[[type[Adapter]], type[Adapter]]:
    """Class decorator registering an :class:`Adapter` subclass under ``name``; ``declaration``
    holds the other :class:`MethodSpec` fields (label, hparams, default_rank, param_count, ...)."""

    def decorate(cls: type[Adapter]) -> type[Adapter]:
        add(MethodSpec(name=name, adapter=cls, **declaration))
        return cls

    return decorate


def _load_all() -> None:
    # Importing the package registers the built-in methods, then the installed plug-ins.
    import adapters  # noqa: F401
    from adapters.plugins import load_entry_points

    load_entry_points()


def names() -> list[str]:
    """Every registered method, in registration order."""
    _load_all()
    return list(_REGISTRY)


def registration_order(name: str) -> tuple[int, str]:
    """A sort key putting methods in registration order (built-ins first, as adapters/__init__.py
    lists them), unknown names last: the one order every table and figure draws methods in, whatever
    order their records came in."""
    known = names()
    return (known.index(name) if name in known else len(known), name)


def get(name: str) -> MethodSpec:
    """The spec of ``name``; an unknown name is a ValueError listing the available ones."""
    _load_all()
    if name not in _REGISTRY:
        raise ValueError(f"unknown method {name!r}; available: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def build_all(
    name: str, layers: list[nn.Linear], rank: int | None = None, seed: int = 0, **hparams: Any
) -> list[Adapter]:
    """Adapters of method ``name`` around ``layers``, sharing the method's cross-layer state
    (the layers themselves are left untouched). This is all a method does before its first step.

    ``seed`` is split into independent streams (:class:`Streams`): initialisation, shared state,
    index selection."""
    spec = get(name)
    if spec.adapter is None:
        raise ValueError(f"{spec.label} wraps no layer; use attach(model, {name!r}, ...) instead")
    hp = spec.check([(layer.out_features, layer.in_features) for layer in layers], rank, **hparams)
    rank = spec.rank_or_default(rank)
    streams = Streams.from_seed(seed, layers[0].weight.device)
    shared = spec.adapter.make_shared(layers, rank, hp, streams)
    built = [spec.adapter(layer, rank, hp, streams=streams, shared=shared) for layer in layers]
    if any(adapter.bias is not None and adapter.bias.requires_grad for adapter in built):
        raise ValueError(f"{spec.label} trains the bias, which belongs to the base layer (adapters/contract.py)")
    return built


def build(name: str, layer: nn.Linear, rank: int | None = None, seed: int = 0, **hparams: Any) -> Adapter:
    """An adapter of method ``name`` around a lone layer: :func:`build_all` with one target."""
    return build_all(name, [layer], rank, seed, **hparams)[0]
