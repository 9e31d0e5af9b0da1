"""How many CPU threads a step of the width x width MLP should use."""

from __future__ import annotations

import os

# One training step (LoRA r2 on layer 1, 50 samples), median of 3 interleaved repeats, 1 vs 2 threads on an
# idle 2-core x86_64 CPU, torch 2.13 (2026-12-01): width 64: 0.90 vs 0.84 ms; 128: 0.97 vs 1.15 ms;
# 256: 1.90 vs 1.47 ms (1.29x); 512: 4.65 vs 3.73 ms (1.25x); 1024: 15.5 vs 12.6 ms (1.24x).
# Below 256 a second thread buys nothing, and on a busy machine it made a width-64 step ~100x slower.
MULTI_THREAD_WIDTH = 256


def default_threads(width: int) -> int:
    """1 thread below width 256, where a second one stops paying for itself; 2 (or the CPUs there are) from it."""
    return 1 if width < MULTI_THREAD_WIDTH else min(2, os.cpu_count() or 1)
