"""Independent random streams, one per purpose, all derived here from a run's seed.

A purpose is a tuple of strings: ``("task",)`` samples the data, ``("task_function",)`` draws the task
itself unless the config pins one, ``("model",)`` initialises the MLP,
``("adapter", method)`` is the seed handed to ``adapters.attach`` (keyed by the method's name, so
adding or removing a method never shifts another's numbers). Each stream's integer comes from
``numpy.random.SeedSequence`` over the run seed and a stable hash of the purpose, so no stream is
another's integer reused (on v1 LoRA's A came out equal to the MLP's first initial rows).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch

from nfl.config import ExperimentConfig
from nfl.testbeds import adapted_shapes


def _word(text: str) -> int:
    """A 64-bit integer of ``text`` that is the same in every process (``hash()`` is salted)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def derive(seed: int, *purpose: str) -> int:
    """The integer seed of stream ``purpose`` of run ``seed`` (63 bits, a valid torch seed)."""
    if not purpose:
        raise ValueError("a stream needs a purpose, e.g. derive(seed, 'task')")
    state = np.random.SeedSequence([seed, *map(_word, purpose)]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def task_function_seed(task_seed: int | None, seed: int) -> int:
    """The seed of the task function (the sine task's encoding and phases): ``task_seed`` where it
    is pinned, else run ``seed``'s own ``task_function`` stream (apart from ``task``, which samples data)."""
    return derive(seed, "task_function") if task_seed is None else task_seed


def generator(seed: int, *purpose: str, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch Generator on stream ``purpose`` of run ``seed``."""
    return torch.Generator(device=device).manual_seed(derive(seed, *purpose))


@dataclass(frozen=True)
class Run:
    """One run of an experiment: the seeds of its streams and the shapes of the layers it adapts."""

    config: ExperimentConfig
    seed: int

    @property
    def task_seed(self) -> int:
        return derive(self.seed, "task")

    @property
    def model_seed(self) -> int:
        return derive(self.seed, "model")

    def adapter_seed(self, method: str) -> int:
        return derive(self.seed, "adapter", method)

    def shapes(self) -> list[tuple[int, int]]:
        """(out, in) of each adapted layer, read from the model (built on the meta device: no data)."""
        return adapted_shapes(self.config)
