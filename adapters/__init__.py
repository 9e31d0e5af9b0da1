"""Adapters: one module per method, the contract (base.py), the registry (registry.py) and
attaching to any model's Linear layers by name (targets.py). Imports nothing from nfl.

Importing this package registers every built-in method, in the order below (the order studies and
figures use): full fine-tuning, LoRA, PiSSA, MiLoRA, VeRA, DoRA, ProLoRA, AdaLoRA, MoS, MiSS,
MiSS^e; then installed plug-ins (entry-point group ``nfl.adapters``) on first use of the registry.
"""

from adapters.base import Adapter, HParams, hparam, like, merged, require
from adapters.lowrank import LowRank, ScaledHParams
from adapters.plugins import load_module
from adapters.registry import MethodSpec, add, build, build_all, get, names, register, registration_order
from adapters.targets import attach, target_names, trained_layer_names

# Registration side effects, in the order above (the order every table and figure uses): not sorted.
from adapters import full, lora, pissa, milora, vera, dora, prolora, adalora, mos, miss  # noqa: E402, F401  # isort: skip

__all__ = [
    "Adapter", "HParams", "LowRank", "MethodSpec", "ScaledHParams", "add", "attach", "build", "build_all", "get",
    "hparam", "like", "load_module", "merged", "names", "register", "registration_order", "require", "target_names",
    "trained_layer_names",
]
