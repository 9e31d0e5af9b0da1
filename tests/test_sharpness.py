"""λ_max by power iteration on Hessian-vector products against the exact Hessian's top eigenvalue."""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call

import adapters
from adapters.base import merged
from nfl.sharpness import lambda_max, top_eigenvalue
from tests.conftest import TwoLayer, perturb_


def exact_lambda_max(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """The top eigenvalue of the dense Hessian over the trainable parameters, adapters merged."""
    params = dict(model.named_parameters())
    names = [n for n, p in params.items() if p.requires_grad]
    shapes = [params[n].shape for n in names]

    def loss(vector: torch.Tensor) -> torch.Tensor:
        chunks = torch.split(vector, [s.numel() for s in shapes])
        trainable = {n: c.reshape(s) for n, c, s in zip(names, chunks, shapes)}
        return (functional_call(model, {**params, **trainable}, (x,)) - y).pow(2).mean()

    with merged(model):
        hessian = torch.autograd.functional.hessian(loss, torch.cat([params[n].detach().reshape(-1) for n in names]))
    assert torch.allclose(hessian, hessian.T, atol=1e-12)
    return float(torch.linalg.eigvalsh(hessian).max())


@pytest.mark.parametrize("method", ["lora", "dora", "full"])
def test_power_iteration_finds_the_exact_top_eigenvalue(method: str) -> None:
    torch.set_num_threads(1)  # tiny operators: more threads only add overhead (restored by conftest)
    model = TwoLayer(dtype=torch.float64)
    adapters.attach(model, method, ["layer1", "layer2"], rank=None if method == "full" else 2, seed=3)
    if method == "dora":
        perturb_(model, scale=0.3)  # off the init, where the norm's own curvature shows
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20, 16, generator=g, dtype=torch.float64)
    y = torch.randn(20, 10, generator=g, dtype=torch.float64)
    exact = exact_lambda_max(model, x, y)
    found = lambda_max(model, x, y, torch.Generator().manual_seed(1), iterations=3000, tol=1e-10)
    assert exact > 0
    assert found == pytest.approx(exact, rel=1e-3)


@pytest.mark.parametrize(
    "eigenvalues, top",
    [((-5.0, 1.0, 0.5), 1.0), ((3.0, -3.0, 1.0), 3.0), ((-2.0, -1.0), -1.0), ((4.0, 1.0, -1.0), 4.0)],
)
def test_top_eigenvalue_is_the_largest_not_the_largest_in_magnitude(eigenvalues: tuple, top: float) -> None:
    g = torch.Generator().manual_seed(0)
    basis, _ = torch.linalg.qr(torch.randn(len(eigenvalues), len(eigenvalues), generator=g, dtype=torch.float64))
    matrix = basis @ torch.diag(torch.tensor(eigenvalues, dtype=torch.float64)) @ basis.T
    start = torch.randn(len(eigenvalues), generator=g, dtype=torch.float64)
    assert top_eigenvalue(lambda v: matrix @ v, start, iterations=5000, tol=1e-12) == pytest.approx(top, rel=1e-6)
