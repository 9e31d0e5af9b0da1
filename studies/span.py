"""Where each shift family's needed update lies: its share in W0's top-r and bottom-r singular subspaces.

Per shift family, seed and layer: full fine-tuning's dW of the layer, and for the output layer also
the least-squares dW (:func:`nfl.span.least_squares_update`), measured against the pretrained
weight's top-r (PiSSA's) and bottom-r (MiLoRA's) subspaces; mean over seeds, beside the shares a
random subspace would get. Prints a table; computes nothing else, stores nothing.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence, get_args

import torch

from nfl.config import ExperimentConfig, Shift
from nfl.span import least_squares_update, random_baseline, span_fractions
from nfl.tasks import make_task_data
from nfl.training import adapt, pretrain
from studies.common import StudySetup, format_table, study_parser

KEYS = ("left", "right", "core", "tangent")


def needed_updates(cfg: ExperimentConfig, seed: int) -> list[tuple[str, str, torch.Tensor, torch.Tensor]]:
    """(layer, source, W0, dW) for one seed: full fine-tuning's dW per layer, least squares for layer2."""
    data = make_task_data(cfg.task, cfg.model.width, seed)
    model, _ = pretrain(cfg, data, seed)
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


def main(argv: Sequence[str] | None = None) -> None:
    parser = study_parser("span", __doc__.splitlines()[0])
    parser.add_argument("--rank", type=int, default=2, help="r of the singular subspace (default 2: PiSSA's rank)")
    setup = StudySetup(parser, argv)
    rank, rows = setup.args.rank, []
    for shift in get_args(Shift):
        cfg = dataclasses.replace(setup.config, task=dataclasses.replace(setup.config.task, shift=shift))
        shares: dict[tuple[str, str, str], list[dict[str, float]]] = {}
        for seed in setup.seeds:
            for layer, source, w0, delta in needed_updates(cfg, seed):
                for subspace, minor in (("top", False), ("bottom", True)):
                    shares.setdefault((layer, source, subspace), []).append(span_fractions(w0, delta, rank, minor))
        for (layer, source, subspace), values in shares.items():
            mean = {k: f"{sum(v[k] for v in values) / len(values):.3f}" for k in KEYS}
            rows.append({"shift": shift, "layer": layer, "dW from": source, f"subspace r={rank}": subspace, **mean})
    width = setup.config.model.width
    rows.append({"shift": "random subspace", **{k: f"{v:.3f}" for k, v in random_baseline((width, width), rank).items()}})
    print(format_table(rows, ["shift", "layer", "dW from", f"subspace r={rank}", *KEYS]))


if __name__ == "__main__":
    main()
