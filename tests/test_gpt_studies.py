"""The studies on a tiny gpt testbed: records in bits/byte with the corpora's identity, the
learning-forgetting figure, the pretrained model reused by the next study in the same --out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from studies import adaptability, grad_norm

pytestmark = pytest.mark.slow  # whole studies: the full suite only

TINY = ["--testbed", "gpt", "--d-model", "16", "--n-layer", "1", "--n-head", "2", "--context", "16",
        "--pretrain-batch", "4", "--batch", "4", "--eval-windows", "6", "--eval-every", "5", "--pretrain-epochs", "20",
        "--adapt-epochs", "10", "--seeds", "1", "--lr-grid", "1e-3,1e-2"]


def test_adaptability_on_the_gpt_then_grad_norm_reusing_its_pretrained_model(tmp_path: Path, capsys) -> None:
    adaptability.main([*TINY, "--methods", "full,lora,adalora", "--out", str(tmp_path)])
    records = [json.loads(line) for line in (tmp_path / "adaptability.jsonl").read_text().splitlines()]
    assert len(records) == 6
    for record in records:
        history, summary = record["history"], record["summary"]
        assert history["eval_every"] == 5 and len(history["val_loss"]) == 3 and len(history["train_loss"]) == 10
        assert summary["selected_step"] in (0, 5, 10)
        assert summary["test_loss"] == history["test_loss"][summary["selected_step"] // 5]
        identity = json.loads(record["config"]["gpt"]["identity"])
        assert identity["base"]["source"] == "pydoc_data.topics" and identity["python"]
        assert 4 < summary["base_zero_loss"] < 5 and summary["forgetting_base_test_loss"] > 0
    captured = capsys.readouterr()
    assert "test bits/byte" in captured.out and "unigram entropy" in captured.out
    assert "reused" not in captured.err
    for stem in ("adaptability_loss", "learning_forgetting"):
        assert (tmp_path / f"{stem}.png").stat().st_size > 1000
    [pretrained] = (tmp_path / "pretrained").iterdir()

    grad_norm.main([*TINY, "--methods", "lora", "--ranks", "2", "--out", str(tmp_path)])
    assert f"pretrained model reused from {pretrained}" in capsys.readouterr().err
    [record] = [json.loads(line) for line in (tmp_path / "grad_norm.jsonl").read_text().splitlines()]
    assert record["summary"]["initial_grad_norm"] > 0 and record["config_hash"] == records[0]["config_hash"]
