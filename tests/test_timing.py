"""nfl.measure's timing: clocks, blocks (the CUDA logic on a fake device), what the studies time,
interleaved rounds (order, resumption, aggregation), the noise rule and how timings are printed.

Only structural properties and orders of magnitude far beyond any noise are asserted: the machine
is shared and noisy, so no timing targets.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

import adapters
from nfl.config import config_digest
from nfl.measure.blocks import BlockTimer
from nfl.measure.clocks import clock_for
from nfl.measure.devices import accelerator_for, cpu_name
from nfl.measure.prepared import prepared_init, prepared_train_step
from nfl.measure.rounds import (
    StopRule,
    aggregate_stored,
    format_ms,
    noisy_line,
    round_cell,
    round_order,
    run_rounds,
    summarise,
)
from nfl.measure.runner import checks, quick_plan
from nfl.results import ResultStore, is_context
from nfl.stats import format_mean_ci
from nfl.sweep import Cell, SweepInterrupted
from nfl.tasks import Dataset
from tests.conftest import TwoLayer


class FakeGpu:
    """A device whose clock only moves when the timed function says so, logging every call."""

    name = "Fake GPU"

    def __init__(self) -> None:
        self.now = 0.0
        self.log: list[str] = []

    def synchronize(self) -> None:
        self.log.append("sync")

    def event(self) -> FakeEvent:
        return FakeEvent(self)

    def work(self, seconds: float) -> None:
        self.log.append("fn")
        self.now += seconds


class FakeEvent:
    def __init__(self, gpu: FakeGpu):
        self.gpu, self.at = gpu, float("nan")

    def record(self) -> None:
        self.gpu.log.append("record")
        self.at = self.gpu.now

    def elapsed_time(self, end: FakeEvent) -> float:
        return (end.at - self.at) * 1e3  # milliseconds, as torch.cuda.Event


def test_an_unknown_device_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no measurement back end for device meta"):
        accelerator_for("meta")


def test_prepared_init_builds_and_leaves_the_layer_untouched() -> None:
    layer = TwoLayer().layer1
    before = copy.deepcopy(layer.state_dict())
    build = prepared_init("lora", layer, 2, "cpu")
    assert isinstance(build()[0], adapters.get("lora").adapter)
    assert isinstance(build()[0], adapters.get("lora").adapter), "a second build starts from the same fresh layer"
    assert all(torch.equal(before[k], v) for k, v in layer.state_dict().items())


def tiny_data() -> Dataset:
    g = torch.Generator().manual_seed(0)
    return Dataset(
        torch.randn(8, 16, generator=g),
        torch.randn(8, 10, generator=g),
        torch.randn(4, 16, generator=g),
        torch.randn(4, 10, generator=g),
        torch.randn(4, 16, generator=g),
        torch.randn(4, 10, generator=g),
    )


def test_train_step_is_warmed_up_and_calls_on_step_mid_schedule(monkeypatch: pytest.MonkeyPatch) -> None:
    model = TwoLayer()
    hooks = adapters.attach(model, "lora", "layer1", rank=2)
    calls: list[tuple[int, int]] = []
    monkeypatch.setattr(hooks[0], "on_step", lambda step, total: calls.append((step, total)))
    prepared_train_step(model, hooks, tiny_data(), 1e-2, "cpu", total_steps=40)
    assert calls == [(20, 40)], "one step is taken before anything is timed, in the middle of the schedule"
    assert hooks[0].lora_B.abs().sum() > 0, "the warm-up step must have updated the adapter"


# --- the thread-CPU clock and blocks -----------------------------------------------------------


def spin(seconds: float):
    """A callable that keeps the CPU busy for about ``seconds`` of wall time."""

    def fn() -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass

    return fn


def test_the_cpu_clock_measures_a_deliberately_slower_callable_as_slower() -> None:
    # 0.2 ms against 4 ms of busy work: 20x, far beyond what load does to a thread's CPU time.
    fast = BlockTimer(spin(0.0002), "cpu", 1, warmup=1, target_s=0.004)
    slow = BlockTimer(spin(0.004), "cpu", 1, warmup=1, target_s=0.004)
    assert fast.clock == slow.clock == "thread_cpu"
    assert slow()["seconds"] > 3 * fast()["seconds"]


def test_the_cpu_clock_does_not_count_waiting() -> None:
    # Sleeping is what a descheduled thread does: wall time passes, the thread's CPU time does not.
    block = BlockTimer(lambda: time.sleep(0.005), "cpu", 1, warmup=0, target_s=0.0, max_calls=1)()
    assert block["wall_s"] >= 0.005 and block["seconds"] < 0.002 and block["calls"] == 1


def test_a_block_that_doubling_overshoots_is_trimmed_to_just_above_its_target() -> None:
    gpu = FakeGpu()
    timer = BlockTimer(lambda: gpu.work(0.0009), gpu, 1, warmup=0, target_s=0.002, repeats=1)
    assert timer.calls == 3  # doubling stops at 4 calls (3.6 ms); 3 calls (2.7 ms) are the fewest above 2.2 ms
    assert timer()["seconds"] * timer.calls >= 0.002


def test_several_threads_fall_back_to_the_wall_clock() -> None:
    assert clock_for("cpu", 1) == "thread_cpu" and clock_for("cpu", 2) == "wall"
    assert clock_for(FakeGpu(), 1) == "cuda_events"
    assert BlockTimer(lambda: None, "cpu", 2, warmup=0, target_s=0.0)()["clock"] == "wall"


def test_a_block_runs_on_the_threads_it_is_given_and_restores_them() -> None:
    before, wanted = torch.get_num_threads(), 1 if torch.get_num_threads() > 1 else 2
    seen: list[int] = []
    timer = BlockTimer(lambda: seen.append(torch.get_num_threads()), "cpu", wanted, warmup=1, target_s=0.0)
    timer()
    assert set(seen) == {wanted} and torch.get_num_threads() == before


def test_a_block_is_calibrated_past_its_target_and_times_whole_blocks_on_events() -> None:
    gpu = FakeGpu()
    timer = BlockTimer(lambda: gpu.work(0.001), gpu, 1, warmup=2, target_s=0.004, repeats=1)
    assert timer.calls == 5  # the warm-up calls took 1 ms: 5 calls take 1.1 x 4 ms
    cold = BlockTimer(lambda: gpu.work(0.001), gpu, 1, warmup=0, target_s=0.004, repeats=1)
    assert cold.calls == 4  # without warm-up calls to go by: 1, 2 calls fall short of 4 ms; 4 calls reach it
    gpu.log.clear()
    block = timer()
    assert block["seconds"] == pytest.approx(0.001) and block["calls"] == 5 and block["clock"] == "cuda_events"
    assert gpu.log == ["fn", "sync", "record", *["fn"] * 5, "record", "sync"]  # one warm call first


def test_a_block_starts_warm_so_a_cold_first_call_is_not_measured() -> None:
    # What a round does to a cell: other cells run between its blocks and leave it cold.
    state = {"cold": True}

    def fn() -> None:
        spin(0.01 if state["cold"] else 0.0005)()
        state["cold"] = False

    timer = BlockTimer(fn, "cpu", 1, warmup=1, target_s=0.0, max_calls=1)
    state["cold"] = True
    assert timer()["seconds"] < 0.005


# --- interleaved rounds ------------------------------------------------------------------------


CONTEXT = {"command": "python -m studies.t", "env": {"cpu_threads": 1, "device_name": "cpu"}}
FIXED = StopRule(max_rounds=4, min_rounds=4)


def cells(n: int = 5) -> list[Cell]:
    return [Cell("t", "lora", r, 0, 8, "cpu", "h", measurement="quick") for r in range(1, n + 1)]


def fake_block(seconds: float) -> dict:
    return {"clock": "thread_cpu", "seconds": seconds, "wall_s": 2 * seconds, "calls": 1}


def timers(log: list[Cell], seconds: Callable[[Cell, int], float] = lambda cell, i: 1e-3 * cell.rank):
    """A ``prepare`` for run_rounds whose timers log each block and return ``seconds(cell, i)`` for
    the cell's i-th block."""
    def prepare(cell: Cell):
        def block() -> dict:
            log.append(cell)
            return fake_block(seconds(cell, sum(c == cell for c in log) - 1))

        return block, {"summary": {"trainable_params": cell.rank}}

    return prepare


