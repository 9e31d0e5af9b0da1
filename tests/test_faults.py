"""Bad input: one line on stderr, exit status 2, nothing written -- before any work."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from nfl import cli
from studies import adaptability, init_time, pareto

TINY = ["--width", "8", "--pretrain-epochs", "5", "--adapt-epochs", "3", "--quick"]
REPO = Path(__file__).resolve().parents[1]

REJECTED = [
    (init_time, ["--seeds", "x"], "--seeds: invalid int value: 'x'"),
    (init_time, ["--seeds", "0"], "--seeds: must be an integer in 1 ..."),
    (init_time, ["--methods", "lora,nope"], "--methods: unknown method 'nope'; available: full, lora"),
    (init_time, ["--methods", "miss_e", "--ranks", "9"], "--ranks: MiSS^e needs 1 <= rank <= in_features = 8, got 9"),
    (init_time, ["--width", "0"], "--width: must be a positive integer, got 0"),
    (init_time, ["--device", "tpu"], "unknown device 'tpu'; choose auto, cpu or cuda"),
    (init_time, ["--ranks", "two"], "--ranks: takes comma-separated ranks, got 'two'"),
    (init_time, ["--lr", "-1"], "--lr: must be > 0"),
    (init_time, ["--methods", "full"], "--methods: init_time times adapters"),
    (pareto, ["--methods", "miss", "--width", "3"], "--methods: miss cannot run at its default rank 4 with width 3"),
    (init_time, ["--seed", str(2**70)], "--seed: must be an integer in 0 ... 9223372036854775807"),
    (init_time, ["--seed", "-1"], "--seed: must be an integer in 0 ..."),
    (init_time, ["--task-seed", str(2**64)], "--task-seed: must be an integer in 0 ..."),
    (init_time, ["--ranks", str(2**70)], "--ranks: must be an integer in 1 ... 2147483647"),
    (init_time, ["--encoding-scale", "nan"], "--encoding-scale: must be a finite number, got nan"),
    (init_time, ["--shift-amplitude", "inf"], "--shift-amplitude: must be a finite number, got inf"),
    (init_time, ["--adapt-lr=-inf"], "--adapt-lr: must be a finite number, got -inf"),
    (init_time, ["--threads", "1000"], f"--threads: must be an integer in 1 ... {os.cpu_count()}, got 1000"),
    (init_time, ["--threads", "0"], "--threads: must be an integer in 1 ..."),
    (init_time, ["--ranks", "1,,2"], "--ranks: empty rank in '1,,2'"),
    (init_time, ["--methods", "lora,"], "--methods: empty method in 'lora,'"),
    (init_time, ["--methods", ","], "--methods: names no method"),
    (init_time, ["--width", "100000"], "--width: a run needs about"),
    (init_time, ["--preset", "nope"], "--preset: invalid choice: 'nope'"),
    (init_time, ["--bogus"], "unrecognized arguments: --bogus"),
    (init_time, ["--rounds", "0"], "--rounds: must be a positive integer, got '0'"),
    (pareto, ["--rounds", "two"], "--rounds: must be a positive integer, got 'two'"),
]


@pytest.mark.parametrize("study,args,message", REJECTED, ids=[" ".join(a)[:40] for _, a, _ in REJECTED])
def test_a_rejected_input_is_one_line_exit_2_and_writes_nothing(study, args, message, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_:
        study.main([*TINY, *args, "--out", str(out)])
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith("nfl: error: ") and message in err and err.rstrip().endswith("(see -h)"), err
    assert not out.exists()


@pytest.mark.parametrize("make", [lambda p: "/proc/nfl-x", lambda p: str(p / "a-file" / "below"), lambda p: ""])
def test_an_unwritable_or_empty_out_is_rejected_before_any_cell(make, tmp_path, capsys, monkeypatch) -> None:
    (tmp_path / "a-file").write_text("mine")
    monkeypatch.setattr(init_time, "prepare", lambda *a: pytest.fail("a cell was computed"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        init_time.main([*TINY, "--methods", "lora", "--out", make(tmp_path)])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and len(err.splitlines()) == 1 and err.startswith("nfl: error: --out: "), err
    assert (tmp_path / "a-file").read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_duplicate_methods_and_ranks_are_dropped_with_a_notice(tmp_path, capsys) -> None:
    init_time.main([*TINY, "--methods", "lora,lora", "--ranks", "2,1,2", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert "note: --methods: dropped duplicate method(s) lora" in err
    assert "note: --ranks: dropped duplicate rank(s) 2" in err
    rows = [json.loads(line) for line in (tmp_path / "init_time.jsonl").read_text().splitlines()]
    assert list(dict.fromkeys((r["method"], r["rank"]) for r in rows if "block" in r)) == [("lora", 2), ("lora", 1)]


def test_a_large_sweep_is_announced_with_its_cells_and_time_before_the_first(tmp_path, capsys, monkeypatch) -> None:
    def first_group(setup, cells):
        assert "20000 of 20000 cells to compute, about" in capsys.readouterr().err
        raise SystemExit(99)  # the announcement, before any cell, is what is checked

    monkeypatch.setattr(adaptability, "compute_group", first_group)
    with pytest.raises(SystemExit) as exit_:
        adaptability.main([*TINY[:-1], "--seeds", "10000", "--adapt-lr", "1e-2", "--methods", "full,lora",
                           "--out", str(tmp_path)])
    assert exit_.value.code == 99


def test_ctrl_c_twice_aborts_with_one_line(tmp_path, capsys, monkeypatch) -> None:
    def twice(setup, cells):
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
        pytest.fail("the second Ctrl-C did not abort the cell")

    monkeypatch.setattr(adaptability, "compute_group", twice)
    with pytest.raises(SystemExit) as exit_:
        adaptability.main([*TINY, "--adapt-lr", "1e-2", "--methods", "full,lora", "--out", str(tmp_path)])
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("aborted")]
    assert exit_.value.code == 130
    assert err == [
        f"aborted: 0 of 2 cells saved in {tmp_path / 'adaptability.jsonl'}; resume with: "
        f"python -m studies.adaptability {' '.join(TINY)} --adapt-lr 1e-2 --methods full,lora --out {tmp_path} "
        "--resume"
    ]


def test_an_interrupt_or_failed_write_outside_a_sweep_is_one_line(capsys) -> None:
    hook = cli.one_line_errors(lambda: "3 cells saved in out; resume with: cmd --resume")
    hook(KeyboardInterrupt, KeyboardInterrupt(), None)
    hook(OSError, OSError(28, "No space left on device", "out/figure1.png"), None)
    assert capsys.readouterr().err.splitlines() == [
        "nfl: interrupted; 3 cells saved in out; resume with: cmd --resume",
        "nfl: error: could not write out/figure1.png: No space left on device; "
        "3 cells saved in out; resume with: cmd --resume",
    ]


def test_a_bad_mplbackend_falls_back_to_agg_with_a_notice() -> None:
    env = {**os.environ, "MPLBACKEND": "bogus"}
    code = "import figures.curves, matplotlib; print(matplotlib.get_backend())"
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().lower() == "agg"
    assert run.stderr.strip() == "note: MPLBACKEND='bogus' is not a matplotlib backend; drawing with Agg"


def summary(base: float, zero: float) -> dict:
    keys = ("min_val_loss", "test_loss", "selected_step", "forgetting_base_test_loss")
    return {
        "method": "lora",
        "rank": 2,
        "lr": 1e-3,
        "summary": {
            "pretrained_base_val_loss": base,
            "base_zero_loss": zero,
            "shifted_zero_loss": 0.5,
            "trainable_params": 32,
            "diverged_at": None,
            **dict.fromkeys(keys, 0.4),
        },
    }


def test_learnt_only_when_clearly_below_the_zero_predictor() -> None:
    barely = adaptability.report([summary(0.477, 0.4975)]).splitlines()[0]
    assert "learnt the base task" not in barely and "NOT CLEARLY LEARNT: 96% of the zero predictor's loss" in barely
    assert "learnt the base task: 1% of the zero predictor's loss" in adaptability.report([summary(0.005, 0.5)])
    assert "NO BETTER THAN PREDICTING ZERO" in adaptability.report([summary(0.6, 0.5)])


def test_report_prints_tables_and_redraws_figures_without_computing(tmp_path, capsys, monkeypatch) -> None:
    from studies import report

    adaptability.main([*TINY, "--methods", "full,lora", "--out", str(tmp_path)])
    printed = capsys.readouterr().out.split("\n\nrecords:")[0]
    (tmp_path / "adaptability_loss.png").unlink()
    monkeypatch.setattr(adaptability, "compute_group", lambda *a: pytest.fail("the report computed a cell"))
    report.main(["--out", str(tmp_path), "--format", "markdown"])
    assert printed in capsys.readouterr().out  # the study's own table, again
    assert (tmp_path / "adaptability_loss.png").stat().st_size > 1000
    assert "| LoRA | 2 | 64 |" in (tmp_path / "summary.md").read_text()
    report.main(["--out", str(tmp_path), "--format", "csv"])
    header, *rows = (tmp_path / "summary.csv").read_text().splitlines()
    assert header == "study,method,rank,lr,params,metric,mean,ci_low,ci_high,n,diverged,failed"
    assert any(row.startswith("adaptability,lora,2,") and ",test_loss," in row for row in rows)


def test_a_quick_timing_record_is_not_reused_by_a_full_run(tmp_path, capsys) -> None:
    from studies import train_time

    argv = ["--width", "8", "--pretrain-epochs", "5", "--adapt-epochs", "3", "--methods", "lora", "--ranks", "2",
            "--rounds", "2"]
    train_time.main([*argv, "--quick", "--out", str(tmp_path)])
    train_time.main([*argv, "--threads", "1", "--resume", "--out", str(tmp_path)])
    rows = [json.loads(line) for line in (tmp_path / "train_time.jsonl").read_text().splitlines()]
    rounds = [r["measurement"].split(",")[0] for r in rows if "block" in r]
    assert rounds == ["quick", "quick", "full", "full"]  # two rounds each
    assert "made with other settings" in capsys.readouterr().err
