"""Time of one training step against trainable parameters: every method at ranks 1 ... 64.

One full optimisation step (zero_grad, forward, loss with regularisers, backward, Adam step,
on_step hooks) after warm-up, in interleaved rounds (nfl.measure.rounds); beside it the bytes of
trainable parameters, gradients and Adam state, and on CUDA the measured peak memory of a step.
The summary checks the measurement itself: LoRA and PiSSA take the identical step at equal rank.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from nfl.measure.memory import training_memory
from nfl.measure.prepared import prepared_train_step, train_step_peak_bytes
from nfl.measure.runner import run_timed
from nfl.params import count_trainable
from nfl.sweep import Cell
from nfl.training import first_batch
from nfl.training import prepare as attach_copy
from studies.common import StudySetup
from studies.init_time import timing_main, timing_outputs

SANITY_PAIR = ("lora", "pissa")  # same shapes, same operations in a step: their ratio should be 1
SANITY_RANGE = (0.9, 1.1)


def prepare(setup: StudySetup, cell: Cell) -> tuple[Callable[[], Any], dict]:
    cfg = setup.config
    data, pretrained, _ = setup.pretrained(cell.seed)
    # A step as the adaptation takes it: the testbed's loss on the first step's batch (all of the MLP's data).
    steps = {"step": cfg.train.adapt_epochs // 2, "total_steps": cfg.train.adapt_epochs,
             "loss_fn": setup.testbed.loss_fn, "batch": first_batch(cfg, data.shifted, cell.seed)}
    model, hooks = attach_copy(pretrained, cell.method, cfg, cell.rank, cell.seed)
    memory = training_memory(model).to_dict()
    # Only CUDA reports a measured peak; on the CPU it is "unavailable", so build nothing for it.
    peak = None
    if setup.device.type == "cuda":
        peak = train_step_peak_bytes(*attach_copy(pretrained, cell.method, cfg, cell.rank, cell.seed), data.shifted,
                                     cfg.train.lr, setup.device, **steps)
    fn = prepared_train_step(model, hooks, data.shifted, cfg.train.lr, setup.device, **steps)
    fields = {"memory": {**memory, "measured_peak": peak},
              "summary": {"trainable_params": count_trainable(model), "memory_bytes": memory["total"]}}
    return fn, fields


def run(setup: StudySetup, plan: dict | None = None) -> list[dict[str, Any]]:
    return run_timed(setup, "train_time", plan, lambda cell: prepare(setup, cell))


def sanity_ratios(records: list[dict[str, Any]]) -> dict[int, float]:
    """rank -> LoRA's step time (its fastest round) over PiSSA's, at every rank both were timed."""
    costs = {(r["method"], r["rank"]): r["timing"]["fastest_s"] for r in records}
    a, b = SANITY_PAIR
    return {rank: costs[(a, rank)] / costs[(b, rank)] for (m, rank) in costs if m == a and (b, rank) in costs}


def checks(records: list[dict[str, Any]]) -> list[str]:
    """The sanity pair, and what the CPU cannot measure."""
    lines = []
    ratios = sanity_ratios(records)
    if ratios:
        low, high = SANITY_RANGE
        outside = [r for r, v in ratios.items() if not low <= v <= high]
        off = ", ".join(map(str, outside))
        verdict = f"OUTSIDE at r={off}: the measurement is off;" if outside else "all within"
        text = ", ".join(f"r={r} {v:.3f}" for r, v in sorted(ratios.items()))
        lines.append(f"sanity: LoRA/PiSSA step time at equal rank (identical math): {text} -- {verdict} {low}-{high}")
    if any(r["memory"]["measured_peak"] is None for r in records):
        lines.append("cannot measure: a step's peak memory on the CPU (torch keeps no CPU allocator statistics); "
                     "the memory column is computed from parameters, gradients and Adam state")
    return lines


STORES = ("train_time",)
outputs = timing_outputs("train_time", "Training-step time", "step ms", "step", checks)


def main(argv: Sequence[str] | None = None) -> None:
    timing_main(argv, "train_time", __doc__.splitlines()[0], run, outputs)


if __name__ == "__main__":
    main()
