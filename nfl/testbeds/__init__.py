"""Testbeds: the unit the pipeline pretrain -> shift -> adapt runs on.

A testbed gives the pipeline its data (a base and a shifted task, each with train / validation /
test), its model, its loss and the metric's name, the reference a pretrained model must clear, the
layers adapters wrap by default and how a step draws its batch. ``mlp`` is the MLP fitting a shifted
sine (the MiSS paper's experiment); ``gpt`` a byte-level GPT pretrained on English and adapted to
Python source (:mod:`nfl.testbeds.gpt`). ``get(cfg.testbed)`` is how the rest of nfl reaches one.
"""

from __future__ import annotations

from types import ModuleType

from nfl.config import ExperimentConfig


def get(name: str) -> ModuleType:
    """The testbed module ``name`` (``mlp`` or ``gpt``); each defines the same functions and constants:
    NAME, METRIC, REFERENCE, CACHE_PRETRAINING, SHARPNESS_TOL, loss_fn, resolve, make_data,
    make_model, meta_model, target_modules, reference, batches, eval_every, example_batch."""
    from nfl.testbeds import gpt, mlp

    testbeds = {"mlp": mlp, "gpt": gpt}
    if name not in testbeds:
        raise ValueError(f"unknown testbed {name!r}; choose one of: {', '.join(testbeds)}")
    return testbeds[name]


def adapted_shapes(cfg: ExperimentConfig) -> list[tuple[int, int]]:
    """(out, in) of each layer the config's targets select, read from its model built on the meta device."""
    import adapters

    testbed = get(cfg.testbed)
    model = testbed.meta_model(cfg)
    names = adapters.target_names(model, testbed.target_modules(cfg))
    return [(model.get_submodule(n).out_features, model.get_submodule(n).in_features) for n in names]
