"""Figures read at a glance: fixed styles, mathtext labels, plain ticks, intervals that log axes
can draw, no hidden points, loss curves with their own range and the right wording for one seed."""

from __future__ import annotations

import dataclasses

import matplotlib.pyplot as plt
import numpy as np
import pytest

import adapters
from adapters import registry
from figures.curves import curve_label, draw_loss_curves
from figures.efficiency import draw_cost_vs_params
from figures.pareto import dodged
from figures.style import method_style, plain_log_ticks
from nfl.measure.rounds import summarise


def test_fixed_colours_do_not_change_when_a_method_is_added(monkeypatch: pytest.MonkeyPatch) -> None:
    before = {name: method_style(name) for name in adapters.names()}
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    newcomer = dataclasses.replace(adapters.get("lora"), name="newcomer", label="Newcomer", tex_label="Newcomer",
                                   color="#123456", marker="X")
    registry.add(newcomer)
    assert {name: method_style(name) for name in before} == before
    assert method_style("newcomer") == {"color": "#123456", "marker": "X", "label": "Newcomer"}


def test_every_built_in_method_has_its_own_colour_and_marker() -> None:
    styles = [method_style(name) for name in adapters.names()]
    assert len({s["color"] for s in styles}) == len(styles)
    assert len({s["marker"] for s in styles}) == len(styles)


def test_labels_use_mathtext_for_superscripts() -> None:
    label = method_style("miss_e")["label"]
    assert label.startswith("MiSS$") and "^" not in label.replace("$^e$", "").replace("$^{e}$", "")


def tick_labels(ax: plt.Axes) -> list[str]:
    """The y axis's labels inside its view, major and minor."""
    ax.figure.canvas.draw()
    low, high = ax.get_ylim()
    return [t.get_text() for t in ax.yaxis.get_ticklabels(which="both")
            if t.get_text() and low <= t.get_position()[1] <= high]


def test_log_axes_get_plain_tick_labels_from_a_ten_thousandth_to_ten_thousand() -> None:
    fig, (narrow, decades, wide) = plt.subplots(1, 3)
    narrow.semilogy([1, 2], [0.04, 0.3])
    decades.semilogy([1, 2], [200, 1500])  # minor ticks labelled: "3×10²" ran into "4×10²"
    wide.semilogy([1, 2], [1e-6, 1.0])
    plain_log_ticks(fig)
    for ax in (narrow, decades):
        assert tick_labels(ax) and all("10^" not in t and "times" not in t for t in tick_labels(ax))
    assert "300" in tick_labels(decades) and "0.001" in tick_labels(wide) and "0.0001" in tick_labels(wide)
    assert any("10^" in t for t in tick_labels(wide))  # 1e-6 keeps its power of ten
    plt.close(fig)


def timed(method: str, rank: int, seconds: list[float]) -> dict:
    blocks = [{"clock": "thread_cpu", "seconds": s, "wall_s": s, "calls": 1} for s in seconds]
    return {"method": method, "rank": rank, "summary": {"trainable_params": 16 * rank}, "timing": summarise(blocks)}


def test_timing_points_are_the_fastest_round_with_a_bar_up_to_the_median() -> None:
    records = [timed("lora", 1, [0.0001, 0.0001, 0.0003, 0.0009, 0.0009]), timed("lora", 2, [0.001] * 5)]
    fig, ax = plt.subplots()
    draw_cost_vs_params(ax, records, "t", "step")
    assert list(ax.containers[0].lines[0].get_ydata()) == pytest.approx([0.1, 1.0])  # ms, the fastest rounds
    lower, upper = ax.containers[0].lines[2][0].get_segments()[0][:, 1]
    assert lower == pytest.approx(0.1) and upper == pytest.approx(0.3), "from the fastest round to the median"
    assert "thread CPU time" in ax.get_ylabel() and "fastest of 5 rounds" in ax.get_ylabel()
    plt.close(fig)


def test_points_at_equal_parameters_are_spread_so_none_hides_another() -> None:
    xs = dodged([256, 256, 256, 256, 8320])
    assert len(set(xs)) == 5 and xs[-1] == 8320
    assert np.exp(np.mean(np.log(xs[:4]))) == pytest.approx(256)  # centred on the true value


def curve_records(n_seeds: int) -> list[dict]:
    out = []
    for seed in range(n_seeds):
        for method, end in (("full", 0.003), ("lora", 0.040), ("pissa", 0.044)):
            val = list(np.geomspace(0.047, end, 11) * (1 + 0.01 * seed))
            out.append({"method": method, "rank": None, "seed": seed, "summary": {},
                        "history": {"val_loss": val, "test_loss": val, "train_loss": val[1:]}})
    return out


def test_loss_curves_span_the_adapters_and_say_where_full_fine_tuning_went() -> None:
    fig, ax = plt.subplots()
    seeds = draw_loss_curves(ax, curve_records(1), zero_loss=0.5, key="test_loss")
    low, high = ax.get_ylim()
    assert seeds == 1 and 0.03 < low < 0.04 and 0.047 < high < 0.06  # the adapters' range, not 0.003 ... 0.5
    notes = [t.get_text() for t in ax.texts]
    assert any(t.startswith("Full FT ↓ 0.003") for t in notes)
    assert any(t.startswith("predict zero ↑") for t in notes)
    assert {"LoRA", "PiSSA"} <= set(notes), "every adapter is named at its end"
    assert ax.get_ylabel() == "test MSE, shifted task"
    plt.close(fig)
    with pytest.raises(ValueError, match="choose one of train_loss, val_loss, test_loss"):
        curve_label("loss")
