"""``python -m studies.claims`` on a tiny configuration writes claims.md with a row per claim."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from nfl.claims import CLAIMS, VERDICTS
from studies import claims
from tests.test_byo_adapter import registry_restored  # noqa: F401 (a fixture: the copies leave the registry after)


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
            tuned_only = any(p.metric in claims.TUNED_ONLY for p in claim.parts)
            expected = 1 if tuned_only else 2  # a claim about tuned lrs has no fixed-lr verdict
            assert len(re.findall(rf"\*\*({'|'.join(VERDICTS)})\*\*", row.group(0))) == expected
        assert re.search(r"least-squares dW \d\.\d{3} inside, \d\.\d{3} reachable", section)
    assert (tmp_path / "no_free_lunch_w6_s3.png").exists()
    # verdicts.json holds the main tables' cells, as claims.md shows them (studies.replication reads it).
    cells = json.loads((tmp_path / claims.VERDICTS_FILE).read_text())["cells"]
    shown = re.findall(rf"\*\*({'|'.join(VERDICTS)})\*\*", text.split("## Robustness")[0])
    assert [c["verdict"] for c in cells] != [] and sorted(c["verdict"] for c in cells) == sorted(shown)
    assert {len(c["seeds"]) for c in cells} == {1}  # --quick: one seed
    # Stored cells are reused: a second run computes nothing new.
    store = tmp_path / "out_of_span-w6-s3" / "adaptability.jsonl"
    lines = store.read_text().count("\n")
    claims.main([*argv, "--resume"])
    assert store.read_text().count("\n") == lines


@pytest.mark.slow
@pytest.mark.usefixtures("registry_restored")
def test_identical_copies_of_lora_never_contradict_claim_9(tmp_path: Path) -> None:
    """Three LoRA copies from an external file (examples/lora_copies.py): methods identical by
    construction are 'within a few percent' or inconclusive, never contradicted."""
    example = Path(__file__).resolve().parents[1] / "examples" / "lora_copies.py"
    argv = ["--methods", "lora,lora_copy1,lora_copy2,lora_copy3", "--adapter-module", str(example), "--seeds", "6",
            "--widths", "8", "--shifts", "out_of_span", "--robust-widths", "8", "--long-budget", "20",
            "--common-rank", "4", "--pretrain-epochs", "30", "--adapt-epochs", "10", "--lr-grid", "1e-3:1e-1:3",
            "--threads", "1", "--out", str(tmp_path)]
    claims.main(argv)
    text = (tmp_path / "claims.md").read_text()
    rows = re.findall(r"^\| 9 \| .*$", text, re.M)
    assert rows and all("contradicted" not in row for row in rows)
    matrix = text.split("## Robustness")[1]
    assert re.search(r"^\| 9 \|( \(?[S?]\)? \|){3}$", matrix, re.M)  # (X): not firm


def test_an_unknown_shift_family_exits_2_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as stop:
        claims.main(["--shifts", "sideways", "--out", str(tmp_path)])
    assert stop.value.code == 2 and not any(tmp_path.iterdir())


def test_spearman_of_a_constant_resample_is_zero() -> None:
    assert claims._spearman(np.array([1e-3, 1e-3, 1e-3]), np.array([1.0, 2.0, 3.0])) == 0.0
    assert claims._spearman(np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 9.0])) == pytest.approx(1.0)


def _grid_records(index: int, optimum: float, sharpness: float, seeds: int = 8, method: str = "",
                  loss: float = 0.01, forgetting: float = 0.01) -> list[dict]:
    """A method whose validation loss is a parabola in log lr around ``optimum`` (noisy per seed),
    ``loss`` at the optimum, with its lambda_max and base-task loss after adaptation."""
    rng, method = np.random.default_rng(index), method or f"m{index}"
    out = []
    for seed in range(seeds):
        for lr in (1e-4, 10 ** -3.5, 1e-3, 10 ** -2.5, 1e-2, 10 ** -1.5, 1e-1):
            val = loss * 10 ** ((np.log10(lr) - np.log10(optimum)) ** 2 + rng.normal(0, 0.05))
            out.append({"method": method, "rank": 2, "seed": seed, "lr": lr,
                        "summary": {"min_val_loss": val, "test_loss": val, "diverged_at": None,
                                    "forgetting_base_test_loss": forgetting * (1 + rng.normal(0, 0.05)),
                                    "sharpness": sharpness * (1 + rng.normal(0, 0.05))}})
    return out


def _verdict(number: int, grid: list[dict]) -> str:
    from nfl.selection import at_tuned_lr

    (claim,) = [c for c in CLAIMS if c.number == number]
    return claims.judge(claim, at_tuned_lr(grid), grid, {}).verdict


@pytest.mark.parametrize(("ratio", "expected"), [(10.0, "supported"), (1.0, "contradicted"), (100.0, "contradicted")])
def test_claim_11_lora_best_lr_about_10x_full_fine_tunings(ratio: float, expected: str) -> None:
    grid = _grid_records(0, 1e-3, 1.0, method="full") + _grid_records(1, 1e-3 * ratio, 1.0, method="lora")
    assert _verdict(11, grid) == expected


def test_claim_12_pissa_10x_sharper_10x_lower_lr_and_milora_2x_and_3x() -> None:
    lora, pissa, milora = (_grid_records(0, 1e-2, 5.0, method="lora"), _grid_records(1, 1e-3, 50.0, method="pissa"),
                           _grid_records(2, 10 ** -2.5, 10.0, method="milora"))
    assert _verdict(12, lora + pissa + milora) == "supported"
    as_sharp_as_lora = _grid_records(1, 1e-2, 5.0, method="pissa")
    assert _verdict(12, lora + as_sharp_as_lora + milora) == "contradicted"


def test_claim_13_lora_learns_less_and_forgets_less_than_full_fine_tuning() -> None:
    full = _grid_records(0, 1e-3, 1.0, method="full", loss=0.002, forgetting=0.05)
    lora = _grid_records(1, 1e-2, 1.0, method="lora", loss=0.004, forgetting=0.02)
    assert _verdict(13, full + lora) == "supported"
    learns_as_much = _grid_records(0, 1e-3, 1.0, method="lora", loss=0.002, forgetting=0.02)  # as full, seed by seed
    assert _verdict(13, full + learns_as_much) == "not supported"


def test_claim_10_tracks_1_over_sharpness_with_seeds_resampled_and_lrs_retuned() -> None:
    """Optima exactly at 1 / lambda_max (between grid points): rho near 1 and supported; optima
    that ignore sharpness: not supported."""
    sharpness = (1.0, 3.0, 10.0, 30.0, 100.0)
    tracking = [r for i, lam in enumerate(sharpness) for r in _grid_records(i, 0.03 / lam, lam)]
    effect = claims.lr_sharpness(tracking, resamples=200)
    assert effect.estimate == pytest.approx(1.0) and effect.low > 0.5 and effect.interval == "seed bootstrap"
    flat = [r for i, lam in enumerate(sharpness) for r in _grid_records(i, 3e-3, lam)]
    assert claims.lr_sharpness(flat, resamples=200).low < 0.3


def _rank_sweep(optimum_at: dict[int, float]) -> list[dict]:
    """LoRA records at each rank of ``optimum_at``, each rank's validation loss a parabola in log lr
    around its optimum."""
    return [{**r, "method": "lora", "rank": rank}
            for i, (rank, optimum) in enumerate(optimum_at.items()) for r in _grid_records(10 + i, optimum, 1.0)]


def test_claim_14_lora_best_lr_independent_of_rank_is_supported_and_one_over_rank_contradicted() -> None:
    (claim,) = [c for c in CLAIMS if c.number == 14]
    grid = _grid_records(0, 1e-2, 1.0, method="lora")
    flat = _rank_sweep({1: 1e-2, 4: 1e-2, 16: 1e-2, 64: 1e-2})
    assert claims.judge(claim, grid, grid, {}, flat).verdict == "supported"
    one_over_rank = _rank_sweep({r: 0.03 / r for r in (1, 4, 16, 64)})
    effect = claims.rank_lr_change(one_over_rank, "lora", resamples=200)
    assert effect.estimate == pytest.approx(-np.log10(64), abs=0.15)  # the optimum falls 64x from rank 1 to 64
    assert claims.judge(claim, grid, grid, {}, one_over_rank).verdict == "contradicted"
    assert claims.judge(claim, grid, grid, {}).text.startswith("— (needs the rank sweep")


def test_the_rank_sweep_adapts_its_column_s_pretrained_models_with_alpha_fixed(tmp_path: Path) -> None:
    from studies.common import StudySetup

    parser = claims.make_parser()
    column = StudySetup(parser, ["--width", "8", "--pretrain-epochs", "5", "--seeds", "3", "--out", str(tmp_path)])
    sweep = claims.rank_sweep_setup(column, parser)
    assert sweep.config.hparams_of("lora") == {"alpha": claims.RANK_SWEEP_ALPHA}
    assert sweep.method_ranks == {"lora": list(claims.RANK_SWEEP)}
    assert sweep.out == tmp_path / "lora_ranks" and sweep.seeds == column.seeds
    assert sweep.pretrained(43)[1] is column.pretrained(43)[1]  # pretrained once, for both
    wider = StudySetup(parser, ["--width", "16", "--out", str(tmp_path / "w16")])
    with pytest.raises(ValueError, match="pretrain differently"):
        wider.share_pretraining(column)


def _two_lr_records(method: str, val: dict[float, float], early: dict[float, float], seeds: int = 10) -> list[dict]:
    rng = np.random.default_rng(len(method))
    return [{"method": method, "rank": 2, "seed": seed, "lr": lr,
             "summary": {"min_val_loss": val[lr] * (1 + rng.normal(0, 0.2)), "diverged_at": None,
                         "early_test_loss": early[lr] * (1 + rng.normal(0, 0.01))}}
            for seed in range(seeds) for lr in val]


def test_an_effect_at_tuned_lrs_carries_the_choice_of_lr_where_two_grid_points_nearly_tie() -> None:
    """LoRA's two lrs tie on validation but give early losses 1.5x apart: which one the seeds select
    moves the effect, so its interval must cover both readings; a clear optimum leaves it as it was."""
    from nfl.claims import Part, paired_difference
    from nfl.selection import at_tuned_lr

    part = Part("early_loss", ("pissa",), ("lora",), "less")
    pissa = _two_lr_records("pissa", {1e-2: 1.0, 1e-1: 5.0}, {1e-2: 0.03, 1e-1: 0.03})
    for lora_val, widened in (({1e-2: 1.0, 1e-1: 1.0}, True), ({1e-2: 1.0, 1e-1: 5.0}, False)):
        grid = pissa + _two_lr_records("lora", lora_val, {1e-2: 0.03, 1e-1: 0.045})
        chosen = at_tuned_lr(grid)
        sides = (claims.per_seed(chosen, side, "early_test_loss") for side in (part.treatment, part.control))
        plain = paired_difference(*sides)
        effect = claims.with_lr_selection(plain, grid, part, "early_test_loss", resamples=400)
        both = (0.0, np.log10(0.03 / 0.045))  # the effect at either of LoRA's lrs
        covers = effect.low <= min(both) + 0.01 and effect.high >= max(both) - 0.01
        assert covers == widened, (effect, plain)
        assert effect.estimate == plain.estimate and effect.interval.endswith("lr re-selected")


def test_a_seed_whose_pretraining_fit_far_worse_than_the_median_is_named() -> None:
    def record(seed: int, loss: float) -> dict:
        return {"seed": seed, "summary": {"pretrained_base_val_loss": loss}}

    usual = [record(seed, 0.001 + 0.0001 * seed) for seed in range(8)]
    assert claims.pretraining_outliers(usual) == ""
    note = claims.pretraining_outliers([*usual, record(8, 0.05), record(9, 0.0005)])
    assert "seed 8 at 0.05 (×37)" in note and "seed 9" not in note and "loss 0.00135" in note


@pytest.mark.parametrize(("loss", "firm"), [(0.05, True), (0.0105, False)])
def test_a_verdict_is_firm_only_when_its_intervals_lie_well_away_from_every_margin(loss: float, firm: bool) -> None:
    """MoS against LoRA (claim 2, a 10% margin), both supported: x5.9 [5.3, 6.6] is firm; x1.24 [1.11, 1.38],
    whose low end is just past the margin, is not, and the matrix shows it in parentheses."""
    from nfl.selection import at_tuned_lr

    grid = _grid_records(0, 1e-2, 1.0, method="lora") + _grid_records(1, 1e-2, 1.0, method="mos", loss=loss)
    (claim,) = [c for c in CLAIMS if c.number == 2]
    judged = claims.judge(claim, at_tuned_lr(grid), grid, {})
    assert judged.verdict == "supported" and judged.firm is firm and ("(firm)" in judged.text) is firm
    assert judged.short == ("S" if firm else "(S)")
