"""The anatomy of each update: ΔW as a picture, its singular values, and where it sits in W0's spectrum.

Pretrains once per seed and adapts a copy with every method (default ranks) from the same weights and
data, then looks at ΔW = W' - W0 of the first adapted layer (full fine-tuning: that layer's weight
change). Writes ``anatomy.{png,pdf}`` (per method, the ΔW heatmap of the first seed on one shared
colour scale above its singular values, the rank bound marked), ``subspace.{png,pdf}`` (the
normalised subspace similarity of ΔW's top-r left singular subspace with W0's top-r, bottom-r and a
random r-dimensional subspace, mean ± 95% CI over seeds; MiLoRA §5.3) and a table with LoRA's §7.3
amplification factor (MiLoRA Table 7).

The rank bound is measured, not declared: the rank ΔW reaches for random values of the method's
trainable parameters (``nfl.subspace.update_rank_bound``). The subspace rank r is the same for every
method (``--subspace-rank``), capped by its rank bound, so that the bars compare.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from copy import deepcopy
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import adapters
from nfl import seeds
from nfl.model import target_layer_names
from nfl.selection import at_tuned_lr, run_summary
from nfl.subspace import (
    amplification,
    bottom_left_singular_vectors,
    merged_weight_of,
    random_subspace,
    rounding_level,
    subspace_similarity,
    top_singular_vectors,
    update_rank,
    update_rank_bound,
)
from nfl.sweep import Cell
from nfl.training import adapt
from studies.common import StudySetup, format_table, group_summaries, study_parser
from studies.outputs import Outputs, Stores, config_of, seed_count

STORED_DIGITS = 3  # significant digits of the stored ΔW: a heatmap shows no more


def rank_bound(method: str, rank: int | None, seed: int, layer: nn.Linear) -> int:
    """The most ΔW's rank can be with ``method`` on ``layer``: :func:`update_rank_bound` on the
    adapter built from run ``seed``'s stream for the method, or on a trainable copy of the layer
    for full fine-tuning."""
    if adapters.get(method).adapter is None:
        module: nn.Module = deepcopy(layer).requires_grad_(True)
    else:
        module = adapters.build(method, layer, rank=rank, seed=seeds.derive(seed, "adapter", method))
    return update_rank_bound(module, seeds.generator(seed, "anatomy", "rank bound"))


def subspace_summary(W0: torch.Tensor, delta: torch.Tensor, r: int, generator: torch.Generator) -> dict[str, float]:
    """phi of ΔW's top-r left singular subspace with W0's top-r, bottom-r and a random one (MiLoRA
    §5.3), and the amplification of W0's directions in ΔW's top-r subspace (LoRA §7.3)."""
    U, _ = top_singular_vectors(delta, r)
    return {
        "phi_top": subspace_similarity(U, top_singular_vectors(W0, r)[0]),
        "phi_bottom": subspace_similarity(U, bottom_left_singular_vectors(W0, r)),
        "phi_random": subspace_similarity(U, random_subspace(W0.shape[0], r, generator)),
        **amplification(W0, delta, r).to_dict(),
    }


def compute(setup: StudySetup, cell: Cell, subspace_rank: int) -> dict[str, Any]:
    """Adapt with one method; ΔW of the first adapted layer, its spectrum, rank bound and subspaces."""
    data, pretrained, _ = setup.pretrained(cell.seed)
    result = adapt(pretrained, cell.method, setup.config, data.shifted, rank=cell.rank, seed=cell.seed, lr=cell.lr)
    if result.history.diverged_at is not None:  # no finite ΔW to look at
        return {"summary": {"trainable_params": result.trainable_params, "diverged_at": result.history.diverged_at}}
    layer = target_layer_names(setup.config.targets)[0]
    base = pretrained.get_submodule(layer)
    W0 = base.weight.detach().cpu()
    with torch.no_grad():
        delta = merged_weight_of(result.model.get_submodule(layer)).detach().cpu() - W0
    bound = rank_bound(cell.method, cell.rank, cell.seed, base)
    r = min(subspace_rank, bound)
    summary = {
        "trainable_params": result.trainable_params,
        **run_summary(result.history),
        "layer": layer,
        "rank_bound": bound,
        "delta_rank": update_rank(delta, W0),
        "rounding_level": rounding_level(delta, W0),
        "subspace_rank": r,
        **subspace_summary(W0, delta, r, seeds.generator(cell.seed, "anatomy", "random subspace")),
    }
    return {
        "summary": summary,
        "singular_values": torch.linalg.svdvals(delta.double()).tolist(),
        "delta_weight": [[float(f"{v:.{STORED_DIGITS}g}") for v in row] for row in delta.tolist()],
    }


def run(setup: StudySetup, subspace_rank: int) -> list[dict[str, Any]]:
    """Every (method, default rank, seed, grid lr) cell, computed or read back from ``<out>/anatomy.jsonl``."""
    cells = [cell for group in setup.groups("anatomy") for cell in group]
    return setup.run("anatomy", lambda cell: compute(setup, cell, subspace_rank), cells)


TABLE = (
    ("rank_bound", "rank bound", "{:.3g}"),  # means over seeds: MoS's bound can differ between seeds
    ("delta_rank", "rank(ΔW)", "{:.3g}"),
    ("subspace_rank", "r", "{:.3g}"),
    ("phi_top", "φ top-r", "{:.2f}"),
    ("phi_bottom", "φ bottom-r", "{:.2f}"),
    ("phi_random", "φ random", "{:.2f}"),
    ("delta", "‖ΔW‖_F", "{:.3f}"),
    ("projected_delta", "‖UᵀΔWV‖_F", "{:.3f}"),
    ("projected_W0", "‖UᵀW0V‖_F", "{:.3f}"),
    ("amplification", "amplification", "{:.1f}"),
)


def summary_table(records: list[dict[str, Any]]) -> str:
    """One row per method: each column's mean over the seeds that did not diverge."""
    rows = []
    for (method, rank), summaries in group_summaries(records).items():
        row = {"method": adapters.get(method).label, "rank": "-" if rank is None else str(rank)}
        finite = [s for s in summaries if s.get("diverged_at") is None]
        for key, column, fmt in TABLE:
            row[column] = fmt.format(np.mean([s[key] for s in finite])) if finite else "diverged"
        rows.append(row)
    return format_table(rows, ["method", "rank", *(column for _, column, _ in TABLE)])


