"""`python -m studies.adaptability` on a tiny configuration: records, figure, report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from studies import adaptability

pytestmark = pytest.mark.slow  # whole studies / reference parity: the full suite only

ROOT = Path(__file__).resolve().parent.parent
TINY = [
    "--pretrain-epochs",
    "20",
    "--adapt-epochs",
    "5",
    "--seeds",
    "2",
    "--methods",
    "full,lora",
    "--lr-grid",
    "1e-3,1e-2",
]


def test_cli_writes_records_figure_and_reports_the_zero_predictor(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    adaptability.main([*TINY, "--out", str(tmp_path)])
    lines = (tmp_path / "adaptability.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    cells = sorted((r["method"], r["seed"], r["lr"]) for r in records)
    assert cells == sorted((m, s, lr) for m in ("full", "lora") for s in (43, 44) for lr in (1e-3, 1e-2))
    for record in records:
        assert len(record["history"]["val_loss"]) == 6 and len(record["history"]["grad_norm"]) == 5
        assert record["summary"]["base_zero_loss"] > 0 and record["config"]["train"]["adapt_epochs"] == 5
        assert record["env"]["torch"] and record["config_hash"]
        summary = record["summary"]
        assert summary["test_loss"] == record["history"]["test_loss"][summary["selected_step"]]
        assert summary["min_val_loss"] == min(record["history"]["val_loss"]) and summary["sharpness"] > 0
    assert {r["summary"]["trainable_params"] for r in records} == {
        64 * 64 * 2 + 128,
        2 * 2 * 128,
    }  # LoRA on both layers
    for suffix in ("png", "pdf"):
        assert (tmp_path / f"adaptability_loss.{suffix}").stat().st_size > 1000
    out = capsys.readouterr().out
    assert "zero predictor" in out and "LoRA" in out and "Full FT" in out and "test loss" in out


def test_cli_runs_from_the_repository_root_and_rejects_an_unknown_method(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "studies.adaptability", "--methods", "lora,nope", "--out", str(tmp_path / "x")],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert result.returncode == 2
    assert "unknown method 'nope'" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "x").exists()
