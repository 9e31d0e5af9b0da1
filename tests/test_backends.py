"""The back-end flags without Ray: the local back end never imports it, and asking for Ray where it
is not installed is one line naming the extra."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--pretrain-epochs", "5", "--adapt-epochs", "2", "--width", "8", "--quick", "--methods", "lora"]


def python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_a_local_study_never_imports_ray(tmp_path: Path) -> None:
    argv = [*TINY, "--out", str(tmp_path)]
    code = f"import sys; from studies import adaptability; adaptability.main({argv!r}); print('ray' in sys.modules)"
    done = python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "False"
    assert (tmp_path / "adaptability.jsonl").exists()


def test_backend_ray_without_ray_is_one_line_naming_the_extra(tmp_path: Path) -> None:
    argv = [*TINY, "--backend", "ray", "--out", str(tmp_path)]
    # A None entry in sys.modules makes ``import ray`` fail as if it were not installed.
    code = f"import sys; sys.modules['ray'] = None\nfrom studies import adaptability\nadaptability.main({argv!r})"
    done = python(code)
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert "--backend ray needs Ray" in last and 'pip install -e ".[ray]"' in last
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_a_ray_address_without_the_ray_backend_is_an_error(tmp_path: Path) -> None:
    argv = [*TINY, "--ray-address", "h:6379", "--out", str(tmp_path)]
    done = python(f"from studies import adaptability; adaptability.main({argv!r})")
    assert done.returncode == 2 and "--ray-address needs --backend ray" in done.stderr
