"""``python -m studies.claims`` on a tiny configuration writes claims.md with a row per claim."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from nfl.claims import CLAIMS, VERDICTS
from studies import claims


@pytest.mark.slow
def test_claims_study_writes_a_verdict_for_every_claim_in_every_column(tmp_path: Path) -> None:
    argv = ["--quick", "--methods", "lora,pissa,miss_e", "--widths", "6", "--shifts", "out_of_span,in_span",
            "--pretrain-epochs", "5", "--adapt-epochs", "3", "--threads", "1", "--out", str(tmp_path)]
    claims.main(argv)
    text = (tmp_path / "claims.md").read_text()
    for shift in ("out_of_span", "in_span"):
        section = text.split(f"## width 6, shift {shift}")[1].split("## ")[0]
        for claim in CLAIMS:
            row = re.search(rf"^\| {claim.number} \| .*$", section, re.M)
            assert row, f"no row for claim {claim.number} under {shift}"
            assert len(re.findall(rf"\*\*({'|'.join(VERDICTS)})\*\*", row.group(0))) == 2
        assert re.search(r"least-squares dW \d\.\d{3} inside, \d\.\d{3} reachable", section)
    assert (tmp_path / "no_free_lunch_w6.png").exists()
    # Stored cells are reused: a second run computes nothing new.
    lines = (tmp_path / "out_of_span-w6" / "adaptability.jsonl").read_text().count("\n")
    claims.main([*argv, "--resume"])
    assert (tmp_path / "out_of_span-w6" / "adaptability.jsonl").read_text().count("\n") == lines


def test_an_unknown_shift_family_exits_2_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as stop:
        claims.main(["--shifts", "sideways", "--out", str(tmp_path)])
    assert stop.value.code == 2 and not any(tmp_path.iterdir())


def test_spearman_of_a_constant_resample_is_zero_so_the_bootstrap_interval_stays_finite() -> None:
    from nfl.claims import bootstrap_effect

    assert claims._spearman(np.array([1e-3, 1e-3, 1e-3]), np.array([1.0, 2.0, 3.0])) == 0.0
    assert claims._spearman(np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 9.0])) == pytest.approx(1.0)
    lrs = np.array([1e-2] * 8 + [1e-1, 1e-3, 3e-2])  # ties, as tuned grid points have: many resamples are constant
    inverse = np.linspace(1.0, 2.0, lrs.size)
    effect = bootstrap_effect(claims._spearman, [lrs, inverse], paired=True)
    assert np.isfinite(effect.low) and np.isfinite(effect.high) and effect.low <= effect.high
