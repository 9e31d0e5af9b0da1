"""Sweeps that survive: resume after an interrupt, a torn last line, bad input, divergence."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest

import adapters
from figures.curves import loss_curves_figure
from nfl.results import ResultStore
from nfl.sweep import Cell, SweepInterrupted, run_cells
from studies import adaptability, init_time

TINY = ["--pretrain-epochs", "10", "--adapt-epochs", "3", "--width", "8"]


def cells(n: int) -> list[Cell]:
    return [Cell("demo", "lora", r, 1, 8, "cpu", "abc") for r in range(1, n + 1)]


def test_interrupt_then_resume_computes_each_cell_exactly_once(tmp_path: Path) -> None:
    store, computed = ResultStore(tmp_path / "demo.jsonl"), []

    def compute(cell: Cell, interrupt: bool) -> dict:
        computed.append(cell.rank)
        if interrupt and cell.rank == 1:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the first cell runs
        return {"summary": {"value": cell.rank * 10}}

    with pytest.raises(SweepInterrupted) as stop:
        run_cells(cells(4), lambda c: compute(c, True), store)
    assert (stop.value.saved, stop.value.total) == (1, 4) and computed == [1]

    records = run_cells(cells(4), lambda c: compute(c, False), store, resume=True)
    assert computed == [1, 2, 3, 4]  # the resumed run computed only the missing cells
    assert [r["rank"] for r in store.records()] == [1, 2, 3, 4]
    assert [r["summary"]["value"] for r in records] == [10, 20, 30, 40]


def test_a_torn_last_line_is_skipped_with_a_warning_and_recomputed(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "demo.jsonl")
    run_cells(cells(2), lambda c: {"summary": {"value": c.rank}}, store)
    with store.path.open("a") as f:
        f.write('{"study": "demo", "method": "lora", "rank": 3, "se')  # a crash mid-write
    computed = []
    with pytest.warns(UserWarning, match="skipping an incomplete record"):
        records = run_cells(cells(3), lambda c: computed.append(c.rank) or {"summary": {"value": c.rank}}, store, resume=True)
    assert computed == [3] and [r["rank"] for r in records] == [1, 2, 3]
    with pytest.warns(UserWarning):
        assert [r["rank"] for r in store.records()] == [1, 2, 3]  # the new record starts on its own line


def test_a_new_run_without_resume_keeps_the_old_results(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "demo.jsonl")
    run_cells(cells(1), lambda c: {"summary": {}}, store)
    run_cells(cells(1), lambda c: {"summary": {}}, store)
    backups = list(tmp_path.glob("demo.jsonl.*.bak"))
    assert len(backups) == 1 and len(backups[0].read_text().splitlines()) == 1


def test_cli_interrupt_prints_how_to_resume_and_resume_gives_the_same_records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    argv = [*TINY, "--methods", "full,lora,miss_e", "--seeds", "1", "--adapt-lr", "1e-2"]
    adaptability.main([*argv, "--out", str(tmp_path / "whole")])
    compute = adaptability.compute_group

    def interrupted(setup, cells):
        if cells[0].method == "full":
            os.kill(os.getpid(), signal.SIGINT)
        return compute(setup, cells)

    monkeypatch.setattr(adaptability, "compute_group", interrupted)
    with pytest.raises(SystemExit) as exit_:
        adaptability.main([*argv, "--out", str(tmp_path / "cut")])
    assert exit_.value.code == 130
    err = capsys.readouterr().err
    assert "stopped: 1 of 3 cells saved" in err and "--resume" in err
    monkeypatch.setattr(adaptability, "compute_group", compute)
    adaptability.main([*argv, "--out", str(tmp_path / "cut"), "--resume"])

    def quality(directory: str) -> list:
        return [(r["method"], r["history"], r["summary"]) for r in map(json.loads, (tmp_path / directory / "adaptability.jsonl").read_text().splitlines())]

    assert quality("cut") == quality("whole")  # same seed, same numbers, however the run was cut


BAD_INPUTS = [
    (["--methods", "lora,nope"], "unknown method 'nope'; available: full, lora"),
    (["--methods", "miss_e", "--ranks", "9"], "MiSS^e needs 1 <= rank <= in_features = 8, got 9"),
    (["--seeds", "0"], "--seeds must be a positive integer, got 0"),
    (["--width", "0"], "width must be a positive integer, got 0"),
    (["--device", "tpu"], "unknown device 'tpu'; choose auto, cpu or cuda"),
    (["--ranks", "two"], "--ranks takes comma-separated integers"),
    (["--lr", "-1"], "lr must be > 0"),
]


@pytest.mark.parametrize("args,message", BAD_INPUTS)
def test_bad_input_exits_2_with_one_clear_line_and_writes_nothing(args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_:
        init_time.main([*TINY, *args, "--out", str(out)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()


def test_cuda_without_cuda_and_an_output_file_are_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import torch

    a_file = tmp_path / "taken"
    a_file.write_text("mine")
    cases = [(["--out", str(a_file)], "is a file, not a directory")]
    if not torch.cuda.is_available():
        cases.append((["--device", "cuda", "--out", str(tmp_path / "o")], "CUDA is not available"))
    for args, message in cases:
        with pytest.raises(SystemExit) as exit_:
            adaptability.main([*TINY, *args])
        assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert a_file.read_text() == "mine" and not (tmp_path / "o").exists()


def test_a_rank_one_method_cannot_take_is_skipped_in_a_sweep(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    init_time.main([*TINY, "--quick", "--methods", "miss_e", "--ranks", "4,9", "--rounds", "2", "--out", str(tmp_path)])
    assert "skipping miss_e at rank 9: MiSS^e needs 1 <= rank <= in_features = 8, got 9" in capsys.readouterr().err
    assert {json.loads(line)["rank"] for line in (tmp_path / "init_time.jsonl").read_text().splitlines()} == {4}


def test_divergence_is_recorded_and_left_out_of_the_figure(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    adaptability.main([*TINY, "--seeds", "1", "--methods", "lora", "--adapt-lr", "1e30", "--out", str(tmp_path / "bad")])
    adaptability.main([*TINY, "--seeds", "1", "--methods", "miss_e", "--out", str(tmp_path / "good")])
    assert "every lr diverged on some seed" in capsys.readouterr().out
    records = [json.loads((tmp_path / d / "adaptability.jsonl").read_text().splitlines()[0]) for d in ("bad", "good")]
    bad, good = records
    assert bad["summary"]["diverged_at"] >= 1 and bad["summary"]["min_val_loss"] is None
    assert good["summary"]["diverged_at"] is None
    assert all(np.isfinite(v) for v in bad["history"]["val_loss"])  # nothing non-finite is stored
    ax = loss_curves_figure(records).axes[0]
    drawn = [line for line in ax.get_lines() if len(line.get_xdata()) > 2]
    assert [line.get_label() for line in drawn] == [adapters.get("miss_e").tex_label]  # mathtext, a superscript
    assert all(np.isfinite(line.get_ydata()).all() for line in drawn)
