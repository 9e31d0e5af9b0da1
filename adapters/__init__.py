"""Adapters: one module per method, the contract (base.py) and the registry (registry.py).

Importing this package registers every method, in the order below (the order studies use).
"""

from adapters import full, lora  # noqa: F401  (registration side effects)
from adapters import miss  # noqa: F401
from adapters import pissa  # noqa: F401
from adapters import milora  # noqa: F401
from adapters import dora  # noqa: F401
from adapters import vera  # noqa: F401
from adapters import prolora  # noqa: F401
from adapters import mos  # noqa: F401
from adapters import adalora  # noqa: F401
from adapters.registry import attach, build, build_all, get, names

__all__ = ["attach", "build", "build_all", "get", "names"]
