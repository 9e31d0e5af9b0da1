"""PiSSA against Hugging Face PEFT (``init_lora_weights="pissa"``): same init, same outputs and gradients."""

import copy

import pytest
import torch

pytest.importorskip("peft")

import adapters  # noqa: E402
from tests.conftest import TwoLayer, perturb_  # noqa: E402
from tests.peft_parity import assert_parity, copy_into, peft_layer  # noqa: E402

pytestmark = pytest.mark.slow  # whole studies / reference parity: the full suite only


@pytest.mark.parametrize("rank,alpha", [(2, None), (3, 7.0)])
def test_pissa_matches_peft_forward_and_gradients(rank: int, alpha: float | None) -> None:
    import peft

    layer = TwoLayer(torch.float64).layer1
    ours = adapters.build("pissa", layer, rank=rank, alpha=alpha)
    perturb_(ours)
    _, theirs = peft_layer(layer, peft.LoraConfig(r=rank, lora_alpha=rank if alpha is None else alpha))
    pairs = [(ours.lora_A, theirs.lora_A["default"].weight), (ours.lora_B, theirs.lora_B["default"].weight)]
    # PEFT's PiSSA keeps its residual in the base layer's weight.
    copy_into(pairs + [(ours.residual, theirs.base_layer.weight)])
    x = torch.randn(9, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert_parity(ours, theirs, pairs, x)


@pytest.mark.parametrize("rank,alpha", [(2, None), (4, 2.0)])
def test_pissa_init_matches_peft(rank: int, alpha: float | None) -> None:
    import peft

    # PEFT initialises PiSSA only in float32 (it refuses float64): compare there. Both sides run
    # the same float32 SVD on the same matrix (bitwise equal here); 1e-5, float32 rounding of O(1)
    # values, leaves room for a reordered operation, far below a wrong triplet or scaling (O(0.1)).
    tolerance = 1e-5
    model = TwoLayer(torch.float32)
    ours = adapters.build("pissa", model.layer1, rank=rank, alpha=alpha)
    config = peft.LoraConfig(
        r=rank, lora_alpha=rank if alpha is None else alpha, init_lora_weights="pissa", target_modules=["layer1"]
    )
    theirs = peft.get_peft_model(copy.deepcopy(model), config).base_model.model.layer1
    A, B = theirs.lora_A["default"].weight, theirs.lora_B["default"].weight
    # Singular vectors are defined up to sign: flip row i of A and column i of B together.
    sign = torch.sign((ours.lora_A * A).sum(dim=1))
    assert (ours.lora_A * sign[:, None] - A).abs().max() < tolerance
    assert (ours.lora_B * sign - B).abs().max() < tolerance
    assert (ours.residual - theirs.base_layer.weight).abs().max() < tolerance
    assert ours.scaling == theirs.scaling["default"]
