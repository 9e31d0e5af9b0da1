"""Bring your own adapter: a file or an installed entry point registers it, the contract check
passes on a real one and names the property a broken one violates, studies run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from adapters import check, plugins
from adapters.registry import _REGISTRY

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "my_adapter.py"


def _run(*args: str, env: dict | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture
def registry_restored():
    """The check registers the file's methods in this process: unregister them afterwards, so no
    other test (a study enumerating the registry) sees them."""
    registered, loaded = dict(_REGISTRY), dict(plugins._loaded)
    yield
    _REGISTRY.clear(), _REGISTRY.update(registered)
    plugins._loaded.clear(), plugins._loaded.update(loaded)


def test_the_example_adapter_passes_the_contract_check(registry_restored, capsys) -> None:
    assert check.main([str(EXAMPLE)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith(("PASS", "FAIL"))]
    assert len(lines) == len(check.CHECKS) == 9 and all(line.startswith("PASS  ia3:") for line in lines)


def test_a_wrong_merged_weight_fails_the_check_naming_the_property(tmp_path: Path, registry_restored, capsys) -> None:
    broken = EXAMPLE.read_text().replace("return self.base_weight * self.scaling_vector", "return self.base_weight")
    assert broken != EXAMPLE.read_text()
    (tmp_path / "broken.py").write_text(broken)
    assert check.main([str(tmp_path / "broken.py")]) == 1
    out = capsys.readouterr().out
    assert "FAIL  ia3: forward equals merged weight" in out and "PASS  ia3: identity at init" in out


@pytest.mark.slow
def test_the_check_runs_as_a_module(tmp_path: Path) -> None:
    done = _run("-m", "adapters.check", str(EXAMPLE))
    assert done.returncode == 0 and "all checks passed for ia3" in done.stdout, done.stdout + done.stderr


@pytest.mark.slow
def test_a_file_registering_nothing_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "empty.py").write_text("x = 1\n")
    done = _run("-m", "adapters.check", str(tmp_path / "empty.py"))
    assert done.returncode == 2 and "registers no method" in done.stderr


@pytest.mark.slow
def test_an_installed_entry_point_registers_its_adapter(tmp_path: Path) -> None:
    dist = tmp_path / "nfl_ia3-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: nfl-ia3\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[nfl.adapters]\nia3 = my_ia3\n")
    (tmp_path / "my_ia3.py").write_text(EXAMPLE.read_text())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    done = _run("-c", "import adapters; print(adapters.names()[-1], adapters.get('ia3').takes_rank)", env=env)
    assert done.stdout.split() == ["ia3", "False"], done.stderr


@pytest.mark.slow
def test_a_study_runs_an_adapter_module_once_without_a_rank_axis() -> None:
    script = (
        "from studies.common import StudySetup, study_parser\n"
        f"setup = StudySetup(study_parser('x', 'x'), ['--adapter-module', {str(EXAMPLE)!r}, "
        "'--methods', 'ia3,lora', '--ranks', '1,2'])\n"
        "print(setup.method_ranks)\n"
    )
    done = _run("-c", script)
    assert done.stdout.strip() == "{'ia3': [None], 'lora': [1, 2]}", done.stderr
    missing = _run("-m", "studies.init_time", "--adapter-module", "no/such/file.py")
    assert missing.returncode == 2 and "no such file" in missing.stderr and "Traceback" not in missing.stderr