def test_every_round_times_every_cell_once_in_a_seeded_shuffled_order(tmp_path: Path) -> None:
    log: list[Cell] = []
    records = run_rounds(cells(), timers(log), ResultStore(tmp_path / "s.jsonl"), rule=FIXED, seed=7, context=CONTEXT)
    per_round = [log[5 * r: 5 * r + 5] for r in range(4)]
    assert all(sorted(c.rank for c in rnd) == [1, 2, 3, 4, 5] for rnd in per_round)
    assert per_round == [round_order(cells(), 7, r) for r in range(4)]
    assert len({tuple(c.rank for c in rnd) for rnd in per_round}) > 1, "the order changes from round to round"
    assert round_order(cells(), 7, 0) == round_order(cells(), 7, 0) != round_order(cells(), 8, 0)
    assert [r["rank"] for r in records] == [1, 2, 3, 4, 5] and all(r["timing"]["rounds"] == 4 for r in records)
    stored = ResultStore(tmp_path / "s.jsonl").records()
    assert sum("block" in r for r in stored) == 20  # one record per (cell, round)


def test_cells_stop_once_their_fastest_round_is_reproduced_and_the_rest_go_on(tmp_path: Path) -> None:
    # Cell 1 is steady; cell 2 is fast in its 5th round only (never reproduced); cell 3 speeds up
    # from its 5th round on and is confirmed by three fast rounds. (Any share of quiet rounds will do.)
    values = {1: [1.0] * 12, 2: [2.0, 2.6, 3.2, 2.4, 1.0, 2.2, 2.8, 2.0, 3.0, 2.5], 3: [3.0, 3.3, 3.6, 3.0] + [2.0] * 8}
    log: list[Cell] = []
    rule = StopRule(max_rounds=10, min_rounds=3, tolerance=0.05, confirmations=2, miss_chance=1.0)
    records = run_rounds(cells(3), timers(log, lambda cell, i: values[cell.rank][i]), ResultStore(tmp_path / "s.jsonl"),
                         rule=rule, seed=1, context=CONTEXT)
    timing = {r["rank"]: r["timing"] for r in records}
    assert {rank: t["rounds"] for rank, t in timing.items()} == {1: 3, 2: 10, 3: 7}
    assert timing[1]["confirmed"] and timing[3]["confirmed"] and timing[3]["fastest_s"] == 2.0
    assert timing[2]["noisy"] and timing[2]["fastest_s"] == 1.0, "an unreproduced fastest round is flagged, not hidden"
    assert [c.rank for c in log[9:]].count(1) == 0, "a confirmed cell leaves the rounds"
    late = [i for i, c in enumerate(log) if c.rank == 3][3:]
    assert all(any(c.rank == 2 for c in log[a:b]) for a, b in zip(late, late[1:])), "the open cells still interleave"


