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
# and each round is one more chance at a quiet moment; a cell's cost is its fastest round. A cell
# gets at least MIN_ROUNDS rounds and at most MAX_ROUNDS (QUICK_MAX_ROUNDS with --quick); in between
# it stops once its fastest round is reproduced within CONFIRM_TOLERANCE by CONFIRMATIONS others and
# the chance that all its rounds missed a quiet moment is at most MISS_CHANCE, a round being quiet as
# often as the rounds of the cells whose fastest is within PEER_COST times its own came within the
# tolerance of their cell's fastest (nfl.measure.rounds.StopRule).
# Chosen by replaying rules on fixed 41-round sweeps of every train_time (71) and init_time (70) cell,
# one thread, 2 cores shared with other work and with two spinning processes added, 2026-12-05;
# error = a cell's cost over its 41-round fastest (95th percentile, worst), ratio = LoRA/PiSSA at 7
# ranks. This rule, then fixed 21 rounds (as before):
#   shared, load 5-6:    step 4.7 rounds, 7.3%, 8.5%, 0.975-1.025; init 5.6 rounds, 5.7%, 8.0%
#                        fixed 21: step 0.4%, 0.5%, 0.999-1.020; init 1.9%, 4.8%
#   shared, load 8-10:   step 7.6 rounds, 4.9%, 5.8%, 0.968-1.015; init 5.9 rounds, 4.8%, 5.7%
#   spinners, load 11-12: step 11.9 rounds, 6.3%, 8.9%, 0.928-1.057; init 8.0 rounds, 3.4%, 6.2%
#   spinners, quiet 12%: step 21 rounds, 6.6%, 9.7%, 0.983-1.076; init 9.0 rounds, 9.4%, 10.9%
#                        fixed 21: init 4.4%, 5.5%
# Without the quiet-share condition ("reproduced by 2 within 5%" alone) the first loaded sweep
# stopped after 7.6 rounds and LoRA/PiSSA fell to 0.893: under load a cell's rounds can agree on a
# slowed value. MISS_CHANCE 0.01 took 5.3 / 11.2 / 21 rounds in the first three step rows for 95th
# percentiles of 6.9% / 3.2% / 1.2%. A 3% tolerance never let a loaded sweep stop. One or two
# blocks a round instead of the fastest of 3 cost about as many blocks in all and left larger errors
# (load 8-10: 10.5% and 6.1% against 4.9%).
MIN_ROUNDS = 4
CONFIRM_TOLERANCE = 0.05
CONFIRMATIONS = 2
MISS_CHANCE = 0.05
# The quiet share pooled over all cells let the cheap cells' quiet rounds settle PiSSA's and MiLoRA's
# SVD inits (0.7 ms, cut far more often than a 0.1 ms copy) on slowed rounds: under load 95th
# percentile 16.7%, worst 34% (by cost: 9.4%, 10.9%), and on the shared machine MiLoRA r=1 18%
# above its cost (by cost: 8%). Step cells, all of a similar cost, are unchanged.
PEER_COST = 2.0
# The maximum: with 11 fixed rounds a busy host once left a cell of a default pareto run without a
# quiet round (LoRA/PiSSA r=2: 1.375); with 21 the two default runs made right after held
# (0.972-1.053, 0.923-1.020). Replayed under load, a maximum of 15 kept LoRA/PiSSA at 0.928-1.035.
MAX_ROUNDS, QUICK_MAX_ROUNDS = 21, 15

# --- load (nfl.measure.runner) -----------------------------------------------------------------

# Wall / CPU time, or the median round over the fastest, above this (median over cells): the machine
# was busy, and the checks say so.
LOADED = 1.2

# --- threads (nfl.measure.threads) -------------------------------------------------------------

# One training step (LoRA r2 on layer 1, 50 samples), median of 3 interleaved repeats, 1 vs 2 threads
# on an idle 2-core x86_64 CPU, torch 2.13 (2026-12-01): width 64: 0.90 vs 0.84 ms; 128: 0.97 vs 1.15
# ms; 256: 1.90 vs 1.47 ms (1.29x); 512: 4.65 vs 3.73 ms (1.25x); 1024: 15.5 vs 12.6 ms (1.24x).
# Below 256 a second thread buys nothing, and on a busy machine it made a width-64 step ~100x slower.
MULTI_THREAD_WIDTH = 256
