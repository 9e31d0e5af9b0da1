"""Where each shift family's needed update lies: its share in W0's top-r and bottom-r singular subspaces.

Per shift family, seed and layer: full fine-tuning's dW of the layer, and for the output layer also
the least-squares dW (:func:`nfl.span.least_squares_update`), measured against the pretrained
weight's top-r (PiSSA's) and bottom-r (MiLoRA's) subspaces; mean over seeds, beside the shares a
random subspace would get. Prints a table; computes nothing else, stores nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import get_args

import torch

from nfl.config import ExperimentConfig, Shift
from nfl.span import least_squares_update, random_baseline, span_fractions
from nfl.tasks import TaskData
from nfl.training import adapt
from studies.common import StudySetup, format_table, study_parser

KEYS = ("left", "right", "core", "tangent")
Update = tuple[str, str, torch.Tensor, torch.Tensor]


def needed_updates(cfg: ExperimentConfig, data: TaskData, model: torch.nn.Module, seed: int) -> list[Update]:
    """(layer, source, W0, dW) for one seed's pretrained ``model``: full fine-tuning's dW per layer,
    least squares for layer2."""
    full = adapt(model, "full", cfg, data.shifted, seed=seed)
    with torch.no_grad():
        hidden = model.act(model.layer1(data.shifted.x_val))
        residual = data.shifted.y_val - model(data.shifted.x_val)
    out = []
    for layer in ("layer1", "layer2"):
        w0 = getattr(model, layer).weight.detach()
        out.append((layer, "full FT", w0, getattr(full.model, layer).weight.detach() - w0))
    out.append(("layer2", "least squares", model.layer2.weight.detach(), least_squares_update(hidden, residual)))
    return out


def mean_shares(setup: StudySetup, rank: int) -> dict[tuple[str, str, str], dict[str, float]]:
    """(layer, dW source, "top" or "bottom") -> the shares of :func:`nfl.span.span_fractions`, mean
    over the setup's seeds, for the setup's shift."""
    shares: dict[tuple[str, str, str], list[dict[str, float]]] = {}
    for seed in setup.seeds:
        data, model, _ = setup.pretrained(seed)
        for layer, source, w0, delta in needed_updates(setup.config, data, model, seed):
            for subspace, minor in (("top", False), ("bottom", True)):
                shares.setdefault((layer, source, subspace), []).append(span_fractions(w0, delta, rank, minor))
    return {key: {k: sum(v[k] for v in values) / len(values) for k in KEYS} for key, values in shares.items()}


def main(argv: Sequence[str] | None = None) -> None:
    parser = study_parser("span", __doc__.splitlines()[0])
    parser.add_argument("--rank", type=int, default=2, help="r of the singular subspace (default 2: PiSSA's rank)")
    setup = StudySetup(parser, argv, testbeds_supported=("mlp",))  # the sine task's shift families
    rank, rows = setup.args.rank, []
    for shift in get_args(Shift):
        family = StudySetup(parser, [*setup.argv, "--shift", shift])
        for (layer, source, subspace), mean in mean_shares(family, rank).items():
            rows.append({"shift": shift, "layer": layer, "dW from": source, f"subspace r={rank}": subspace,
                         **{k: f"{v:.3f}" for k, v in mean.items()}})
    width = setup.config.model.width
    rows.append(
        {"shift": "random subspace", **{k: f"{v:.3f}" for k, v in random_baseline((width, width), rank).items()}}
    )
    print(format_table(rows, ["shift", "layer", "dW from", f"subspace r={rank}", *KEYS]))


if __name__ == "__main__":
    main()
