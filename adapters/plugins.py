"""External adapters, registered without forking: a Python file, or an installed package's entry
point in the group ``nfl.adapters``. Either one registers its methods on import (``@register``)."""

from __future__ import annotations

import importlib.util
import sys
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType

ENTRY_POINT_GROUP = "nfl.adapters"
_loaded: dict[Path, ModuleType] = {}
_entry_points_loaded = False


def load_module(path: str | Path) -> ModuleType:
    """Import the adapter file at ``path`` (once per file), registering its methods."""
    path = Path(path).resolve()
    if path in _loaded:
        return _loaded[path]
    if not path.is_file():
        raise ValueError(f"--adapter-module {path}: no such file")
    name = f"nfl_adapter_module_{len(_loaded)}_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ValueError(f"--adapter-module {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look modules up by name
    _loaded[path] = module  # before executing, so a failing file is not retried half-registered
    spec.loader.exec_module(module)
    return module


def load_entry_points() -> None:
    """Import every installed ``nfl.adapters`` entry point, once."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        entry.load()
