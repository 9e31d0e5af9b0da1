"""The Ray back end on a local Ray of 2 CPUs: the same records as the local back end, interrupts that
keep finished cells, failures recorded rather than dropped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from nfl.ray_backend import RayBackend, _gpus  # noqa: E402
from nfl.results import ResultStore  # noqa: E402
from nfl.sweep import Cell, run_groups  # noqa: E402
from studies import adaptability  # noqa: E402
from studies.common import StudySetup, study_parser  # noqa: E402

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--pretrain-epochs", "50", "--adapt-epochs", "20", "--width", "16"]


@pytest.fixture(scope="module")
def address() -> str:
    """One local Ray for the module (starting one costs tens of seconds on a small machine)."""
    ray.init(address="local", num_cpus=2, include_dashboard=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def cells(n: int, device: str = "cpu") -> list[Cell]:
    return [Cell("demo", "lora", r, 1, 8, device, "abc") for r in range(1, n + 1)]


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def by_cell(records: list[dict]) -> dict[tuple, dict]:
    return {(r["method"], r["rank"], r["seed"]): r for r in records}


def test_groups_are_yielded_as_they_complete(address: str) -> None:
    def compute(group: list[Cell]) -> list[dict]:
        time.sleep(3 if group[0].rank == 1 else 0)
        return [{"value": 10 * c.rank} for c in group]

    results = list(RayBackend().run(compute, [[c] for c in cells(2)]))
    assert [(group[0].rank, out) for group, out in results] == [(2, [{"value": 20}]), (1, [{"value": 10}])]


def test_cuda_groups_ask_for_one_gpu_each() -> None:
    assert (_gpus(cells(2, "cuda")), _gpus(cells(2, "cuda:1")), _gpus(cells(2))) == (1, 1, 0)


def test_a_task_that_raises_is_yielded_as_its_error_and_retried_once_by_the_driver(
    address: str, tmp_path: Path
) -> None:
    attempts = tmp_path / "attempts"

    def compute(group: list[Cell]) -> list[dict]:
        with attempts.open("a") as f:
            f.write("x")
        raise ValueError("rank 1 cannot")

    [(group, error)] = list(RayBackend().run(compute, [cells(1)]))
    assert isinstance(error, ValueError) and "rank 1 cannot" in str(error)
    assert attempts.read_text() == "x"  # the back end does not retry an exception ...
    store = ResultStore(tmp_path / "demo.jsonl")
    assert run_groups([cells(1)], compute, store, backend=RayBackend()) == []
    assert attempts.read_text() == "xxx"  # ... the driver runs the group once more, then records it failed
    assert store.records()[0]["failed"] == "ValueError: rank 1 cannot"


def test_closing_the_sweep_cancels_the_outstanding_tasks(address: str, tmp_path: Path) -> None:
    def compute(group: list[Cell]) -> list[dict]:
        if group[0].rank > 1:
            pid = tmp_path / f".pid-{group[0].rank}"  # written, then renamed: never read half-written
            pid.write_text(str(os.getpid()))
            pid.replace(tmp_path / f"started-{group[0].rank}")
            time.sleep(120)
            (tmp_path / f"finished-{group[0].rank}").write_text("")
        return [{}]

    results = RayBackend().run(compute, [[c] for c in cells(3)])
    assert next(results)[0][0].rank == 1
    results.close()  # what the driver does when it stops on Ctrl-C
    # A task that had started has its worker killed; one still queued never starts. (Ray's count of
    # free CPUs is no test of this: on a loaded machine it lags the kill by up to two minutes.)
    deadline = time.monotonic() + 90  # a forced cancel can take tens of seconds on a loaded machine
    while any(alive(int(f.read_text())) for f in tmp_path.glob("started-*")) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not any(alive(int(f.read_text())) for f in tmp_path.glob("started-*"))
    assert not list(tmp_path.glob("finished-*"))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not Path(f"/proc/{pid}/stat").read_text().split(") ")[-1].startswith("Z")  # a zombie is gone


def test_a_quick_study_on_ray_gives_the_local_back_ends_numbers_bit_for_bit(address: str, tmp_path: Path) -> None:
    argv = ["--quick", "--methods", "full,lora,pissa,adalora", *SMALL]
    adaptability.main([*argv, "--out", str(tmp_path / "local")])
    adaptability.main([*argv, "--backend", "ray", "--out", str(tmp_path / "ray")])
    local, remote = (by_cell(read(tmp_path / side / "adaptability.jsonl")) for side in ("local", "ray"))
    assert remote.keys() == local.keys() and len(local) == 4  # the store is in completion order
    for key, mine in remote.items():
        assert (mine["summary"], mine["history"]) == (local[key]["summary"], local[key]["history"])
        assert mine["env"]["cpu_model"] and mine["env"]["device_name"]


def test_pretrained_models_are_computed_once_per_seed_on_the_driver(address: str, tmp_path: Path, monkeypatch) -> None:
    import studies.common

    calls = []
    real = studies.common.pretrain
    monkeypatch.setattr(studies.common, "pretrain", lambda *a, **k: calls.append(a[2]) or real(*a, **k))
    argv = [
        *SMALL,
        "--seeds",
        "2",
        "--adapt-lr",
        "1e-2",
        "--methods",
        "lora,vera",
        "--backend",
        "ray",
        "--out",
        str(tmp_path),
    ]
    setup = StudySetup(study_parser("adaptability", "x"), argv)
    groups = setup.groups("adaptability")
    records = setup.run_groups("adaptability", lambda cells: adaptability.compute_group(setup, cells), groups)
    assert len(records) == 4 and sorted(calls) == setup.seeds


def test_a_failing_task_is_recorded_as_failed_and_the_sweep_goes_on(address: str, tmp_path: Path) -> None:
    argv = [
        *SMALL,
        "--quick",
        "--adapt-lr",
        "1e-2",
        "--methods",
        "lora,vera,dora",
        "--backend",
        "ray",
        "--out",
        str(tmp_path),
    ]
    setup = StudySetup(study_parser("adaptability", "x"), argv)

    def compute(cells: list[Cell]) -> list[dict]:
        if cells[0].method == "vera":
            raise RuntimeError("CUDA out of memory (simulated)")
        return adaptability.compute_group(setup, cells)

    records = setup.run_groups("adaptability", compute, setup.groups("adaptability"))
    assert [r["method"] for r in records] == ["lora", "dora"]
    stored = {r["method"]: r for r in read(tmp_path / "adaptability.jsonl")}
    assert stored["vera"]["failed"] == "RuntimeError: CUDA out of memory (simulated)"
    assert "summary" in stored["lora"] and "summary" in stored["dora"]


def test_an_interrupt_keeps_finished_cells_and_a_local_resume_completes_the_rest(address: str, tmp_path: Path) -> None:
    argv = ["--seeds", "2", "--adapt-lr", "1e-2", "--methods", "full,lora,pissa,vera,dora,mos", "--out", str(tmp_path)]
    driver = subprocess.Popen(
        [sys.executable, "-m", "studies.adaptability", *argv, "--backend", "ray", "--ray-address", address],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    store = tmp_path / "adaptability.jsonl"
    deadline = time.monotonic() + 300
    while not (store.exists() and read(store)) and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    driver.send_signal(signal.SIGINT)  # Ctrl-C once the first group is in
    _, err = driver.communicate(timeout=300)
    assert driver.returncode == 130, err
    kept = read(store)
    assert 0 < len(kept) < 12 and "resume with:" in err

    adaptability.main([*argv, "--resume"])
    records = read(store)
    keys = [(r["method"], r["seed"]) for r in records]
    assert len(keys) == len(set(keys)) == 12
    assert records[: len(kept)] == kept  # nothing finished before the interrupt was lost or redone
