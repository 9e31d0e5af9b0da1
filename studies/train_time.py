"""Time of one training step against trainable parameters: every method at ranks 1 ... 64.

One full optimisation step (zero_grad, forward, loss with regularisers, backward, Adam step,
on_step hooks) after warm-up, median and IQR; beside it the bytes of trainable parameters,
gradients and Adam state, and on CUDA the measured peak memory of a step.
"""

from __future__ import annotations

from typing import Any, Sequence

from nfl.memory import training_memory
from nfl.params import count_trainable
from nfl.sweep import Cell
from nfl.timing import time_train_step, train_step_peak_bytes
from nfl.training import prepare
from studies.common import StudySetup
from studies.init_time import timing_main, timing_options


def compute(setup: StudySetup, cell: Cell) -> dict[str, Any]:
    cfg = setup.config
    data, pretrained, _ = setup.pretrained(cell.seed)

    def fresh() -> tuple:
        return prepare(pretrained, cell.method, cfg, cell.rank, cell.seed)

    model, hooks = fresh()
    memory = training_memory(model).to_dict()
    steps = {"step": cfg.train.adapt_epochs // 2, "total_steps": cfg.train.adapt_epochs}
    timing = time_train_step(model, hooks, data.shifted, cfg.train.lr, setup.device, options=timing_options(setup), **steps)
    # Only CUDA reports a measured peak; on the CPU it is "unavailable", so build nothing for it.
    peak = train_step_peak_bytes(*fresh(), data.shifted, cfg.train.lr, setup.device, **steps) if setup.device.type == "cuda" else None
    params = count_trainable(model)
    return {
        "timing": timing.to_dict(),
        "memory": {**memory, "measured_peak": peak},
        "summary": {"trainable_params": params, "step_ms": 1e3 * timing.median_s, "memory_bytes": memory["total"]},
    }


def run(setup: StudySetup, plan: dict | None = None) -> list[dict[str, Any]]:
    return setup.run("train_time", lambda cell: compute(setup, cell), setup.cells("train_time", setup.seeds[:1], plan))


def main(argv: Sequence[str] | None = None) -> None:
    timing_main(argv, "train_time", __doc__.splitlines()[0], run, "Training-step time", "time per step (ms, median ± IQR/2)", "step ms")


if __name__ == "__main__":
    main()
