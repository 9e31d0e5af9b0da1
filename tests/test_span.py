"""The subspace fraction on updates built inside, across and outside W0's top-r singular subspace,
and the shift families it is meant to tell apart."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from nfl.config import TaskConfig
from nfl.span import least_squares_update, random_baseline, span_fractions
from nfl.tasks import _Task

D_OUT, D_IN, R = 12, 10, 3


def w0_and_bases() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A W0 with distinct singular values, and its singular vectors (float64)."""
    g = torch.Generator().manual_seed(0)
    u, _ = torch.linalg.qr(torch.randn(D_OUT, D_OUT, generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(D_IN, D_IN, generator=g, dtype=torch.float64))
    s = torch.linspace(5.0, 0.5, D_IN, dtype=torch.float64)
    return u[:, :D_IN] @ torch.diag(s) @ v.T, u, v


def random_matrix(rows: int, cols: int, seed: int) -> torch.Tensor:
    return torch.randn(rows, cols, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_an_update_inside_the_top_subspace_has_every_share_one() -> None:
    w0, u, v = w0_and_bases()
    delta = u[:, :R] @ random_matrix(R, R, 1) @ v[:, :R].T
    assert span_fractions(w0, delta, R) == pytest.approx({"left": 1, "right": 1, "core": 1, "tangent": 1}, abs=1e-10)


def test_an_update_orthogonal_to_the_top_subspace_has_every_share_zero() -> None:
    w0, u, v = w0_and_bases()
    delta = u[:, R:] @ random_matrix(D_OUT - R, D_IN - R, 2) @ v[:, R:].T
    assert span_fractions(w0, delta, R) == pytest.approx({"left": 0, "right": 0, "core": 0, "tangent": 0}, abs=1e-10)
    # ... and, built from the bottom singular vectors, it lies in MiLoRA's subspace instead.
    minor = u[:, D_IN - R:D_IN] @ random_matrix(R, R, 3) @ v[:, D_IN - R:].T
    assert span_fractions(w0, minor, R, minor=True)["core"] == pytest.approx(1, abs=1e-10)
    assert span_fractions(w0, minor, R)["tangent"] == pytest.approx(0, abs=1e-10)


def test_a_one_sided_update_is_in_the_tangent_but_not_the_core() -> None:
    """U_r X with X's rows outside V_r: PiSSA's B dA reaches it, the two-sided core does not."""
    w0, u, v = w0_and_bases()
    delta = u[:, :R] @ random_matrix(R, D_IN - R, 4) @ v[:, R:].T
    shares = span_fractions(w0, delta, R)
    assert shares["left"] == pytest.approx(1, abs=1e-10) and shares["right"] == pytest.approx(0, abs=1e-10)
    assert shares["core"] == pytest.approx(0, abs=1e-10) and shares["tangent"] == pytest.approx(1, abs=1e-10)


def test_a_random_update_matches_the_random_baseline_on_average() -> None:
    w0, _, _ = w0_and_bases()
    shares = [span_fractions(w0, random_matrix(D_OUT, D_IN, seed), R) for seed in range(400)]
    mean = {k: sum(s[k] for s in shares) / len(shares) for k in shares[0]}
    assert mean == pytest.approx(random_baseline((D_OUT, D_IN), R), abs=0.02)


def test_span_fractions_rejects_a_bad_rank_and_a_zero_update() -> None:
    w0, _, _ = w0_and_bases()
    with pytest.raises(ValueError, match="rank"):
        span_fractions(w0, w0, D_IN + 1)
    with pytest.raises(ValueError, match="zero"):
        span_fractions(w0, torch.zeros_like(w0), R)


def test_least_squares_update_recovers_a_planted_output_layer_update() -> None:
    hidden = random_matrix(50, D_IN, 5)
    planted = random_matrix(D_OUT, D_IN, 6)
    assert torch.allclose(least_squares_update(hidden, hidden @ planted.T), planted, atol=1e-8)


@pytest.mark.parametrize("kind", ["fourier_sine", "elementwise_sine"])
def test_shift_families_move_the_targets_as_documented(kind: str) -> None:
    """out_of_span is today's shift, in_span rescales and rephases the base sine, mix adds both with
    the set energy shares (the two parts are orthogonal), and base data never depends on the shift."""
    cfg = TaskConfig(kind=kind)
    task = {s: _Task(dataclasses.replace(cfg, shift=s), 16, task_seed=0) for s in ("out_of_span", "in_span", "mix")}
    u = task["mix"].sample_latent(4000, torch.Generator().manual_seed(1))
    base = task["mix"].targets(u, shifted=False)
    assert all(torch.equal(t.targets(u, shifted=False), base) for t in task.values())
    delta = {s: t.targets(u, shifted=True) - base for s, t in task.items()}
    energy = {s: float(d.pow(2).mean()) for s, d in delta.items()}
    assert energy["out_of_span"] == pytest.approx(cfg.shift_amplitude**2 / 2, rel=0.1)
    gain, phase, mix = cfg.shift_gain, cfg.shift_phase, cfg.shift_mix
    assert energy["in_span"] == pytest.approx((gain**2 + 1 - 2 * gain * math.cos(phase)) / 2, rel=0.1)
    assert energy["mix"] == pytest.approx(mix * energy["out_of_span"] + (1 - mix) * energy["in_span"], rel=0.1)
    inside, outside = delta["in_span"], delta["out_of_span"]
    cosine = float((inside * outside).sum() / (inside.norm() * outside.norm()))
    assert abs(cosine) < 0.05


def test_the_presets_keep_the_out_of_span_shift() -> None:
    from nfl.config import PRESETS

    assert {name: cfg.task.shift for name, cfg in PRESETS.items()} == {"paper": "out_of_span", "default": "out_of_span"}


def test_shift_mix_outside_zero_one_is_rejected() -> None:
    with pytest.raises(ValueError, match="shift_mix"):
        TaskConfig(shift="mix", shift_mix=1.5)


@pytest.mark.slow
def test_the_span_study_prints_a_row_per_family_layer_and_subspace(capsys: pytest.CaptureFixture[str]) -> None:
    from studies import span

    span.main(["--seeds", "1", "--width", "8", "--pretrain-epochs", "5", "--adapt-epochs", "3"])
    rows = capsys.readouterr().out.splitlines()[2:]
    assert len(rows) == 3 * 3 * 2 + 1  # families x (layer1 FT, layer2 FT, layer2 LS) x (top, bottom) + baseline
    assert {row.split()[0] for row in rows[:-1]} == {"out_of_span", "in_span", "mix"}