def test_under_load_rounds_that_agree_on_a_slowed_value_do_not_stop_a_cell(tmp_path: Path) -> None:
    # Cells 1 and 2 show that quiet rounds are rare; cell 3's first rounds agree on 1.3, its cost is 1.0.
    values = {1: [1.0, 1.5, 1.7, 1.4, 1.6, 1.5, 1.8, 1.0, 1.6, 1.7, 1.0, 1.5],
              2: [1.6, 1.0, 1.5, 1.7, 1.4, 1.8, 1.5, 1.6, 1.0, 1.5, 1.6, 1.0],
              3: [1.3, 1.31, 1.29, 1.3, 1.3, 1.3, 1.0, 1.3, 1.0, 1.0, 1.3, 1.0]}
    seconds = lambda cell, i: values[cell.rank][i]  # noqa: E731
    fastest = {}
    for miss_chance in (1.0, 0.01):
        rule = StopRule(max_rounds=12, min_rounds=3, tolerance=0.05, confirmations=2, miss_chance=miss_chance)
        records = run_rounds(cells(3), timers([], seconds), ResultStore(tmp_path / f"{miss_chance}.jsonl"), rule=rule,
                             seed=0, context=CONTEXT)
        fastest[miss_chance] = records[2]["timing"]["fastest_s"]
    assert fastest == {1.0: 1.29, 0.01: 1.0}


