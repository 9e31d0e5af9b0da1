"""How many CPU threads a step of the width x width MLP should use."""

from __future__ import annotations

import os

from nfl.measure.policy import MULTI_THREAD_WIDTH


def default_threads(width: int) -> int:
    """1 thread below ``MULTI_THREAD_WIDTH``, where a second one stops paying for itself; 2 (or the CPUs there are)
    from it."""
    return 1 if width < MULTI_THREAD_WIDTH else min(2, os.cpu_count() or 1)
