"""External adapters, registered without forking: a Python file, or an installed package's entry
point in the group ``nfl.adapters``. Either one registers its methods on import (``@register``)."""

from __future__ import annotations

import importlib.util
import sys
import traceback
from importlib.metadata import entry_points
from pathlib import Path

from adapters import registry

ENTRY_POINT_GROUP = "nfl.adapters"
_loaded: dict[Path, list[str]] = {}
_entry_points_loaded = False


class PluginError(ValueError):
    """An adapter file that cannot be used; the message is one line naming the file and the problem."""


def _where(path: Path, error: BaseException) -> str:
    """``path, line N`` of the deepest frame of ``error`` inside the file (``path`` alone if none)."""
    lines = [frame.lineno for frame in traceback.extract_tb(error.__traceback__) if Path(frame.filename) == path]
    return f"{path}, line {lines[-1]}" if lines else str(path)


def _problem(path: Path, error: BaseException) -> str:
    """What went wrong while importing the file at ``path``, said in one line."""
    if isinstance(error, SyntaxError):
        return f"{path}, line {error.lineno}: syntax error: {error.msg}"
    if isinstance(error, SystemExit):
        return f"{path}: calls sys.exit({error.code!r}) on import; an adapter file only registers methods"
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{_where(path, error)}: {type(error).__name__}" + (f": {text}" if text else "")


def load_module(path: str | Path) -> list[str]:
    """Import the adapter file at ``path`` (once per file) and return the methods it registered.

    A missing file, a syntax or import error, an error raised while registering (a name clash), a
    ``sys.exit`` at import or a file that registers nothing is a :class:`PluginError` naming the
    file; the methods a failing file registered before it failed are unregistered again."""
    path = Path(path).resolve()
    if path in _loaded:
        return _loaded[path]
    if not path.is_file():
        raise PluginError(f"{path}: no such file")
    name = f"nfl_adapter_module_{len(_loaded)}_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise PluginError(f"{path}: not a Python file")
    before = set(registry.names())
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look modules up by name
    try:
        spec.loader.exec_module(module)
        added = [method for method in registry.names() if method not in before]
        if not added:
            raise PluginError(f"{path}: registers no method (decorate an Adapter with @adapters.register)")
    except PluginError:
        _forget(name, before)
        raise
    except (Exception, SystemExit) as error:  # whatever a user's file does, the caller gets one line
        _forget(name, before)
        raise PluginError(_problem(path, error)) from None
    _loaded[path] = added
    return added


def _forget(module_name: str, before: set[str]) -> None:
    """Undo a failed import: its module and any method it registered."""
    sys.modules.pop(module_name, None)
    for method in [m for m in registry._REGISTRY if m not in before]:
        del registry._REGISTRY[method]


def load_entry_points() -> None:
    """Import every installed ``nfl.adapters`` entry point, once."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        entry.load()