def test_the_share_of_quiet_rounds_sets_how_many_rounds_settle_a_cell() -> None:
    rule = StopRule(max_rounds=10, min_rounds=3, tolerance=0.05, confirmations=2, miss_chance=0.01)
    # 3 of 6 rounds within 5% of their cell's fastest (the fastest rounds left out); no rounds, no evidence
    assert rule.quiet_shares([[1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 2.0, 2.0], []]) == [0.5, 0.5, 0.0]
    # a cell 10x as costly is no peer: its rounds, all cut, say nothing of the cheap cell's and back
    assert rule.quiet_shares([[1.0, 1.0, 1.0, 1.0], [10.0, 20.0, 20.0, 20.0]]) == [1.0, 0.0]
    steady = [1.0] * 4
    assert rule.open(steady, 0.5) and not rule.open(steady * 2, 0.5), "0.5^4 > 1% >= 0.5^7"
    assert not rule.open(steady, 0.9) and rule.open(steady, 0.0), "no evidence of quiet rounds: on to the maximum"


def test_records_store_the_run_once_and_each_round_only_what_varies(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "s.jsonl")
    config = {"seed": 0}
    context = {**CONTEXT, "config": config, "config_hash": config_digest(config)}
    run_rounds(cells(2), timers([]), store, rule=FIXED, seed=0, context=context)
    lines = [json.loads(line) for line in store.path.read_text().splitlines()]
    assert sum(is_context(line) for line in lines) == 1 and sum("summary" in line for line in lines) == 2
    rounds = [line for line in lines if "block" in line]
    assert len(rounds) == 8 and all(set(r) == {*Cell.__dataclass_fields__, "round", "block"} for r in rounds)
    again = run_rounds(cells(2), timers([]), store, rule=StopRule(6, 6), seed=0, context=context, resume=True)
    assert sum(is_context(json.loads(line)) for line in store.path.read_text().splitlines()) == 1, "stored once"
    read = aggregate_stored(store.records())  # as studies.report reads it: whole records
    assert read[0]["config"] == config and read[0]["timing"]["num_threads"] == 1 and read[0]["summary"]
    assert [r["timing"]["rounds"] for r in again] == [6, 6]


def test_a_store_written_before_run_contexts_is_still_read(tmp_path: Path) -> None:
    old = [{**round_cell(c, r).to_dict(), "round": r, "block": fake_block(1e-3), "summary": {"trainable_params": 1},
            "command": "python -m studies.t", "config": {}, "env": CONTEXT["env"]} for c in cells(2) for r in range(3)]
    read = aggregate_stored(old)
    assert [r["timing"]["rounds"] for r in read] == [3, 3] and read[0]["summary"] == {"trainable_params": 1}


