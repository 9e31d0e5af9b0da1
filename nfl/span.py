"""How much of a needed update lies in the pretrained layer's top-r singular subspace.

With W0 = U S V^T, P = U_r U_r^T (top-r left singular vectors) and Q = V_r V_r^T (right), an update
dW splits into four orthogonal blocks P dW Q, P dW Q_perp, P_perp dW Q, P_perp dW Q_perp, whose
squared Frobenius norms add up to ||dW||_F^2. Their shares give:

* ``core`` = ||P dW Q||^2 / ||dW||^2: the update lies *inside* the top-r subspace on both sides.
* ``left`` = ||P dW||^2 / ||dW||^2 and ``right`` = ||dW Q||^2 / ||dW||^2: one side only.
* ``tangent`` = 1 - ||P_perp dW Q_perp||^2 / ||dW||^2: what a rank-r factorisation B A whose B spans
  U_r and A spans V_r (PiSSA at initialisation) can move to first order, d(BA) = dB A + B dA.

``tangent`` is the one that decides whether PiSSA can follow a shift at all; ``core`` is the strict
"lies in the subspace" reading. A random r-dimensional subspace gets r/d (left, right), (r/d)^2
(core) and 1 - (1 - r/d)^2 (tangent): the baselines printed beside the measurements.
``minor=True`` uses the bottom-r singular vectors instead (MiLoRA's subspace).
"""

from __future__ import annotations

import torch


def singular_projectors(w0: torch.Tensor, rank: int, minor: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """P = U_r U_r^T and Q = V_r V_r^T of the top (or bottom) ``rank`` singular vectors of ``w0``."""
    if not 1 <= rank <= min(w0.shape):
        raise ValueError(f"rank must be in 1 ... {min(w0.shape)}, got {rank}")
    u, _, vh = torch.linalg.svd(w0.double(), full_matrices=False)
    keep = slice(-rank, None) if minor else slice(0, rank)
    u_r, v_r = u[:, keep], vh[keep].T
    return u_r @ u_r.T, v_r @ v_r.T


def span_fractions(w0: torch.Tensor, delta: torch.Tensor, rank: int, minor: bool = False) -> dict[str, float]:
    """Shares of ||delta||_F^2 in the blocks of W0's top-r (or bottom-r) singular subspace."""
    p, q = singular_projectors(w0, rank, minor)
    delta = delta.double()
    total = delta.pow(2).sum()
    if total == 0:
        raise ValueError("delta is zero: it has no direction to measure")
    left, right, core = (p @ delta).pow(2).sum(), (delta @ q).pow(2).sum(), (p @ delta @ q).pow(2).sum()
    return {
        "left": float(left / total), "right": float(right / total),
        "core": float(core / total), "tangent": float((left + right - core) / total),
    }


def random_baseline(shape: tuple[int, int], rank: int) -> dict[str, float]:
    """The expected shares for a subspace that knows nothing of the update (random directions)."""
    out_share, in_share = rank / shape[0], rank / shape[1]
    return {"left": out_share, "right": in_share, "core": out_share * in_share,
            "tangent": out_share + in_share - out_share * in_share}


def least_squares_update(hidden: torch.Tensor, residual: torch.Tensor, rcond: float = 0.1) -> torch.Tensor:
    """The minimum-norm dW of an output layer y = W h + b that best fits ``residual`` (the targets
    minus the model's outputs) from its inputs ``hidden``: dW^T = pinv(H) R, in float64.

    Exact for the last layer, where the model is linear in W; an inner layer's needed update is
    taken from full fine-tuning instead (its Gauss-Newton step needs a (n*out) x (out*in) Jacobian,
    too costly here and underdetermined with 50-100 samples). ``rcond`` keeps the directions of H
    above that share of its largest singular value: gradient descent from dW = 0 reaches a direction
    of singular value s at a rate s^2, so the weak ones are what a 100-step run never uses (with
    rcond 1e-6 the default task's solution is 40x larger than full fine-tuning's and made of them).
    """
    solution = torch.linalg.lstsq(hidden.double(), residual.double(), rcond=rcond, driver="gelsd").solution
    return solution.T
