"""LoRA against Hugging Face PEFT's LoraLayer: same outputs, same gradients."""

import pytest
import torch

pytest.importorskip("peft")

import adapters  # noqa: E402
from tests.conftest import TwoLayer, perturb_  # noqa: E402
from tests.peft_parity import assert_parity, copy_into, peft_layer  # noqa: E402

pytestmark = pytest.mark.slow  # whole studies / reference parity: the full suite only


@pytest.mark.parametrize("rank,alpha", [(2, None), (3, 7.0)])
def test_lora_matches_peft(rank: int, alpha: float | None) -> None:
    import peft

    layer = TwoLayer(torch.float64).layer1
    ours = adapters.build("lora", layer, rank=rank, alpha=alpha, seed=0)
    perturb_(ours)
    _, theirs = peft_layer(layer, peft.LoraConfig(r=rank, lora_alpha=rank if alpha is None else alpha))
    pairs = [(ours.lora_A, theirs.lora_A["default"].weight), (ours.lora_B, theirs.lora_B["default"].weight)]
    copy_into(pairs)
    x = torch.randn(9, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert_parity(ours, theirs, pairs, x)
