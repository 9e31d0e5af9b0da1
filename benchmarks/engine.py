"""Batched against sequential training: wall time per run-step, K runs of each method.

    python -m benchmarks.engine [--methods lora,full] [--widths 64,256] [--runs 1,8,24,64]
                                [--threads 1] [--epochs 20] [--repeats 3] [--quick]

A run-step is what a quality study pays per step of one run: ``nfl.training.train`` (step, gradient
norm, validation and test losses) against ``nfl.batched.train_batched`` over K runs, set-up and
write-back included, divided by K x epochs. A sequential run costs the same whatever K, so it is
timed on two runs. Repeats interleave the two engines so that load on a shared machine hits both;
the table shows medians and the ratio of medians.
"""

from __future__ import annotations

import argparse
import os
import statistics

import torch

import adapters
from nfl.batched import train_batched
from nfl.config import ModelConfig, TaskConfig
from nfl.measure.clocks import wall_seconds
from nfl.measure.devices import cpu_name
from nfl.model import make_mlp
from nfl.tasks import Dataset
from nfl.training import train

LR = 1e-3


def make_runs(method: str, width: int, count: int) -> list[tuple]:
    """``count`` runs of ``method`` on the first layer of a width x width MLP, seeds 0..count-1."""
    sizes = TaskConfig()
    runs = []
    for seed in range(count):
        g = torch.Generator().manual_seed(seed)
        draw = lambda n, g=g: torch.randn(n, width, generator=g)  # noqa: E731
        data = Dataset(draw(sizes.n_train), draw(sizes.n_train), draw(sizes.n_val), draw(sizes.n_val),
                       draw(sizes.test_size), draw(sizes.test_size))
        model = make_mlp(ModelConfig(width=width), seed)
        runs.append((model, adapters.attach(model, method, "layer1", seed=seed), data))
    return runs


def run_sequential(runs: list[tuple], epochs: int) -> None:
    for model, hooks, data in runs:
        train(model, data, epochs, LR, hooks)


def run_batched(runs: list[tuple], epochs: int) -> None:
    models, hooks, data = map(list, zip(*runs))
    train_batched(models, hooks, data, epochs, [LR] * len(runs))


def measure(method: str, width: int, counts: list[int], epochs: int, repeats: int) -> list[tuple[int, float, float]]:
    """(K, sequential, batched) seconds per run-step, medians of interleaved repeats."""
    sequential_runs = make_runs(method, width, 2)
    batched_runs = {k: make_runs(method, width, k) for k in counts}
    run_sequential(sequential_runs, 2)  # warm-up: first calls, lazy state
    for runs in batched_runs.values():
        run_batched(runs, 2)
    sequential, batched = [], {k: [] for k in counts}
    for _ in range(repeats):
        sequential.append(wall_seconds(lambda: run_sequential(sequential_runs, epochs)) / (2 * epochs))
        for k, runs in batched_runs.items():
            batched[k].append(wall_seconds(lambda runs=runs: run_batched(runs, epochs)) / (k * epochs))
    per_run = statistics.median(sequential)
    return [(k, per_run, statistics.median(batched[k])) for k in counts]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default=",".join(adapters.names()), help="comma-separated registry names")
    parser.add_argument("--widths", default="64,256", help="comma-separated MLP widths")
    parser.add_argument("--runs", default="1,8,24,64", help="comma-separated K")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (small models want one)")
    parser.add_argument("--epochs", type=int, default=20, help="steps per timed training")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats per measurement")
    parser.add_argument("--quick", action="store_true", help="width 64, 5 steps, 1 repeat")
    args = parser.parse_args(argv)
    methods = args.methods.split(",")
    for name in methods:
        adapters.get(name)  # an unknown name fails here, before any work
    widths = [64] if args.quick else [int(w) for w in args.widths.split(",")]
    epochs, repeats = (5, 1) if args.quick else (args.epochs, args.repeats)
    counts = [int(k) for k in args.runs.split(",")]

    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {os.cpu_count()} CPUs "
          f"({cpu_name()}), load {os.getloadavg()[0]:.1f}; "
          f"wall time (nfl.measure.clocks), medians of {repeats} interleaved repeat(s) of {epochs} steps")
    print(f"{'method':10} {'width':>5} {'K':>3} {'sequential ms':>14} {'batched ms':>11} {'ratio':>6}")
    for width in widths:
        for name in methods:
            for k, sequential, batched in measure(name, width, counts, epochs, repeats):
                times = f"{sequential * 1e3:14.3f} {batched * 1e3:11.3f} {sequential / batched:6.1f}"
                print(f"{name:10} {width:5} {k:3} {times}", flush=True)


if __name__ == "__main__":
    main()