def test_a_record_whose_run_context_is_lost_is_set_aside(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "s.jsonl")
    run_rounds(cells(1), timers([]), store, rule=FIXED, seed=0, context=CONTEXT)
    lines = store.path.read_text().splitlines()
    store.path.write_text("\n".join(line for line in lines if not is_context(json.loads(line))) + "\n")
    bad = [line for line in store.lines() if line.record is None]
    assert len(bad) == 1 and "run context" in bad[0].reason and "summary" in bad[0].raw.decode()
    assert store.repair() == 1 and all(line.record is not None for line in store.lines())


def test_a_stopped_sweep_resumes_without_losing_a_finished_round(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "s.jsonl")
    log: list[Cell] = []
    prepare = timers(log)

    def stop_in_round_three(cell: Cell):
        block, fields = prepare(cell)

        def stopping() -> dict:
            if len(log) == 12:  # the third cell of round 3: ask to stop, as Ctrl-C does
                os.kill(os.getpid(), signal.SIGINT)
            return block()

        return stopping, fields

    with pytest.raises(SweepInterrupted):
        run_rounds(cells(), stop_in_round_three, store, rule=FIXED, seed=1, context=CONTEXT)
    assert sum("block" in r for r in store.records()) == 13  # rounds 1 and 2, and round 3 up to the stop
    log.clear()
    records = run_rounds(cells(), prepare, store, rule=FIXED, seed=1, context=CONTEXT, resume=True)
    assert len(log) == 7  # the rest of round 3 and round 4, nothing measured twice
    assert all(r["timing"]["rounds"] == 4 for r in records)
    log.clear()
    run_rounds(cells(), prepare, store, rule=StopRule(6, 6), seed=1, context=CONTEXT, resume=True)
    assert len(log) == 10, "allowing more rounds measures only the new ones"


def test_aggregation_takes_the_fastest_round_with_median_and_quartiles_beside_it() -> None:
    timing = summarise([fake_block(s) for s in (3.0, 2.0, 1.0, 4.0, 100.0)])
    assert timing["fastest_s"] == 1.0 and timing["wall_fastest_s"] == 2.0
    assert (timing["median_s"], timing["q1_s"], timing["q3_s"]) == (3.0, 2.0, 4.0)
    assert timing["wall_median_s"] == 6.0 and timing["rounds"] == 5 and timing["clock"] == "thread_cpu"
    with pytest.raises(ValueError, match="different clocks"):
        summarise([fake_block(1.0), {**fake_block(1.0), "clock": "wall"}])


def test_load_that_hits_most_rounds_of_one_cell_leaves_its_cost_alone(tmp_path: Path) -> None:
    # Two cells of identical cost; the load lands on 7 of 9 rounds of one and 2 of 9 of the other.
    # Their medians then differ by the load; their fastest rounds do not.
    hit = {1: {0, 1, 2, 3, 4, 6, 8}, 2: {2, 7}}
    seconds = lambda cell, i: 1e-3 * (2.0 if i in hit[cell.rank] else 1.0)  # noqa: E731
    records = run_rounds(cells(2), timers([], seconds), ResultStore(tmp_path / "s.jsonl"), rule=StopRule(9, 9), seed=3,
                         context=CONTEXT)
    first, second = (r["timing"] for r in records)
    assert first["fastest_s"] == second["fastest_s"] == pytest.approx(1e-3)
    assert first["median_s"] == pytest.approx(2e-3) and second["median_s"] == pytest.approx(1e-3)
    assert first["noisy"] and not second["noisy"], "a cost that rests on 2 rounds of 9 is flagged"


def test_the_checks_say_when_the_median_round_ran_well_above_the_fastest() -> None:
    def record(seconds: list[float]) -> dict:
        timing = {**summarise([fake_block(s) for s in seconds]), "num_threads": 1, "device_name": "cpu"}
        return {"method": "lora", "rank": 1, "timing": {**timing, "wall_median_s": timing["median_s"]}}

    quiet, busy = [record([1.0, 1.02, 1.01])], [record([1.0, 1.6, 1.7])]
    assert not any(line.startswith("load:") for line in checks(quiet))
    assert any(line.startswith("load: the median round ran 1.60x the fastest") for line in checks(busy))


