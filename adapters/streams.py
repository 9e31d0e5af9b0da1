"""Independent random streams for one build, derived from its seed.

Every purpose gets its own generator, seeded from ``numpy.random.SeedSequence(seed, spawn_key=
(purpose,))`` with ``purpose`` a stable hash of its name, so no two purposes ever share a seed
and adding a purpose never shifts another's numbers.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import torch

PURPOSES = ("init", "shared", "index")


def stream_seed(seed: int, purpose: str) -> int:
    """A 63-bit seed for ``purpose`` (a name), independent of every other purpose's."""
    sequence = np.random.SeedSequence(seed, spawn_key=(zlib.crc32(purpose.encode()),))
    return int(sequence.generate_state(1, np.uint64)[0] >> np.uint64(1))


@dataclass(frozen=True)
class Streams:
    """The generators of one build: ``init`` (adapter tensors), ``shared`` (state shared across
    layers such as VeRA's projections; on the CPU, where PEFT draws them) and ``index`` (index
    selections such as MoS's shard indices)."""

    init: torch.Generator
    shared: torch.Generator
    index: torch.Generator

    @classmethod
    def from_seed(cls, seed: int, device: torch.device | str = "cpu") -> Streams:
        def make(purpose: str, on: torch.device | str) -> torch.Generator:
            return torch.Generator(device=on).manual_seed(stream_seed(seed, purpose))

        return cls(init=make("init", device), shared=make("shared", "cpu"), index=make("index", device))