def parser() -> argparse.ArgumentParser:
    out = study_parser("anatomy", __doc__.splitlines()[0])
    out.add_argument(
        "--subspace-rank", type=int, default=2,
        help="r of the subspace analysis, the same for every method (capped by its rank bound); default 2",
    )
    return out


STORES = ("anatomy",)


def outputs(stores: Stores, out: Path) -> Outputs:
    """The table, ``anatomy.{png,pdf}`` and ``subspace.{png,pdf}``: ΔW of each method at its tuned lr."""
    from figures.anatomy import anatomy_figure, subspace_figure
    from figures.records import diverged_note
    from figures.style import save  # here: matplotlib costs a second of every start-up

    cfg = config_of(stores["anatomy"])
    records = at_tuned_lr(stores["anatomy"])
    title = f"preset {cfg.preset}, width {cfg.model.width}, layer {target_layer_names(cfg.targets)[0]}"
    note = diverged_note(records)
    paths = [*save(anatomy_figure(records, title), out / "anatomy", note),
             *save(subspace_figure(records, title), out / "subspace", note)]
    heading = (f"mean over {seed_count(stores['anatomy'])} seed(s); U, V: ΔW's top-r singular vectors; "
               "amplification = ‖ΔW‖_F / ‖UᵀW0V‖_F")
    return {"anatomy": heading + "\n" + summary_table(records)}, paths


def main(argv: Sequence[str] | None = None) -> None:
    cli = parser()
    setup = StudySetup(cli, argv, testbeds_supported=("mlp",))  # it names one of the MLP's layers
    if setup.args.subspace_rank < 1:
        cli.error(f"--subspace-rank must be a positive integer, got {setup.args.subspace_rank}")
    setup.show(outputs({"anatomy": run(setup, setup.args.subspace_rank)}, setup.out), [setup.out / "anatomy.jsonl"])


if __name__ == "__main__":
    main()
