"""Sharpness: λ_max of the Hessian of the training loss w.r.t. the trainable parameters.

"Learning Rate Matters" (Lee et al., 2026) finds each method's best learning rate tracking the
largest Hessian eigenvalue at initialisation (a stable step needs lr ≲ 2 / λ_max). Computed by power
iteration on Hessian-vector products (double backward through the kept gradient graph), never
forming H. The loss is the testbed's task loss on the training samples, as in
:func:`adapters.step.objective` but without the regularisers (their curvature is not the data's).
Each adapter is evaluated through its ``merged_weight()``: the same function, but without
gradient tricks such as DoRA's detached norm (§4.3), which would make the "Hessian" the Jacobian of
a field that is not a gradient, and not symmetric.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from adapters.base import merged
from adapters.step import LossFn

MatVec = Callable[[torch.Tensor], torch.Tensor]


def hessian_matvec(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: LossFn = F.mse_loss
) -> tuple[MatVec, int]:
    """(v -> H v on flat vectors, number of trainable parameters) of ``loss_fn(model(x), y)``; call it
    inside ``adapters.merged(model)``.

    The gradient is taken once with its graph kept (``create_graph``); each product is then one
    backward pass through it, ∂(∇L · v)/∂θ. ``torch.func``'s jvp of grad computes the same product,
    but through forward-mode decompositions it took ~27 ms a product on the width-64 MLP against
    ~1 ms here, and a study takes hundreds."""
    params = [p for p in model.parameters() if p.requires_grad]
    sizes = [p.numel() for p in params]
    with torch.enable_grad():
        loss = loss_fn(model(x), y)
        gradient = torch.autograd.grad(loss, params, create_graph=True)

    def matvec(v: torch.Tensor) -> torch.Tensor:
        parts = [c.view_as(p) for c, p in zip(torch.split(v, sizes), params)]
        products = torch.autograd.grad(gradient, params, grad_outputs=parts, retain_graph=True, allow_unused=True)
        return torch.cat([(h if h is not None else torch.zeros_like(p)).reshape(-1) for h, p in zip(products, params)])

    return matvec, sum(sizes)


def _power(
    matvec: MatVec, v: torch.Tensor, shift: float, iterations: int, tol: float
) -> tuple[float, float, torch.Tensor]:
    """Power iteration on M + shift·I from unit ``v``: (Rayleigh quotient, ‖(M + shift·I) v‖, last v)."""
    rayleigh = norm = float("nan")
    for _ in range(iterations):
        w = matvec(v) + shift * v
        new, norm = float(v @ w), float(w.norm())
        if norm == 0:
            return 0.0, 0.0, v
        v = w / norm
        done = abs(new - rayleigh) <= tol * abs(new)
        rayleigh = new
        if done:
            break
    return rayleigh, norm, v


def top_eigenvalue(matvec: MatVec, start: torch.Tensor, iterations: int = 300, tol: float = 1e-6) -> float:
    """The largest eigenvalue of a symmetric operator.

    Power iteration converges to the eigenvalue of largest magnitude, which may be negative (or a
    ± pair, where the Rayleigh quotient settles on neither). When the Rayleigh quotient is not the
    spectral radius ρ, iterate again on M + ρ·I (every eigenvalue then ≥ 0) and subtract ρ.
    """
    rayleigh, radius, v = _power(matvec, start / start.norm(), 0.0, iterations, tol)
    if abs(rayleigh - radius) <= 1e-3 * radius:
        return rayleigh
    shifted, _, _ = _power(matvec, v, radius, iterations, tol)
    return shifted - radius


def lambda_max(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator,
    iterations: int = 300, tol: float = 1e-6, loss_fn: LossFn = F.mse_loss,
) -> float:
    """λ_max of the Hessian of the task loss ``loss_fn(model(x), y)`` (the step's objective without
    its regularisers) w.r.t. the trainable parameters, from a random start. Attention runs in its math
    form: a Hessian-vector product differentiates the backward pass, which fused kernels cannot."""
    with merged(model), sdpa_kernel(SDPBackend.MATH):
        matvec, n = hessian_matvec(model, x, y, loss_fn)
        p = next(p for p in model.parameters() if p.requires_grad)
        start = torch.randn(n, generator=generator, dtype=p.dtype).to(p.device)
        return top_eigenvalue(matvec, start, iterations, tol)
