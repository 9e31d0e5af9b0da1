"""Three copies of LoRA under other names: methods that are the same by construction.

Each copy draws its initialisation from its own stream (keyed by its name), so the copies differ
only as LoRA differs from itself across initialisations. A claim that tuned methods are "within a
few percent" must never come out contradicted for them; try it:

    python -m studies.claims --methods lora,lora_copy1,lora_copy2,lora_copy3 \\
        --adapter-module examples/lora_copies.py --widths 64 --shifts out_of_span
"""

from __future__ import annotations

import dataclasses

import adapters

for i, (color, marker) in enumerate((("#56B4E9", "<"), ("#0072B2", ">"), ("#000080", "h")), start=1):
    adapters.add(dataclasses.replace(adapters.get("lora"), name=f"lora_copy{i}", label=f"LoRA copy {i}",
                                     color=color, marker=marker))
