"""The package names resolve to this repository, not to the unrelated PyPI distributions."""

from pathlib import Path

import adapters
import figures
import nfl
import studies

ROOT = Path(__file__).resolve().parent.parent


def test_packages_resolve_to_this_repository() -> None:
    for package in (adapters, figures, nfl, studies):
        assert Path(package.__file__).resolve().parent.parent == ROOT, package.__name__


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    readme = (ROOT / "README.md").read_text()
    quick_start = readme.split("## Quick start", 1)[1].split("```bash", 1)[1].split("```", 1)[0].strip().splitlines()
    assert len(quick_start) == 3 and quick_start[0].startswith("pip install torch --index-url")  # torch first
    assert quick_start[2] in (ROOT / ".ci" / "run").read_text().splitlines()
