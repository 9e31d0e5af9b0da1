"""VeRA against Hugging Face PEFT's VeraModel: same projections, same outputs, same gradients."""

import copy

import pytest
import torch

pytest.importorskip("peft")

import adapters  # noqa: E402
from tests.conftest import TwoLayer, perturb_  # noqa: E402
from tests.peft_parity import assert_parity, copy_into, peft_layer  # noqa: E402

pytestmark = pytest.mark.slow  # whole studies / reference parity: the full suite only


def _x() -> torch.Tensor:
    return torch.randn(9, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


@pytest.mark.parametrize("rank,d_initial,projection_seed", [(64, 0.1, 0), (3, 0.5, 7)])
def test_vera_matches_peft(rank: int, d_initial: float, projection_seed: int) -> None:
    import peft

    layer = TwoLayer(torch.float64).layer1
    ours = adapters.build("vera", layer, rank=rank, seed=0, d_initial=d_initial, projection_seed=projection_seed)
    config = peft.VeraConfig(r=rank, d_initial=d_initial, projection_prng_key=projection_seed)
    _, theirs = peft_layer(layer, config)
    # The same frozen projections bit for bit (same generator, bounds and order), and the same init.
    assert torch.equal(ours.vera_A, theirs.vera_A["default"]) and torch.equal(ours.vera_B, theirs.vera_B["default"])
    assert torch.equal(ours.lambda_b, theirs.vera_lambda_b["default"])
    # PEFT fills lambda_d in float32 before casting to float64 (0.1 -> 0.10000000149): float32 rounding.
    assert (ours.lambda_d - theirs.vera_lambda_d["default"]).abs().max() < 1e-7
    perturb_(ours)
    pairs = [(ours.lambda_b, theirs.vera_lambda_b["default"]), (ours.lambda_d, theirs.vera_lambda_d["default"])]
    copy_into(pairs)
    assert_parity(ours, theirs, pairs, _x())


def test_vera_on_two_layers_of_different_shapes_matches_peft() -> None:
    import peft

    model = TwoLayer(torch.float64)
    theirs = peft.get_peft_model(copy.deepcopy(model), peft.VeraConfig(r=5, target_modules=["layer1", "layer2"]))
    ours = adapters.attach(model, "vera", ["layer1", "layer2"], rank=5, projection_seed=0)  # PEFT's default key
    peft_layers = [theirs.base_model.model.layer1, theirs.base_model.model.layer2]
    # PEFT also sizes the shared projections to the largest layer and slices them per layer.
    for adapter in ours:
        assert torch.equal(adapter.vera_A, peft_layers[0].vera_A["default"])
        assert torch.equal(adapter.vera_B, peft_layers[0].vera_B["default"])
    perturb_(model)
    pairs = [(mine.lambda_b, layer.vera_lambda_b["default"]) for mine, layer in zip(ours, peft_layers)]
    pairs += [(mine.lambda_d, layer.vera_lambda_d["default"]) for mine, layer in zip(ours, peft_layers)]
    copy_into(pairs)
    assert_parity(model, theirs, pairs, _x())
