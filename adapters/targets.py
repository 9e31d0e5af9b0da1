"""Which layers of a model a method adapts, and attaching it there (PEFT's ``target_modules``).

``target_modules`` is a qualified module name, a list of them, a compiled regular expression
(matched in full against each qualified name) or a predicate ``(name, module) -> bool``; only
``nn.Linear`` modules are ever adapted.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Union

from torch import nn

from adapters.base import Adapter
from adapters.registry import build_all, get

Targets = Union[str, list[str], tuple[str, ...], "re.Pattern[str]", Callable[[str, nn.Module], bool]]


def target_names(model: nn.Module, target_modules: Targets) -> list[str]:
    """The qualified names of the ``nn.Linear`` layers ``target_modules`` selects, in model order."""
    linears = {name: module for name, module in model.named_modules() if isinstance(module, nn.Linear)}
    if isinstance(target_modules, (str, list, tuple)):
        wanted = [target_modules] if isinstance(target_modules, str) else list(target_modules)
        for name in wanted:
            if name not in linears:
                what = "is not an nn.Linear" if name in dict(model.named_modules()) else "is no module"
                model_name = type(model).__name__
                raise ValueError(f"target {name!r} {what} of {model_name}; Linear layers: {', '.join(linears)}")
        chosen = set(wanted)
    elif isinstance(target_modules, re.Pattern):
        chosen = {name for name in linears if target_modules.fullmatch(name)}
    elif callable(target_modules):
        chosen = {name for name, module in linears.items() if target_modules(name, module)}
    else:
        raise TypeError(f"target_modules is a name, a list of names, a regex or a predicate, got {target_modules!r}")
    if not chosen:
        raise ValueError(f"target_modules {target_modules!r} selects no nn.Linear of {type(model).__name__}")
    return [name for name in linears if name in chosen]


def trained_layer_names(model: nn.Module, method: str, target_modules: Targets) -> list[str]:
    """The Linear layers whose shapes enter a method's parameter formula (all of them for a
    method that wraps no layer, i.e. full fine-tuning)."""
    if get(method).adapter is None:
        return [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    return target_names(model, target_modules)


def attach(
    model: nn.Module, method: str, target_modules: Targets, rank: int | None = None, seed: int = 0, **hparams: Any
) -> list[Adapter]:
    """Freeze ``model`` and put ``method`` on the selected layers, in place; return the adapters.

    Shared state (VeRA's projections, MoS's pools, AdaLoRA's budget) is created once and handed to
    every layer's adapter. Full fine-tuning instead makes every parameter trainable (whatever the
    targets) and returns no adapter.
    """
    spec = get(method)
    if spec.adapter is None:
        spec.check([], rank, **hparams)
        model.requires_grad_(True)
        return []
    names = target_names(model, target_modules)
    adapters = build_all(method, [model.get_submodule(name) for name in names], rank, seed, **hparams)
    model.requires_grad_(False)
    for name, adapter in zip(names, adapters):
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, adapter)
    return adapters
