"""The teaching demos' command lines on a tiny configuration: records, figures and tables."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from nfl.selection import at_tuned_lr
from studies import anatomy, rank
from tests.test_studies_cli import TINY, assert_figure, read

DOCS = Path(__file__).resolve().parent.parent / "docs"

# Ten pretraining steps learn nothing, as they should not need to here: the warning is expected.
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::nfl.training.DegenerateTaskWarning")]


def test_anatomy_records_each_update_its_rank_bound_and_subspaces(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    anatomy.main([*TINY, "--methods", "full,lora,pissa,miss_e", "--out", str(tmp_path)])
    records = at_tuned_lr(read(tmp_path / "anatomy.jsonl"))  # every grid lr is stored; ΔW is shown at the tuned one
    assert [(r["method"], r["rank"]) for r in records] == [("full", None), ("lora", 2), ("pissa", 2), ("miss_e", 4)]
    # Width 8: full fine-tuning reaches rank 8, PiSSA's BA - B0A0 twice its rank.
    assert [r["summary"]["rank_bound"] for r in records] == [8, 2, 4, 4]
    for r in records:
        s = r["summary"]
        assert len(r["delta_weight"]) == 8 and all(len(row) == 8 for row in r["delta_weight"])
        assert len(r["singular_values"]) == 8
        assert 1 <= s["delta_rank"] <= s["rank_bound"] and s["subspace_rank"] == min(2, s["rank_bound"])
        assert all(0 <= s[k] <= 1 + 1e-9 for k in ("phi_top", "phi_bottom", "phi_random"))
        assert s["amplification"] == pytest.approx(s["delta"] / s["projected_W0"])
    for stem in ("anatomy", "subspace"):
        assert_figure(tmp_path / stem)
    out = capsys.readouterr().out
    for column in ("rank bound", "φ top-r", "‖UᵀW0V‖_F", "amplification"):
        assert column in out


def test_anatomy_rejects_a_subspace_rank_below_one(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as stop:
        anatomy.main([*TINY, "--subspace-rank", "0", "--out", str(tmp_path)])
    assert stop.value.code == 2
    assert "--subspace-rank must be a positive integer" in capsys.readouterr().err
    assert not (tmp_path / "anatomy.jsonl").exists()


@pytest.mark.parametrize("study", [anatomy, rank])
def test_diverged_runs_are_recorded_and_the_demos_still_draw(
    study, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    study.main([*TINY, "--methods", "lora", "--ranks", "2", "--adapt-lr", "1e30", "--out", str(tmp_path)])
    name = study.__name__.rsplit(".", 1)[1]
    (record,) = read(tmp_path / f"{name}.jsonl")
    assert record["summary"]["diverged_at"] >= 1
    assert "diverged" in capsys.readouterr().out
    assert_figure(tmp_path / name)


def test_rank_sweeps_every_method_and_keeps_the_summaries(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rank.main([*TINY, "--methods", "full,lora,vera", "--ranks", "1,2", "--out", str(tmp_path)])
    records = at_tuned_lr(read(tmp_path / "rank.jsonl"))
    assert [(r["method"], r["rank"]) for r in records] == [
        ("full", None),
        ("lora", 1),
        ("lora", 2),
        ("vera", 1),
        ("vera", 2),
    ]
    assert [r["summary"]["trainable_params"] for r in records[1:]] == [16, 32, 9, 10]  # LoRA r(d + k), VeRA d + r
    for r in records:
        assert "history" not in r
        assert {"min_val_loss", "test_loss", "forgetting_base_test_loss", "shifted_test_loss_before"} <= r[
            "summary"
        ].keys()
    assert_figure(tmp_path / "rank")
    assert "base-task loss after" in capsys.readouterr().out


def test_the_tour_script_runs_every_command_and_makes_every_image_the_tour_shows() -> None:
    tour, script = (DOCS / "tour.md").read_text(), (DOCS / "make_figures.sh").read_text()
    commands = re.findall(r"^python -m studies\.\S.*$", tour, flags=re.MULTILINE)
    assert len(commands) == 5
    assert all(f'{command} "$@"' in script for command in commands)
    images = re.findall(r"!\[[^]]*\]\((figures/[^)]+)\)", tour)
    assert images and all((DOCS / image).is_file() for image in images)


def test_the_tour_quotes_the_committed_numbers(capsys: pytest.CaptureFixture) -> None:
    spec = importlib.util.spec_from_file_location("tour_numbers", DOCS / "tour_numbers.py")
    tour_numbers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tour_numbers)
    assert tour_numbers.main([]) == 0, capsys.readouterr().out
