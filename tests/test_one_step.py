"""One training step for every engine: a plugin the contract allows trains alike in both, and one the
stacked engine cannot run fails ``adapters.check`` naming the check, not a study."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# A LoRA copy whose regularization() returns None (the contract allows it; the batched engine once
# added None to the loss and recorded every cell of such a plugin as failed).
NONE_REGULARIZER = """
import adapters
from adapters.lora import LoRA, lora_count

@adapters.register("lora_none", label="LoRA-None", hparams=adapters.ScaledHParams, default_rank=2,
                   param_count=lora_count, color="#123456", marker="o")
class LoRANone(LoRA):
    def regularization(self):
        return None
"""

# An on_step mechanism with no stacked form: the stacked engine cannot run it.
UNSTACKABLE = '''
import adapters
from adapters.lora import LoRA, lora_count

@adapters.register("lora_counting", label="LoRA-counting", hparams=adapters.ScaledHParams, default_rank=2,
                   param_count=lora_count, color="#654321", marker="o")
class LoRACounting(LoRA):
    def on_step(self, step, total_steps):
        self.steps_seen = step + 1
'''


def _run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def _plugin(tmp_path: Path, source: str) -> Path:
    path = tmp_path / "plugin.py"
    path.write_text(source)
    return path


def test_a_none_regularizer_passes_both_engines_check(tmp_path: Path) -> None:
    result = _run("-m", "adapters.check", str(_plugin(tmp_path, NONE_REGULARIZER)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS  lora_none: trains in both engines" in result.stdout


def test_an_on_step_without_a_stacked_form_fails_the_check_naming_it(tmp_path: Path) -> None:
    result = _run("-m", "adapters.check", str(_plugin(tmp_path, UNSTACKABLE)))
    assert result.returncode == 1
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert failed == [
        "FAIL  lora_counting: trains in both engines (LoRACounting has an on_step but no stacked_on_step)"
    ]


@pytest.mark.slow
def test_a_none_regularizer_plugin_trains_in_a_study(tmp_path: Path) -> None:
    plugin, out = _plugin(tmp_path, NONE_REGULARIZER), tmp_path / "out"
    result = _run("-m", "studies.adaptability", "--quick", "--methods", "lora,lora_none", "--adapter-module",
                  str(plugin), "--out", str(out), "--adapt-epochs", "10")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in (out / "adaptability.jsonl").read_text().splitlines()]
    assert {r["method"] for r in records} == {"lora", "lora_none"} and not [r for r in records if "failed" in r]
    # The same math as LoRA, from its own initialisation stream: a loss of the same size, not a crash.
    losses = {r["method"]: r["summary"]["test_loss"] for r in records if r["lr"] == 1e-2}
    assert losses["lora_none"] == pytest.approx(losses["lora"], rel=0.5)