def test_the_noise_rule_on_hand_made_timings() -> None:
    rule = StopRule(max_rounds=5)
    steady = summarise([fake_block(s) for s in (1.00, 1.02, 0.98, 1.01, 0.99)])
    lucky = summarise([fake_block(s) for s in (1.0, 1.4, 1.5, 2.0, 2.0)])  # the fastest round never seen again
    edge = [1.0, 1.0 + rule.tolerance, 1.0 + rule.tolerance]  # reproduced exactly at the tolerance: confirmed
    assert not steady["noisy"] and lucky["noisy"] and rule.confirmed(edge) and not rule.confirmed(edge[:2])
    records = [{"method": "lora", "rank": 1, "timing": steady}, {"method": "pissa", "rank": 2, "timing": lucky}]
    line = noisy_line(records, threads=2)
    assert "1 of 2 cells: pissa r=2" in line and "lora" not in line and "one thread" in line
    assert "one thread" not in noisy_line(records, threads=1)
    assert noisy_line(records[:1], 1).startswith("noise: no cell")
    assert format_ms(lucky).endswith(" *") and not format_ms(steady).endswith("*")


def test_a_rule_needs_its_minimum_and_stops_at_its_maximum() -> None:
    rule = StopRule(max_rounds=6, min_rounds=4, tolerance=0.05, confirmations=2)
    assert rule.open([1.0, 1.0, 1.0], 1.0), "confirmed, but below the minimum"
    assert not rule.open([1.0, 1.0, 1.0, 1.0], 1.0) and rule.open([1.0, 2.0, 3.0, 4.0], 1.0)
    assert not rule.open([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 1.0), "the maximum ends it, confirmed or not"
    with pytest.raises(ValueError, match="min_rounds"):
        StopRule(max_rounds=3, min_rounds=4)


def test_quick_times_each_methods_default_rank_and_the_ends_of_its_range() -> None:
    plan = {"lora": [1, 2, 4, 8, 64], "vera": [1, 2, 64], "full": [None]}
    defaults = {"lora": [2], "vera": [64], "full": [None]}
    assert quick_plan(plan, defaults) == {"lora": [1, 2, 64], "vera": [1, 64], "full": [None]}


def test_one_round_prints_n_equals_1_and_no_interval() -> None:
    single = summarise([fake_block(0.0004)])
    assert format_ms(single) == "0.400 (n = 1)"
    assert format_ms(summarise([fake_block(0.002), fake_block(0.004), fake_block(0.005)])) == "2.000 (median 4.000) *"


def test_the_cpu_is_named_by_its_model(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: AMD EPYC  7763 64-Core Processor\n")
    assert cpu_name(info) == "AMD EPYC 7763 64-Core Processor"
    assert cpu_name(tmp_path / "missing")  # falls back to platform's name, never empty


def test_one_seed_prints_n_equals_1_never_plus_or_minus_zero() -> None:
    assert format_mean_ci([0.04213]) == "0.0421 (n = 1)"
    assert format_mean_ci([1.0, 2.0, 3.0], digits=2) == "2.00 ± 2.48"


def test_a_timer_call_returns_the_fastest_of_its_repeated_blocks() -> None:
    # Load only adds time: of a slow, a fast and a slow block (after the warm call) the fast one is the cost.
    durations = iter([0.0, 0.0, 0.006, 0.0005, 0.006])  # construction's warm-up and calibration, warm call, 3 blocks
    timer = BlockTimer(lambda: spin(next(durations))(), "cpu", 1, warmup=1, target_s=0.0, max_calls=1, repeats=3)
    block = timer()
    assert block["repeats"] == 3 and block["calls"] == 1 and block["seconds"] < 0.003
    with pytest.raises(ValueError, match="repeats"):
        BlockTimer(lambda: None, "cpu", 1, repeats=0)
