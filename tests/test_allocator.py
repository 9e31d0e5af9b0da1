"""A study runs under glibc malloc thresholds that keep freed memory for reuse, and its records say so; what it
imported is frozen out of the cyclic collector's passes."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"

# A study in a fresh process (the thresholds are set once a process): importing sets nothing, the study does.
PROBE = """
import gc, sys
from nfl import allocator
from studies import adaptability
assert allocator.settings() is None and gc.get_freeze_count() == 0
adaptability.main(sys.argv[1:])
print(gc.get_freeze_count() > 100_000)  # torch and matplotlib alone are far more
print(allocator.settings())
"""


@pytest.mark.skipif(not GLIBC, reason="the thresholds are glibc's")
def test_a_study_keeps_freed_memory_and_its_records_name_the_thresholds(tmp_path: Path) -> None:
    argv = ["--width", "8", "--pretrain-epochs", "5", "--adapt-epochs", "3", "--seeds", "1", "--methods", "lora",
            "--lr-grid", "1e-3", "--out", str(tmp_path)]
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
    frozen, said = done.stdout.strip().splitlines()[-2:]
    assert frozen == "True"
    assert said.startswith("glibc ") and "mmap threshold 32 MiB, trim threshold 64 MiB" in said
    records = [json.loads(line) for line in (tmp_path / "adaptability.jsonl").read_text().splitlines()]
    assert records and all(r["env"]["allocator"] == said for r in records)


def test_without_a_study_the_environment_names_no_thresholds() -> None:
    probe = "from nfl.results import environment; print(environment()['allocator'])"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0 and done.stdout.strip() == "None", done.stderr
