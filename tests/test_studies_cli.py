"""Every study's command line on a tiny configuration: it writes its records and figures."""

from __future__ import annotations

from pathlib import Path

import pytest

from nfl.results import ResultStore
from studies import grad_norm, init_time, pareto, train_time

pytestmark = pytest.mark.slow  # whole studies / reference parity: the full suite only

TINY = [
    "--pretrain-epochs",
    "10",
    "--adapt-epochs",
    "3",
    "--seeds",
    "1",
    "--quick",
    "--width",
    "8",
    "--targets",
    "layer1",
]


def read(path: Path) -> list[dict]:
    """The store's records as a reader sees them: whole, with their run's config and environment."""
    return ResultStore(path).records()


def assert_figure(stem: Path) -> None:
    for suffix in (".png", ".pdf"):
        assert stem.with_suffix(suffix).stat().st_size > 1000, stem.with_suffix(suffix)


def test_grad_norm_sweeps_ranks(tmp_path: Path) -> None:
    grad_norm.main([*TINY, "--methods", "full,lora,miss_e", "--ranks", "1,2", "--out", str(tmp_path)])
    records = read(tmp_path / "grad_norm.jsonl")
    assert [(r["method"], r["rank"]) for r in records] == [
        ("full", None),
        ("lora", 1),
        ("lora", 2),
        ("miss_e", 1),
        ("miss_e", 2),
    ]
    assert all(r["summary"]["initial_grad_norm"] > 0 for r in records)
    assert_figure(tmp_path / "grad_norm")


def test_init_time_leaves_out_full_fine_tuning_and_times_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    init_time.main([*TINY, "--methods", "full,pissa", "--ranks", "1,2,16", "--rounds", "2", "--out", str(tmp_path)])
    stored = read(tmp_path / "init_time.jsonl")
    rounds = [r for r in stored if "block" in r]  # one record per cell and round, beside one per cell
    assert sorted((r["method"], r["rank"], r["round"]) for r in rounds) == [
        ("pissa", q, k) for q in (1, 2) for k in (0, 1)
    ]
    assert all(r["block"]["seconds"] > 0 and r["block"]["clock"] == "thread_cpu" for r in rounds)
    records = sorted((r for r in stored if "summary" in r), key=lambda r: r["rank"])
    assert [r["summary"]["trainable_params"] for r in records] == [16, 32]
    assert "skipping pissa at rank 16: PiSSA needs 1 <= rank <= min(out, in) = 8, got 16" in capsys.readouterr().err
    assert_figure(tmp_path / "init_time")


def test_train_time_records_time_and_memory(tmp_path: Path) -> None:
    argv = [*TINY, "--methods", "full,lora", "--ranks", "2", "--device", "cpu", "--threads", "1", "--rounds", "2"]
    train_time.main([*argv, "--out", str(tmp_path)])
    records = read(tmp_path / "train_time.jsonl")
    rounds = [r for r in records if "block" in r]
    assert sorted((r["method"], r["round"]) for r in rounds) == [("full", 0), ("full", 1), ("lora", 0), ("lora", 1)]
    lora = next(r for r in records if r["method"] == "lora" and "memory" in r)
    # LoRA r=2 on 8x8: 32 float32 parameters -> 128 B each for params and grads, 256 B Adam moments + 2 steps.
    assert lora["memory"]["parameters"] == 128 and lora["memory"]["total"] == 128 * 4 + 2 * 4
    assert lora["memory"]["measured_peak"] is None  # the CPU has no allocator statistics
    assert all(r["block"]["seconds"] > 0 for r in rounds) and lora["env"]["cpu_threads"] == 1
    assert_figure(tmp_path / "train_time")


def test_pareto_writes_both_figures_the_front_and_a_table(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pareto.main([*TINY, "--methods", "full,lora,miss_e", "--ranks", "1", "--out", str(tmp_path)])
    for stem in ("figure1", "figure2", "pareto"):
        assert_figure(tmp_path / stem)
    adapt = read(tmp_path / "adaptability.jsonl")
    runs = [(r["method"], r["rank"]) for r in adapt]
    assert list(dict.fromkeys(runs)) == [("full", None), ("lora", 2), ("miss_e", 4)]
    assert {r["lr"] for r in adapt} == {1e-3, 1e-2, 1e-1} and len(runs) == 9  # --quick: three grid points, one seed
    timed = {(r["method"], r["rank"]) for r in read(tmp_path / "train_time.jsonl")}
    assert timed == {("full", None), ("lora", 1), ("lora", 2), ("miss_e", 1), ("miss_e", 4)}  # sweep + default ranks
    out = capsys.readouterr().out
    for column in ("tuned lr", "test loss", "forgetting", "init ms", "step ms", "memory KiB", "grad norm"):
        assert column in out


def test_lr_writes_its_figures_and_the_fixed_and_tuned_table(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from studies import lr

    lr.main([*TINY, "--methods", "full,lora,pissa", "--out", str(tmp_path)])
    for stem in ("lr", "sharpness"):
        assert_figure(tmp_path / stem)
    out = capsys.readouterr().out
    assert "test loss at lr 1e-3" in out and "spread across methods" in out and "Spearman" in out
