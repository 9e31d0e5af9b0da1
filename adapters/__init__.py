"""Adapters: one module per method, the contract (base.py) and the registry (registry.py).

Importing this package registers every method, in the order below (the order studies and
figures use): full fine-tuning, LoRA, PiSSA, MiLoRA, VeRA, DoRA, ProLoRA, AdaLoRA, MoS, MiSS,
MiSS^e.
"""

# Registration side effects, in order.
from adapters import full, lora, pissa, milora, vera, dora, prolora, adalora, mos, miss  # noqa: F401
from adapters.registry import attach, build, build_all, get, names

__all__ = ["attach", "build", "build_all", "get", "names"]
