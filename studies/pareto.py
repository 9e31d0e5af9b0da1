"""The main study: the MiSS paper's Figures 1 and 2, the Pareto view, and one summary table.

Runs adaptability (every method at its default rank, several seeds, every learning rate of the
grid), the initial gradient norm, init time and train-step time (ranks 1 ... 64), then writes
figure1 (initial gradient norms), figure2 (test-loss curves at each method's tuned learning rate;
init time and step time vs trainable parameters), pareto (test loss at the tuned learning rate vs
parameters and vs step time, non-dominated methods joined) and a table.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

import adapters
from nfl import testbeds
from nfl.measure import runner
from nfl.measure.rounds import format_ms, noisy_line
from nfl.nodes import by_node_kind
from nfl.selection import at_tuned_lr, tune
from studies import adaptability, grad_norm, init_time, train_time
from studies.common import SWEEP_RANKS, StudySetup, format_table, quality_cell, study_parser
from studies.outputs import Outputs, Stores, config_of, seed_count

# Quality over 10 seeds: at each method's tuned lr (width 64, out_of_span) the ×/÷ 95% factor of the
# geometric mean test loss reached ×8.5 at 3 seeds (an order of magnitude across the interval), ×2.3 at
# 5 and ×1.5 at 10 (LoRA, MiLoRA, MiSS^e; the narrowest methods ×1.03-1.1 at 10).
SEEDS = 10

def summary_table(adapt: list[dict[str, Any]], init: list[dict[str, Any]], train: list[dict[str, Any]]) -> str:
    """One row per method at its default rank and tuned learning rate: quality over seeds (test
    loss at the selected step), costs from the sweeps."""
    init_ms = {(r["method"], r["rank"]): format_ms(r["timing"]) for r in init}  # as the footer says: median beside
    step = {(r["method"], r["rank"]): r for r in train}
    rows = []
    for tuned in tune(adapt):
        key, runs = (tuned.method, tuned.rank), [r["summary"] for r in tuned.records]
        timed = step.get(key)
        if not runs:
            rows.append({"method": adapters.get(key[0]).label, "tuned lr": "every lr diverged on some seed"})
            continue
        rows.append({
            "method": adapters.get(key[0]).label,
            "rank": "-" if key[1] is None else key[1],
            "params": f"{runs[0]['trainable_params']:,}",
            "tuned lr": f"{tuned.lr:.3g}",
            "test loss": quality_cell(runs, "test_loss"),
            "forgetting": quality_cell(runs, "forgetting_base_test_loss"),
            "init ms": init_ms.get(key, "-"),
            "step ms": format_ms(timed["timing"]) if timed else "-",
            "memory KiB": f"{timed['memory']['total'] / 1024:.1f}" if timed else "-",
            "grad norm": quality_cell(runs, "initial_grad_norm", digits=5),
        })
    columns = [
        "method",
        "rank",
        "params",
        "tuned lr",
        "test loss",
        "forgetting",
        "init ms",
        "step ms",
        "memory KiB",
        "grad norm",
    ]
    return format_table(rows, columns)


STORES = ("adaptability", "grad_norm", "init_time", "train_time")


def outputs(stores: Stores, out: Path) -> Outputs:
    """Figure 1, Figure 2 and the Pareto view (a pair per kind of node when the timings come from
    several: they compare only within one), and the table with the timing checks."""
    from figures.grad_norm import grad_norm_figure
    from figures.pareto import figure2, pareto_figure
    from figures.records import diverged_note
    from figures.style import save  # here: matplotlib costs a second of every start-up

    adapt, grads, init, train = (stores[name] for name in STORES)
    cfg = config_of(adapt)
    testbed = testbeds.get(cfg.testbed)
    zero = float(np.mean([r["summary"]["shifted_zero_loss"] for r in adapt]))
    tuned = at_tuned_lr(adapt)
    note = diverged_note(tuned)
    paths = [*save(grad_norm_figure(grads, cfg), out / "figure1", diverged_note(grads))]
    init_by, train_by = by_node_kind(init), by_node_kind(train)
    kinds = list(dict.fromkeys([*init_by, *train_by]))
    lines = ["\n".join(adaptability.report(adapt).split("\n")[:3]), summary_table(adapt, init, train)]
    if len(kinds) > 1:
        listed = "; ".join(f"{i + 1}: {kind}" for i, kind in enumerate(kinds))
        lines.append(
            f"note: timings from {len(kinds)} kinds of node, drawn apart (figure2_nodeN, pareto_nodeN): {listed}"
        )
    for i, kind in enumerate(kinds):
        timed_init, timed_train = init_by.get(kind, []), train_by.get(kind, [])
        threads = timed_train[0]["timing"]["num_threads"] if timed_train else "?"
        subtitle = (f"testbed {cfg.testbed}, preset {cfg.preset}, width {cfg.width}, {seed_count(adapt)} seed(s), "
                    f"{kind} ({threads} thread{'' if threads == 1 else 's'}){runner.quick_note(timed_train)}")
        stem = "" if len(kinds) == 1 else f"_node{i + 1}"
        labels = {"metric": testbed.METRIC}
        paths += save(figure2(tuned, timed_init, timed_train, subtitle, zero, reference=testbed.REFERENCE, **labels),
                      out / f"figure2{stem}", note)
        paths += save(pareto_figure(tuned, timed_train, subtitle, **labels), out / f"pareto{stem}", note)
    if train:  # how far the step times can be trusted: the LoRA/PiSSA sanity pair, what the CPU cannot measure
        checks = [*runner.checks(train), *train_time.checks(train)]
        lines.append("\n".join(["", *checks, noisy_line(train, train[0]["timing"]["num_threads"])]))
    return {"pareto": "\n".join(lines)}, paths


def main(argv: Sequence[str] | None = None) -> None:
    parser = study_parser("pareto", __doc__.splitlines()[0], ranks_help=",".join(map(str, SWEEP_RANKS)),
                          seeds=SEEDS)
    runner.add_rounds_argument(parser)
    setup = StudySetup(parser, argv, default_ranks=SWEEP_RANKS)
    defaults = setup.plan(None)
    # The sweeps always include each method's default rank, so the Pareto view can place it.
    sweep = {m: sorted(set(setup.method_ranks[m]) | set(defaults[m]), key=lambda r: -1 if r is None else r)
             for m in setup.methods}
    stores = {
        "adaptability": adaptability.run(setup, defaults),
        "grad_norm": grad_norm.run(setup, setup.cells("grad_norm", plan=sweep)),
        "init_time": init_time.run(setup, sweep),
        "train_time": train_time.run(setup, sweep),
    }
    setup.show(outputs(stores, setup.out), [setup.out / f"{name}.jsonl" for name in STORES])


if __name__ == "__main__":
    main()
