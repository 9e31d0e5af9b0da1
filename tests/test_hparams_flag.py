"""``--hparams METHOD.NAME=VALUE``: an adapter's hyper-parameters from the command line, in the config."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from nfl import testbeds
from nfl.config import config_digest, method_hparams, preset
from nfl.training import prepare
from studies import adaptability


def test_a_spec_reads_as_methods_and_literal_values() -> None:
    assert method_hparams("lora.alpha=8, pissa.niter=4,vera.d_init=0.1") == {
        "lora": {"alpha": 8}, "pissa": {"niter": 4}, "vera": {"d_init": 0.1}}
    assert method_hparams("") == {}
    for bad in ("lora", "lora.alpha", "alpha=8", "lora.=8", "lora.alpha=1,lora.alpha=2"):
        with pytest.raises(ValueError, match="hparams"):
            method_hparams(bad)


def test_no_hparams_keeps_every_stored_digest_and_some_make_a_new_one() -> None:
    cfg = preset("default")
    before = {k: v for k, v in cfg.to_dict().items() if k != "hparams"}  # a config from before the flag
    assert cfg.digest() == config_digest(before)
    assert dataclasses.replace(cfg, hparams="lora.alpha=8").digest() != cfg.digest()


def test_the_config_s_hparams_reach_the_adapter() -> None:
    cfg = dataclasses.replace(preset("default"), hparams="lora.alpha=8")
    pretrained = testbeds.get("mlp").make_model(cfg, 0)
    _, (first, *_) = prepare(pretrained, "lora", cfg, 2, 0)
    assert first.scaling == pytest.approx(8 / 2)
    _, (default, *_) = prepare(pretrained, "lora", preset("default"), 2, 0)
    assert default.scaling == pytest.approx(1.0)  # alpha = r
    _, (other, *_) = prepare(pretrained, "pissa", cfg, 2, 0)  # another method keeps its defaults
    assert other.scaling == pytest.approx(1.0)


@pytest.mark.parametrize(("spec", "says"), [("lora.beta=2", "LoRA has no hyper-parameter beta"),
                                             ("nosuch.alpha=2", "unknown method 'nosuch'"),
                                             ("lora.alpha=-1", "alpha > 0"), ("lora", "METHOD.NAME=VALUE")])
def test_a_bad_spec_is_one_line_exit_2_before_any_work(spec: str, says: str, tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        adaptability.main(["--hparams", spec, "--methods", "lora", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 2 and "--hparams" in err and says in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_run_with_hparams_says_so_in_its_table(tmp_path: Path, capsys) -> None:
    argv = ["--hparams", "lora.alpha=8", "--methods", "lora", "--seeds", "1", "--adapt-lr", "0.01",
            "--pretrain-epochs", "5", "--adapt-epochs", "3", "--width", "8", "--out", str(tmp_path)]
    adaptability.main(argv)
    assert "hyper-parameters set (--hparams): lora.alpha=8" in capsys.readouterr().out
