"""``python -m studies.replication``: verdicts of runs on disjoint seed sets, compared cell by cell."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from studies import replication
from studies.claims import VERDICTS_FILE


def run_dir(root: Path, name: str, verdicts: list[str], seeds: range, firm: tuple[int, ...] = ()) -> str:
    """A studies.claims --out holding only verdicts.json: claim i+1's verdict in one column (firm: those claims)."""
    cells = [{"section": "width 64, shift out_of_span", "column": "tuned lr, 100 steps", "seeds": list(seeds),
              "claim": i + 1, "verdict": v, "parts": [v], "firm": i + 1 in firm} for i, v in enumerate(verdicts)]
    directory = root / name
    directory.mkdir()
    (directory / VERDICTS_FILE).write_text(json.dumps({"command": "python -m studies.claims", "cells": cells}))
    return str(directory)


def test_agreement_counts_the_cells_both_runs_judged(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    a = run_dir(tmp_path, "a", ["supported", "inconclusive", "contradicted", "not supported"], range(0, 10), (1, 3))
    b = run_dir(tmp_path, "b", ["supported", "not supported", "contradicted", "not supported"], range(10, 20), (2,))
    c = run_dir(tmp_path, "c", ["contradicted", "inconclusive", "contradicted"], range(20, 30))
    found = replication.pairs([replication.load(d) for d in (a, b, c)])
    assert [(len(p.cells), p.agreement, p.opposed) for p in found] == [(4, 0.75, 0), (3, 2 / 3, 1), (3, 1 / 3, 1)]
    replication.main([a, b, c])
    out = capsys.readouterr().out
    assert "mean 58.3%, range 33%-75%; supported against contradicted in 2 cell(s)" in out
    # firm: a's claims 1 and 3 (against b: both agree; against c: 1 does not, 3 does), b's claim 2 (disagrees twice)
    assert [p.firm_agreement() for p in found] == [(2, 3), (1, 2), (0, 1)] and "3 of 6 agree (50.0%)" in out
    assert f"seeds a run: {a} 10, {b} 10, {c} 10" in out and "different numbers" not in out
    assert "disagreements by claim: 1: 2, 2: 2\n" in out  # a-b on 2, a-c on 1, b-c on both
    assert f"| {a} vs {b} | 4 | 75% | 0 | 25%, 0% | 0 |" in out
    assert f"| {a} vs {c} | 3 | 67% | 1 | 33%, 33% | 1 |" in out  # c judged no claim 4
    assert "claim 2, width 64, shift out_of_span, tuned lr, 100 steps: inconclusive | not supported" in out


@pytest.mark.parametrize("why", ["overlap", "one run", "missing", "damaged"])
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture, why: str) -> None:
    a = run_dir(tmp_path, "a", ["supported"], range(0, 10))
    other = {"overlap": lambda: run_dir(tmp_path, "b", ["supported"], range(5, 15)),
             "one run": lambda: None,
             "missing": lambda: str(tmp_path / "nowhere"),
             "damaged": lambda: run_dir(tmp_path, "b", [], range(0))}[why]()
    if why == "damaged":
        (Path(other) / VERDICTS_FILE).write_text("{not json")
    with pytest.raises(SystemExit) as stop:
        replication.main([a] if other is None else [a, other])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1
    assert {"overlap": "disjoint seed sets", "one run": "at least two", "missing": "not found",
            "damaged": "not a verdicts file"}[why] in err


def test_runs_on_different_numbers_of_seeds_are_compared_with_a_note(tmp_path: Path, capsys) -> None:
    a = run_dir(tmp_path, "a", ["supported"], range(0, 10))
    b = run_dir(tmp_path, "b", ["supported"], range(10, 30))
    replication.main([a, b])
    out = capsys.readouterr().out
    assert f"seeds a run: {a} 10, {b} 20" in out and "different numbers of seeds" in out
