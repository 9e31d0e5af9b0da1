"""Does the toy transfer? The MLP's claims and ranking of the methods against the GPT's: the transfer
table and Kendall's tau on hand-made records, and ``studies.claims --testbeds mlp,gpt`` on a tiny run."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from figures.claims import rank_transfer_figure
from nfl.claims import CLAIMS, log_losses, ranks
from studies import claims

METHODS = ("full", "lora", "pissa", "mos", "vera")


def _tuned(losses: dict[str, float], seeds: int = 6, noise: float = 0.02, seed: int = 0) -> list[dict]:
    """Records at one lr per method (so the tuned lr is that one): test loss ``losses[method]`` per seed,
    with a small multiplicative noise."""
    rng = np.random.default_rng(seed)
    out = []
    for method, loss in losses.items():
        for s in range(seeds):
            value = loss * 10 ** rng.normal(0, noise)
            out.append({"method": method, "rank": 2, "seed": s, "lr": 1e-3,
                        "summary": {"min_val_loss": value, "test_loss": value, "diverged_at": None}})
    return out


def test_log_losses_keep_the_seeds_every_method_has_and_ranks_share_ties() -> None:
    records = _tuned({"lora": 0.1, "pissa": 0.01}, seeds=3)
    records = [r for r in records if not (r["method"] == "pissa" and r["seed"] == 2)]
    losses = log_losses(records)
    assert {m: v.size for m, v in losses.items()} == {"lora": 2, "pissa": 2}
    assert ranks(losses) == {"lora": 2.0, "pissa": 1.0}
    assert ranks({"a": np.array([1.0]), "b": np.array([1.0]), "c": np.array([0.0])}) == {"a": 2.5, "b": 2.5, "c": 1.0}


def test_kendall_tau_is_1_for_the_same_ranking_and_minus_1_for_the_reversed_one() -> None:
    mlp = _tuned({m: 10.0 ** -i for i, m in enumerate(METHODS)}, seed=1)
    same = _tuned({m: 2 * 10.0 ** -i for i, m in enumerate(METHODS)}, seed=2)  # other losses, the same order
    reversed_ = _tuned({m: 10.0 ** i for i, m in enumerate(METHODS)}, seed=3)
    assert claims.ranking_row("out_of_span", mlp, same) == "| out_of_span | 5 | 6 / 6 | 1.00 [1.00, 1.00] |"
    assert claims.ranking_row("out_of_span", mlp, reversed_) == "| out_of_span | 5 | 6 / 6 | -1.00 [-1.00, -1.00] |"
    one_in_common = _tuned({"lora": 1.0, "dora": 2.0})
    assert "needs 2 methods on both testbeds" in claims.ranking_row("in_span", mlp, one_in_common)


def test_a_noisy_ranking_has_a_wide_interval_around_its_tau() -> None:
    mlp = _tuned({m: 1.0 + 0.01 * i for i, m in enumerate(METHODS)}, noise=0.05, seed=4)
    gpt = _tuned({m: 1.0 + 0.01 * i for i, m in enumerate(METHODS)}, noise=0.05, seed=5)
    tau, low, high = map(float, re.findall(r"-?\d\.\d\d", claims.ranking_row("mix", mlp, gpt).split("|")[4]))
    assert low <= tau <= high and high - low > 0.5


@pytest.mark.parametrize(("mlp", "gpt", "expected"), [
    ("supported", "supported", "yes"), ("not supported", "not supported", "yes"), ("supported", "contradicted", "no"),
    ("supported", "not supported", "no"), ("inconclusive", "inconclusive", "—"), ("supported", "inconclusive", "—"),
    ("", "supported", "—"),
])
def test_verdicts_agree_only_where_both_are_decisive(mlp: str, gpt: str, expected: str) -> None:
    assert claims.agreement(mlp, gpt) == expected


def test_transfer_table_puts_each_claims_verdicts_side_by_side() -> None:
    mlp_setting, gpt_setting = claims.Setting(64, "out_of_span", None, 100), claims.Setting(64, "", None, 150, "gpt")
    verdicts = ("supported", "contradicted", "inconclusive")
    judged = lambda shift, firm: [claims.Judged(verdicts[(i + shift) % 3], (), "", firm)  # noqa: E731
                                  for i in range(len(CLAIMS))]
    records = _tuned({m: 10.0 ** -i for i, m in enumerate(METHODS)})
    main = claims.Column(mlp_setting, records, {})
    gpt = claims.Column(gpt_setting, records, {})
    lines = claims.transfer_lines(main, gpt, {mlp_setting: judged(0, True), gpt_setting: judged(1, False)},
                                  {"out_of_span": main})
    text = "\n".join(lines)
    head = "| # | claim | MLP w64 out-of-span, paper ranks, 100 steps | gpt d64, paper ranks, 150 steps | agree |"
    assert head in text
    first, second, third = (re.search(rf"^\| {n} \| .*$", text, re.M).group(0) for n in (1, 2, 3))
    assert first.endswith("| S | (C) | no |") and second.endswith("| C | (?) | — |")  # the GPT's not firm
    assert third.endswith("| ? | (S) | — |")
    assert "| out_of_span | 5 | 6 / 6 | 1.00 [1.00, 1.00] |" in text


def test_rank_transfer_figure_places_each_method_at_its_two_ranks() -> None:
    import matplotlib.pyplot as plt

    mlp = _tuned({"full": 0.01, "lora": 0.1, "pissa": 1.0})
    gpt = _tuned({"full": 1.0, "lora": 0.1, "pissa": 0.01, "mos": 3.0})  # mos only on the GPT: left out
    fig = rank_transfer_figure({"out_of_span": mlp}, gpt, "test")
    points = {(float(line.get_xdata()[0]), float(line.get_ydata()[0])) for line in fig.axes[0].lines[1:]}
    diagonal = fig.axes[0].lines[0]
    plt.close(fig)
    assert points == {(1.0, 3.0), (2.0, 2.0), (3.0, 1.0)}
    assert list(diagonal.get_xdata()) == [1, 3] and list(diagonal.get_ydata()) == [1, 3]


def test_bad_testbeds_exit_2_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    for argv, flag in ((["--testbeds", "gpt"], "--testbeds"), (["--testbeds", "mlp,bert"], "--testbeds"),
                       (["--testbed", "gpt"], "--testbed:")):
        with pytest.raises(SystemExit) as stop:
            claims.main([*argv, "--out", str(tmp_path)])
        assert stop.value.code == 2 and flag in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_claims_on_mlp_and_gpt_write_both_columns_the_transfer_table_and_the_figure(tmp_path: Path) -> None:
    argv = ["--testbeds", "mlp,gpt", "--quick", "--methods", "full,lora,pissa,mos", "--seeds", "3", "--widths", "6",
            "--shifts", "out_of_span,in_span", "--robust-widths", "", "--pretrain-epochs", "10", "--adapt-epochs", "10",
            "--eval-every", "5", "--d-model", "16", "--n-layer", "1", "--n-head", "2", "--context", "16",
            "--lr-grid", "1e-3:1e-1:3", "--threads", "1", "--out", str(tmp_path)]
    claims.main(argv)
    text = (tmp_path / "claims.md").read_text()
    assert (tmp_path / "gpt" / "adaptability.jsonl").exists() and (tmp_path / "out_of_span-w6-s10").is_dir()
    gpt_section = text.split("## testbed gpt, d_model 16")[1].split("## ")[0]
    assert "| # | claim | measurement | tuned lr, 10 steps |" in gpt_section  # no fixed-lr column on the GPT
    matrix = text.split("## Robustness")[1].split("## ")[0]
    assert "| # | w6 out-of-span, paper ranks, 10 steps | w6 in-span, paper ranks, 10 steps | gpt d16, paper ranks, " \
           "10 steps |" in matrix
    transfer = text.split("## Does the toy transfer?")[1]
    for claim in CLAIMS:
        verdict = r"\(?[SNC?]\)?|—"  # in parentheses where not firm
        assert re.search(rf"^\| {claim.number} \| .* \| ({verdict}) \| ({verdict}) \| (yes|no|—) \|$", transfer, re.M)
    for shift in ("out_of_span", "in_span"):
        assert re.search(rf"^\| {shift} \| 4 \| 3 / 3 \| -?\d\.\d\d \[-?\d\.\d\d, -?\d\.\d\d\] \|$", transfer, re.M)
    assert "![rank on the MLP against rank on the GPT](rank_transfer.png)" in transfer
    assert (tmp_path / "rank_transfer.png").exists()
