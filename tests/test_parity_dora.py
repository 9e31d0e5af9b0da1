"""DoRA against Hugging Face PEFT (``use_dora=True``): same magnitude at init, same outputs and gradients."""

import pytest
import torch

pytest.importorskip("peft")

import adapters  # noqa: E402
from tests.conftest import TwoLayer, perturb_  # noqa: E402
from tests.peft_parity import TOLERANCE, assert_parity, copy_into, peft_layer  # noqa: E402

pytestmark = pytest.mark.slow  # whole studies / reference parity: the full suite only


@pytest.mark.parametrize("rank,alpha", [(1, None), (3, 7.0)])
def test_dora_matches_peft(rank: int, alpha: float | None) -> None:
    import peft

    layer = TwoLayer(torch.float64).layer1
    ours = adapters.build("dora", layer, rank=rank, alpha=alpha, seed=0)
    _, theirs = peft_layer(layer, peft.LoraConfig(r=rank, lora_alpha=rank if alpha is None else alpha, use_dora=True))
    magnitude = theirs.lora_magnitude_vector["default"].weight
    # At init both magnitudes are the row norms of W0 (B = 0 on both sides).
    assert (ours.magnitude - magnitude).abs().max() <= TOLERANCE
    perturb_(ours)
    pairs = [
        (ours.lora_A, theirs.lora_A["default"].weight),
        (ours.lora_B, theirs.lora_B["default"].weight),
        (ours.magnitude, magnitude),
    ]
    copy_into(pairs)
    x = torch.randn(9, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert_parity(ours, theirs, pairs, x)
