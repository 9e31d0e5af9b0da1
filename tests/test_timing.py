"""The timing API: the CPU back end, the CUDA back end's logic on a fake device, the conveniences.

Only structural properties are asserted: the machine is shared and noisy, so no timing targets.
"""

from __future__ import annotations

import copy
import json

import pytest
import torch

import adapters
from nfl.tasks import Dataset
from nfl.timing import Timing, TimingOptions, measure, prepared_train_step, time_init, time_train_step
from tests.conftest import TwoLayer

FAST = TimingOptions(min_run_time=0.01, max_run_time=0.05, warmup=1, repeats=5, num_threads=1)


def matmul(size: int):
    a = torch.randn(size, size, generator=torch.Generator().manual_seed(0))
    return lambda: a @ a


def test_cpu_backend_reports_a_positive_median_and_a_spread() -> None:
    timing = measure(matmul(16), "cpu", FAST)
    assert timing.median_s > 0 and timing.iqr_s >= 0
    assert timing.repeats >= 1 and timing.calls_per_repeat >= 1
    assert timing.backend == "torch.utils.benchmark"


def test_threads_are_passed_explicitly_recorded_and_restored() -> None:
    before = torch.get_num_threads()
    seen: list[int] = []
    timing = measure(lambda: seen.append(torch.get_num_threads()), "cpu", FAST)
    assert timing.num_threads == 1 and set(seen) == {1}
    assert torch.get_num_threads() == before
    default = TimingOptions(min_run_time=0.01, max_run_time=0.05, warmup=0)
    assert measure(lambda: None, "cpu", default).num_threads == before


def test_a_slower_callable_measures_slower() -> None:
    # 8x8 against 256x256: some 30,000x the flops, far beyond any noise on a shared machine.
    fast, slow = measure(matmul(8), "cpu", FAST), measure(matmul(256), "cpu", FAST)
    assert slow.median_s > fast.median_s


def test_timing_round_trips_through_a_dict_and_json() -> None:
    timing = measure(matmul(8), "cpu", FAST)
    assert Timing.from_dict(json.loads(json.dumps(timing.to_dict()))) == timing


class FakeGpu:
    """A device whose clock only moves when the timed function says so, logging every call."""

    name = "Fake GPU"
    backend = "fake_events"

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


def test_event_backend_times_only_the_repeats_between_synchronisations() -> None:
    gpu = FakeGpu()
    # Two warm-up calls that take 100 s each: any of them inside a timed region shows at once.
    durations = iter([100.0, 100.0, 0.001, 0.004, 0.002, 0.010, 0.003])
    timing = measure(lambda: gpu.work(next(durations)), gpu, TimingOptions(warmup=2, repeats=5, num_threads=1))
    # Repeats 1, 4, 2, 10, 3 ms: median 3 ms; quartiles 2 and 4 ms.
    assert timing.median_s == pytest.approx(0.003)
    assert timing.iqr_s == pytest.approx(0.002)
    assert (timing.repeats, timing.calls_per_repeat, timing.backend, timing.device_name) == (5, 1, "fake_events", "Fake GPU")
    assert gpu.log == ["fn", "fn"] + ["sync", "record", "fn", "record", "sync"] * 5


def test_setup_runs_before_every_call_outside_the_timed_region() -> None:
    gpu = FakeGpu()
    state: list[int] = []

    def setup() -> None:
        gpu.log.append("setup")
        gpu.now += 50.0  # slow setup: must not reach the timings
        state[:] = [1]

    def consume() -> None:
        state.pop()  # fails unless setup has refilled the state since the previous call
        gpu.work(0.002)

    timing = measure(consume, gpu, TimingOptions(warmup=1, repeats=3, num_threads=1), setup=setup)
    assert timing.median_s == pytest.approx(0.002) and timing.iqr_s == pytest.approx(0.0)
    assert gpu.log == ["setup", "fn"] + ["setup", "sync", "record", "fn", "record", "sync"] * 3


def test_setup_on_the_cpu_uses_the_host_clock_once_per_call() -> None:
    state: list[int] = []
    timing = measure(lambda: state.pop(), "cpu", FAST, setup=lambda: state.append(1))
    assert timing.backend == "host_clock" and timing.repeats == FAST.repeats and timing.median_s >= 0
    assert state == []


def test_an_unknown_device_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no measurement back end for device meta"):
        measure(lambda: None, "meta", FAST)


def test_time_init_times_build_and_leaves_the_layer_untouched() -> None:
    layer = TwoLayer().layer1
    before = copy.deepcopy(layer.state_dict())
    timing = time_init("lora", layer, 2, "cpu", options=FAST)
    assert timing.median_s > 0
    assert all(torch.equal(before[k], v) for k, v in layer.state_dict().items())


def tiny_data() -> Dataset:
    g = torch.Generator().manual_seed(0)
    return Dataset(torch.randn(8, 16, generator=g), torch.randn(8, 10, generator=g), torch.randn(4, 16, generator=g), torch.randn(4, 10, generator=g), torch.randn(4, 16, generator=g), torch.randn(4, 10, generator=g))


def test_train_step_is_warmed_up_and_calls_on_step_mid_schedule(monkeypatch: pytest.MonkeyPatch) -> None:
    model = TwoLayer()
    hooks = adapters.attach(model, "lora", "layer1", rank=2)
    calls: list[tuple[int, int]] = []
    monkeypatch.setattr(hooks[0], "on_step", lambda step, total: calls.append((step, total)))
    prepared_train_step(model, hooks, tiny_data(), 1e-2, "cpu", total_steps=40)
    assert calls == [(20, 40)], "one step is taken before anything is timed, in the middle of the schedule"
    assert hooks[0].lora_B.abs().sum() > 0, "the warm-up step must have updated the adapter"


def test_time_train_step_reports_a_timing_of_the_step() -> None:
    model = TwoLayer()
    hooks = adapters.attach(model, "lora", "layer1", rank=2)
    timing = time_train_step(model, hooks, tiny_data(), 1e-2, "cpu", options=FAST)
    assert timing.median_s > 0 and timing.iqr_s >= 0 and timing.backend == "torch.utils.benchmark"


def test_without_autorange_the_cpu_times_each_call_with_the_host_clock() -> None:
    calls = []
    timing = measure(lambda: calls.append(1), "cpu", TimingOptions(repeats=7, warmup=2, autorange=False))
    assert (timing.backend, timing.repeats, timing.calls_per_repeat, len(calls)) == ("host_clock", 7, 1, 9)
    assert timing.median_s > 0 and timing.iqr_s >= 0
