"""Stores that stay true: damaged lines set aside and kept, checked writes, one run per --out."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nfl import results
from nfl.config import ExperimentConfig
from nfl.results import DirectoryLocked, ResultStore, StoreWriteError, lock_directory
from nfl.sweep import Cell, run_cells
from studies import adaptability

TINY = ["--width", "8", "--pretrain-epochs", "5", "--adapt-epochs", "3", "--quick"]
REPO = Path(__file__).resolve().parents[1]
CONFIG = ExperimentConfig().to_dict()
DIGEST = ExperimentConfig().digest()


def cells(n: int) -> list[Cell]:
    return [Cell("demo", "lora", r, 1, 8, "cpu", DIGEST) for r in range(1, n + 1)]


def value(cell: Cell) -> dict:
    return {"summary": {"value": cell.rank}, "config": CONFIG}


def edited(line: bytes) -> bytes:
    record = json.loads(line)
    record["config"]["model"]["width"] = 9  # the numbers were edited; the hash was kept
    return json.dumps(record).encode()


DAMAGE = {
    "a JSON list": (lambda line: b"[1, 2, 3]", "a JSON list, not a record"),
    "null": (lambda line: b"null", "a JSON NoneType, not a record"),
    "invalid UTF-8": (lambda line: b'{"study": "\xff\xfe"}', "not valid UTF-8"),
    "a torn fragment": (lambda line: line[: len(line) // 2], "not complete JSON (a torn write?)"),
    "an edited config": (edited, f"its config does not hash to its config_hash {DIGEST}"),
}


@pytest.mark.parametrize("kind", DAMAGE)
def test_a_damaged_line_is_moved_to_rejected_and_its_cell_recomputed(kind: str, tmp_path: Path, capsys) -> None:
    store = ResultStore(tmp_path / "demo.jsonl")
    run_cells(cells(3), value, store)
    lines = store.path.read_bytes().splitlines()
    damage, reason = DAMAGE[kind]
    torn = kind == "a torn fragment"
    number = 3 if torn else 2  # a crash tears the last line, without its newline
    lines[number - 1] = damage(lines[number - 1])
    store.path.write_bytes(b"\n".join(lines) + (b"" if torn else b"\n"))
    kept = [r for r in (1, 2, 3) if r != number]
    capsys.readouterr()
    assert [r["rank"] for r in store.records()] == kept  # set aside when read, with one line
    assert capsys.readouterr().err.startswith(f"warning: {store.path}: 1 line(s) set aside (line {number}: {reason})")

    computed = []
    run_cells(cells(3), lambda c: computed.append(c.rank) or value(c), store, resume=True)
    err = capsys.readouterr().err
    assert computed == [number]
    assert f"repaired {store.path}: 1 line(s) moved to {store.rejected_path} (line {number})" in err
    header = f"# line {number} of demo.jsonl: {reason}\n".encode()
    assert store.rejected_path.read_bytes() == header + lines[number - 1] + b"\n"
    assert [r["rank"] for r in store.records()] == [*kept, number] and "warning" not in capsys.readouterr().err


def test_the_same_cell_twice_is_reported_and_the_first_kept(tmp_path: Path, capsys) -> None:
    store = ResultStore(tmp_path / "demo.jsonl")
    run_cells(cells(1), value, store)
    store.append({**cells(1)[0].to_dict(), "summary": {"value": 99}, "config": CONFIG})
    capsys.readouterr()
    assert [r["summary"]["value"] for r in store.records()] == [1]
    assert "(line 2: a second record of the cell on line 1 (different values))" in capsys.readouterr().err
    assert store.repair() == 1 and '"value": 99' in store.rejected_path.read_text()


def test_a_failed_write_leaves_a_valid_store_and_says_so_in_one_line(tmp_path: Path, capsys, monkeypatch) -> None:
    real = os.write

    def full_disk(fd: int, data) -> int:
        if bytes(data[:9]) == b'{"study":' and results.os.fstat(fd).st_size > 0:
            real(fd, bytes(data[:10]))  # a partial line reaches the file, then the disk is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, data)

    monkeypatch.setattr(results.os, "write", full_disk)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_:
        adaptability.main([*TINY, "--methods", "full,lora", "--out", str(out)])
    monkeypatch.setattr(results.os, "write", real)
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("nfl:")]
    store = out / "adaptability.jsonl"
    assert exit_.value.code == 1
    assert err == [f"nfl: error: could not write a record to {store}: No space left on device; 1 cells saved in {out}; "
                   f"resume with: python -m studies.adaptability {' '.join(TINY)} --methods full,lora --out {out} "
                   "--resume"]
    assert [json.loads(line)["method"] for line in store.read_text().splitlines()] == ["full"]


def test_a_short_write_is_finished_and_a_write_that_stops_is_cut_back(tmp_path: Path, monkeypatch) -> None:
    real, calls = os.write, []

    def short(fd: int, data) -> int:
        calls.append(len(data))
        return real(fd, bytes(data[:5]))

    store = ResultStore(tmp_path / "demo.jsonl")
    monkeypatch.setattr(results.os, "write", short)
    store.append({"a": 1})
    assert store.records() == [{"a": 1}] and len(calls) > 1  # continued until every byte was written
    monkeypatch.setattr(results.os, "write", lambda fd, data: 0)
    with pytest.raises(StoreWriteError, match="No space left on device"):
        store.append({"b": 2})
    assert store.path.read_text() == '{"a": 1}\n'


HOLD = (
    "import sys, time; from nfl.results import lock_directory; lock_directory(sys.argv[1]); "
    "print('held', flush=True); time.sleep(60)"
)


def test_a_locked_directory_names_its_holder(tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(DirectoryLocked, match=f"in use by another run \\(PID {holder.pid}\\)"):
            lock_directory(tmp_path)
    finally:
        holder.kill()
        holder.wait()
    lock_directory(tmp_path)  # free again once the holder is gone


# The first run waits inside its first cell until the test lets it go: the race is then certain.
FIRST = """import pathlib, sys, time
from studies import adaptability
compute = adaptability.compute_group
def held(setup, cells):
    while not pathlib.Path(sys.argv[1]).exists():
        time.sleep(0.1)
    return compute(setup, cells)
adaptability.compute_group = held
adaptability.main(sys.argv[2:])
"""


@pytest.mark.slow
def test_two_runs_on_the_same_out_one_exits_2_and_no_cell_is_duplicated(tmp_path: Path) -> None:
    out, go = tmp_path / "out", tmp_path / "go"
    argv = [*TINY, "--adapt-lr", "1e-2", "--methods", "full,lora", "--out", str(out)]
    first = subprocess.Popen([sys.executable, "-c", FIRST, str(go), *argv], cwd=REPO, stderr=subprocess.PIPE,
                             stdout=subprocess.DEVNULL, text=True)
    while "cells to compute" not in (line := first.stderr.readline()):  # the first run holds the lock
        assert line, "the first run ended before its sweep"
    second = subprocess.run([sys.executable, "-m", "studies.adaptability", *argv], cwd=REPO, capture_output=True,
                            text=True, timeout=300)
    go.touch()
    first.stderr.read()
    assert first.wait(timeout=300) == 0
    assert second.returncode == 2 and second.stderr.count("\n") == 1, second.stderr
    assert f"in use by another run (PID {first.pid})" in second.stderr
    rows = [json.loads(line) for line in (out / "adaptability.jsonl").read_text().splitlines()]
    assert [r["method"] for r in rows] == ["full", "lora"]
    assert not list(out.glob("*.bak"))  # the second run renamed nothing
