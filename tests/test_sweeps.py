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
from nfl.sweep import Cell, SweepInterrupted, run_cells, run_groups
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


def test_groups_are_computed_together_and_a_resumed_group_only_for_its_missing_cells(tmp_path: Path) -> None:
    store, calls = ResultStore(tmp_path / "demo.jsonl"), []
    groups = [cells(4)[:2], cells(4)[2:]]

    def compute(group: list[Cell]) -> list[dict]:
        calls.append([c.rank for c in group])
        return [{"summary": {"value": c.rank}} for c in group]

    run_groups(groups[:1], compute, store)
    store.path.write_text(store.path.read_text().splitlines()[0] + "\n")  # cell 2 lost
    records = run_groups(groups, compute, store, resume=True)
    assert calls == [[1, 2], [2], [3, 4]]
    assert [r["summary"]["value"] for r in records] == [1, 2, 3, 4]


class Shuffled:
    """A backend that finishes groups in reverse order, as a cluster may."""

    def run(self, compute, groups):
        for group in reversed(groups):
            yield group, compute(group)


def test_a_backend_may_finish_groups_in_any_order(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "demo.jsonl")
    records = run_cells(cells(3), lambda c: {"summary": {"value": c.rank}}, store, backend=Shuffled())
    assert [r["rank"] for r in store.records()] == [3, 2, 1]  # appended as they arrived
    assert [r["rank"] for r in records] == [1, 2, 3]  # returned in the cells' order


def test_a_failing_group_is_retried_once_then_recorded_as_failed_and_resumed(tmp_path: Path, capsys) -> None:
    store, attempts = ResultStore(tmp_path / "demo.jsonl"), []

    def flaky(cell: Cell, fail_times: int) -> dict:
        attempts.append(cell.rank)
        if cell.rank == 2 and attempts.count(2) <= fail_times:
            raise RuntimeError("CUDA out of memory\nsecond line")
        return {"summary": {"value": cell.rank}}

    records = run_cells(cells(3), lambda c: flaky(c, 1), store)
    assert attempts == [1, 2, 3, 2] and [r["rank"] for r in records] == [1, 2, 3]  # retried once, after the others

    attempts.clear()
    store = ResultStore(tmp_path / "again.jsonl")
    records = run_cells(cells(3), lambda c: flaky(c, 2), store)
    assert attempts == [1, 2, 3, 2] and [r["rank"] for r in records] == [1, 3]
    failed = [r for r in store.records() if "failed" in r]
    assert [(r["rank"], r["failed"]) for r in failed] == [(2, "RuntimeError: CUDA out of memory")]
    assert "note: 1 of 3 cells failed" in capsys.readouterr().err
    records = run_cells(cells(3), lambda c: flaky(c, 0), store, resume=True)
    assert [r["rank"] for r in records] == [1, 2, 3]  # the failed cell computed again on resume


def test_a_compute_that_returns_the_wrong_number_of_records_fails_its_group(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "demo.jsonl")
    assert run_groups([cells(2)], lambda group: [{"summary": {}}], store) == []
    assert [r["failed"] for r in store.records()] == [
        "TypeError: compute returned list for 2 cells, not one dict per cell"
    ] * 2


def test_a_record_measured_otherwise_is_not_reused_and_said_so(tmp_path: Path, capsys) -> None:
    store = ResultStore(tmp_path / "demo.jsonl")
    quick = [Cell("demo", "lora", 2, 1, 8, "cpu", "abc", measurement="quick threads=2")]
    full = [Cell("demo", "lora", 2, 1, 8, "cpu", "abc", measurement="full threads=1")]
    run_cells(quick, lambda c: {"summary": {"value": 1}}, store)
    computed = []
    records = run_cells(full, lambda c: computed.append(c) or {"summary": {"value": 2}}, store, resume=True)
    assert computed == full and [r["summary"]["value"] for r in records] == [2]
    assert (
        "1 record(s) made with other settings (config, measurement, device) are kept but not reused"
        in capsys.readouterr().err
    )


def test_a_new_run_without_resume_keeps_the_old_results(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "demo.jsonl")
    run_cells(cells(1), lambda c: {"summary": {}}, store)
    run_cells(cells(1), lambda c: {"summary": {}}, store)
    backups = list(tmp_path.glob("demo.jsonl.*.bak"))
    assert len(backups) == 1 and len(backups[0].read_text().splitlines()) == 1


def test_cli_interrupt_prints_how_to_resume_and_resume_gives_the_same_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
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
        return [
            (r["method"], r["history"], r["summary"])
            for r in map(json.loads, (tmp_path / directory / "adaptability.jsonl").read_text().splitlines())
        ]

    assert quality("cut") == quality("whole")  # same seed, same numbers, however the run was cut


BAD_INPUTS = [
    (["--methods", "lora,nope"], "unknown method 'nope'; available: full, lora"),
    (["--methods", "miss_e", "--ranks", "9"], "MiSS^e needs 1 <= rank <= in_features = 8, got 9"),
    (["--seeds", "0"], "--seeds: must be an integer in 1 ..."),
    (["--width", "0"], "width: must be a positive integer, got 0"),
    (["--device", "tpu"], "unknown device 'tpu'; choose auto, cpu or cuda"),
    (["--ranks", "two"], "--ranks: takes comma-separated ranks"),
    (["--lr", "-1"], "lr: must be > 0"),
]


@pytest.mark.parametrize("args,message", BAD_INPUTS)
def test_bad_input_exits_2_with_one_clear_line_and_writes_nothing(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
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
    assert {r["rank"] for r in ResultStore(tmp_path / "init_time.jsonl").records()} == {4}


def test_divergence_is_recorded_and_left_out_of_the_figure(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    adaptability.main(
        [*TINY, "--seeds", "1", "--methods", "lora", "--adapt-lr", "1e30", "--out", str(tmp_path / "bad")]
    )
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
