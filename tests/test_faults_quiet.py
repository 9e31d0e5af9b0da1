"""Nothing fails quietly: each fault a new user or a hostile tester met gives one clear line and the
right exit status, or a correct result (the process's behaviour is tested in a subprocess)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from adapters import check, plugins
from adapters.registry import _REGISTRY

REPO = Path(__file__).resolve().parents[1]
TINY = ["--width", "8", "--pretrain-epochs", "5", "--adapt-epochs", "3", "--quick"]

ADAPTER = '''
import torch
import torch.nn.functional as F
from torch import nn
import adapters


@adapters.register("{name}", label="Scaled", hparams=adapters.HParams, default_rank=None,
                   param_count=lambda shapes, rank, hp: sum(k for d, k in shapes), color="#123456", marker="p")
class Scaled(adapters.Adapter):
    trainable_names = ("scale",)

    def __init__(self, base, rank, hp, *, streams, shared=None):
        super().__init__(base)
        self.scale = nn.Parameter(torch.ones(self.in_features, **adapters.like(base)))

    def forward(self, x):
        return {forward}

    def merged_weight(self):
        return self.base_weight * self.scale
'''
GOOD_FORWARD = "F.linear(x * self.scale, self.base_weight, self.bias)"


def adapter_file(name: str = "scaled", forward: str = GOOD_FORWARD, extra: str = "") -> str:
    return ADAPTER.format(name=name, forward=forward) + extra


def run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=600)


@pytest.fixture
def registry_restored():
    registered, loaded = dict(_REGISTRY), dict(plugins._loaded)
    yield
    _REGISTRY.clear(), _REGISTRY.update(registered)
    plugins._loaded.clear(), plugins._loaded.update(loaded)


# --- plugin files (issue 21, item 5) -------------------------------------------------------------

BAD_FILES = {
    "syntax error": ("import adapters\ndef broken(:\n    pass\n", "line 2: syntax error"),
    "import error": ("import adapters\nimport no_such_package_nfl\n", "line 2: ModuleNotFoundError: No module named"),
    "registers nothing": ("x = 1\n", "registers no method"),
    "sys.exit(0)": ("import sys\nsys.exit(0)\n", "calls sys.exit(0) on import"),
    "name clash": (adapter_file(name="lora"), "method 'lora': a method of this name is registered already"),
    "trains the bias": (
        adapter_file().replace('trainable_names = ("scale",)', 'trainable_names = ("scale", "bias")'),
        "the bias belongs to the base layer",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(BAD_FILES))
def test_a_bad_adapter_file_is_one_line_naming_it_exit_2_before_any_work(case: str, tmp_path: Path) -> None:
    source, message = BAD_FILES[case]
    path = tmp_path / "mine.py"
    path.write_text(source)
    done = run("-m", "studies.adaptability", *TINY, "--adapter-module", str(path), "--out", str(tmp_path / "out"))
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr.startswith(f"nfl: error: --adapter-module: {path}") and message in done.stderr, done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_the_contract_check_names_a_bad_file_in_one_line(case: str, tmp_path: Path, registry_restored, capsys) -> None:
    source, message = BAD_FILES[case]
    (tmp_path / "mine.py").write_text(source)
    assert check.main([str(tmp_path / "mine.py")]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and str(tmp_path / "mine.py") in err and message in err, err
    assert "scaled" not in _REGISTRY  # a failed file leaves nothing registered


@pytest.mark.parametrize("forward", ["F.linear(x, self.base_weight, self.bias) * float('nan')",
                                     "F.linear(x * self.scale, self.base_weight, self.bias) / 0.0"])
def test_the_contract_check_fails_a_forward_that_is_not_finite(forward: str, tmp_path: Path, registry_restored, capsys) -> None:
    (tmp_path / "mine.py").write_text(adapter_file(forward=forward))
    assert check.main([str(tmp_path / "mine.py")]) == 1
    out = capsys.readouterr().out
    assert "FAIL  scaled: finite outputs (not finite: forward at init" in out
    assert "FAIL  scaled: forward equals merged weight" in out and "PASS  scaled: forward" not in out


def test_the_contract_check_fails_an_adapter_that_trains_the_bias_undeclared(tmp_path: Path, registry_restored, capsys) -> None:
    source = adapter_file().replace(
        "        super().__init__(base)\n",
        "        super().__init__(base)\n        del self.bias\n        self.bias = nn.Parameter(base.bias.detach().clone())\n",
    )
    (tmp_path / "mine.py").write_text(source)
    assert check.main([str(tmp_path / "mine.py")]) == 1
    assert "FAIL  scaled: bias is the base's (layer 0: the adapter trains the bias" in capsys.readouterr().out
