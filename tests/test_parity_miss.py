"""MiSS^e against Hugging Face PEFT's MissLinear (default ``init_weights=True``): same outputs,
same gradients w.r.t. D (PEFT's ``miss_block``), same merged weight, padded case included."""

import pytest
import torch

pytest.importorskip("peft")

import adapters  # noqa: E402
from tests.conftest import TwoLayer, perturb_  # noqa: E402
from tests.peft_parity import TOLERANCE, assert_parity, copy_into, peft_layer  # noqa: E402

pytestmark = pytest.mark.slow  # whole studies / reference parity: the full suite only


@pytest.mark.parametrize("rank", [4, 5, 3, 16])  # in_features = 16: 5 and 3 exercise the zero padding
def test_miss_e_matches_peft(rank: int) -> None:
    import peft

    layer = TwoLayer(torch.float64).layer1
    ours = adapters.build("miss_e", layer, rank=rank, seed=0)
    perturb_(ours)
    _, theirs = peft_layer(layer, peft.MissConfig(r=rank))
    assert theirs.miss_fn is True  # PEFT's default, efficient MiSS
    pairs = [(ours.D, theirs.miss_block["default"])]
    copy_into(pairs)
    x = torch.randn(9, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert_parity(ours, theirs, pairs, x)
    # PEFT's merge returns the full weight, and writes into the tensor it is given: pass a copy.
    with torch.no_grad():
        merged = theirs.get_delta_weight_miss("default", layer.weight.detach().clone())
    assert (ours.merged_weight() - merged).abs().max() <= TOLERANCE
