"""DoRA against its formula written out: W' = diag(m / ||W0 + s B A||_row) (W0 + s B A), norm detached."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import adapters
from tests.conftest import TwoLayer, perturb_

# float64: the same formula evaluated in a different order differs by rounding, ~1e-15; a missing
# rescale, a column-wise norm or a rescaled bias is off by O(0.1).
EXACT = 1e-12


def perturbed_dora(rank: int = 2):
    layer = TwoLayer(torch.float64).layer1
    adapter = adapters.build("dora", layer, rank=rank, alpha=3.0, seed=0)
    perturb_(adapter)
    x = torch.randn(7, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return layer, adapter, x


def written_out(adapter, x: torch.Tensor, detach_norm: bool) -> torch.Tensor:
    V = adapter.base_weight + adapter.scaling * adapter.lora_B @ adapter.lora_A
    norm = V.norm(dim=1, keepdim=True)
    if detach_norm:
        norm = norm.detach()
    return x @ (adapter.magnitude[:, None] * V / norm).T + adapter.bias


def test_magnitude_starts_at_the_row_norms_of_w0() -> None:
    layer = TwoLayer(torch.float64).layer1
    adapter = adapters.build("dora", layer)
    assert adapter.magnitude.shape == (12,)
    assert (adapter.magnitude - layer.weight.detach().norm(dim=1)).abs().max() < EXACT


def test_merged_rows_have_norm_m() -> None:
    _, adapter, _ = perturbed_dora()
    # |m|: the perturbation makes some entries of m negative, and those rows point the other way.
    assert (adapter.merged_weight().norm(dim=1) - adapter.magnitude.abs()).abs().max() < EXACT


def test_forward_equals_the_formula_written_out() -> None:
    _, adapter, x = perturbed_dora()
    assert (adapter(x) - written_out(adapter, x, detach_norm=True)).abs().max() < EXACT


def test_bias_is_not_rescaled() -> None:
    layer = TwoLayer(torch.float64).layer1
    adapter = adapters.build("dora", layer)
    with torch.no_grad():
        adapter.magnitude.mul_(2.0)  # B = 0: W' = 2 W0, and the bias stays b
    x = torch.randn(5, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert (adapter(x) - F.linear(x, 2.0 * layer.weight, layer.bias)).abs().max() < EXACT


def test_gradients_treat_the_norm_as_a_constant() -> None:
    _, adapter, x = perturbed_dora()
    params = [adapter.lora_A, adapter.lora_B, adapter.magnitude]

    def grads(out: torch.Tensor) -> list[torch.Tensor]:
        return torch.autograd.grad(out.pow(2).sum(), params)

    ours, detached, through_norm = (
        grads(adapter(x)),
        grads(written_out(adapter, x, True)),
        grads(written_out(adapter, x, False)),
    )
    for mine, reference in zip(ours, detached):
        assert (mine - reference).abs().max() < 1e-10  # gradients of O(10): rounding ~1e-13
    # The detachment is visible: differentiating through the norm changes A's and B's gradients.
    assert (ours[0] - through_norm[0]).abs().max() > 1e-3
