"""Outputs drawn once: a study and ``studies.report`` on its store draw the same figure files and
print the same tables, because both call the study's ``outputs``."""

from __future__ import annotations

from pathlib import Path

import pytest

from studies import lr, pareto, report
from tests.test_studies_cli import TINY


def _figures(out: Path) -> set[str]:
    return {p.name for p in out.iterdir() if p.suffix in (".png", ".pdf")}


@pytest.mark.slow
def test_report_redraws_exactly_the_pareto_study_s_figures(tmp_path: Path, capsys) -> None:
    pareto.main([*TINY, "--methods", "lora,pissa,full", "--ranks", "1,2", "--rounds", "2", "--out", str(tmp_path)])
    printed = capsys.readouterr().out.split("\n\nrecords:")[0]
    drawn = _figures(tmp_path)
    assert {"figure1.png", "figure2.png", "pareto.png"} <= drawn
    for path in tmp_path.iterdir():
        if path.suffix in (".png", ".pdf"):
            path.unlink()
    report.main(["--out", str(tmp_path)])
    assert _figures(tmp_path) == drawn
    assert printed in capsys.readouterr().out


@pytest.mark.slow
def test_report_draws_a_store_the_lr_study_wrote_as_the_lr_study_does(tmp_path: Path, capsys) -> None:
    lr.main([*TINY, "--methods", "lora,pissa,full", "--out", str(tmp_path)])
    drawn = _figures(tmp_path)
    assert {"lr.png", "sharpness.png"} <= drawn
    for name in drawn:
        (tmp_path / name).unlink()
    report.main(["--out", str(tmp_path)])
    assert _figures(tmp_path) == drawn
