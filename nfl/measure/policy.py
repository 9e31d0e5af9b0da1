"""Every timing constant, each with the measurement that chose it.

The machines nfl is timed on are shared: these numbers say how hard a study measures and when a
timing is too noisy to print bare. Change one only with a measurement beside it.
"""

from __future__ import annotations

# --- blocks (nfl.measure.blocks) ---------------------------------------------------------------

# A block is the calls timed together; it lasts at least BLOCK_S on the clock so that even a 0.1 ms
# call is timed well above the clock's resolution. Short blocks: under load more of them run through
# uncut. Under a competing load on 2 cores, 1 ms blocks held LoRA/PiSSA worse than 2 ms.
BLOCK_S = 0.002
# Each round keeps the fastest of REPEATS blocks: 21 rounds of 3 held LoRA/PiSSA better than 11 of 6.
REPEATS = 3
# Doubling the calls until a block reaches its target overshoots it by 1.44x on average: trim to this
# far above the target at the rate seen, so a block stays above it.
CALIBRATION_MARGIN = 1.1
# Unmeasured calls before calibration (past Adam's lazy state, the first BLAS or cuSOLVER call).
WARMUP, QUICK_WARMUP = 3, 2

# --- rounds (nfl.measure.rounds) ---------------------------------------------------------------

# Many short rounds rather than few long ones: on a loaded machine a cell's time drifts over seconds,
# and each round is one more chance at a quiet moment; a cell's cost is its fastest round. With 11
# rounds a busy host left one cell of a default pareto run without a quiet round (LoRA/PiSSA r=2:
# 1.375); with 21 the two default runs made right after held (0.972-1.053, 0.923-1.020).
FULL_ROUNDS, QUICK_ROUNDS = 31, 21

# --- the noise rule and load (nfl.measure.rounds, nfl.measure.runner) ----------------------------

# A cost is noise when fewer than a quarter of its rounds came within this margin of the fastest:
# it then rests on a few lucky rounds (on idle machines the lower quartile sat within 7% for step
# times and 22% for init times; under heavy load beyond 25% for a third of the cells).
NOISY_MARGIN = 0.25
# Wall / CPU time, or the median round over the fastest, above this (median over cells): the machine
# was busy, and the checks say so.
LOADED = 1.2

# --- threads (nfl.measure.threads) -------------------------------------------------------------

# One training step (LoRA r2 on layer 1, 50 samples), median of 3 interleaved repeats, 1 vs 2 threads
# on an idle 2-core x86_64 CPU, torch 2.13 (2026-12-01): width 64: 0.90 vs 0.84 ms; 128: 0.97 vs 1.15
# ms; 256: 1.90 vs 1.47 ms (1.29x); 512: 4.65 vs 3.73 ms (1.25x); 1024: 15.5 vs 12.6 ms (1.24x).
# Below 256 a second thread buys nothing, and on a busy machine it made a width-64 step ~100x slower.
MULTI_THREAD_WIDTH = 256
