"""The pretrained-model cache (nfl.testbeds.cache): reused when sound, recomputed when damaged."""

from __future__ import annotations

import torch

from nfl.testbeds import cache


def payload() -> dict:
    return {"state": {"w": torch.arange(6.0).view(2, 3)}, "val_loss": [3.0, 2.5]}


def test_a_stored_model_is_reused_bit_for_bit(tmp_path) -> None:
    path = cache.path_for(tmp_path, "gpt", "abc123", 43)
    calls = []
    first, reused = cache.load_or_compute(path, "cpu", lambda: calls.append(1) or payload())
    second, again = cache.load_or_compute(path, "cpu", lambda: calls.append(1) or payload())
    assert (reused, again, len(calls)) == (False, True, 1)
    assert torch.equal(second["state"]["w"], first["state"]["w"]) and second["val_loss"] == [3.0, 2.5]
    assert path.name == "gpt-abc123-seed43.pt" and not list(path.parent.glob("*.tmp*"))


def test_a_damaged_file_is_reported_and_recomputed(tmp_path, capsys) -> None:
    path = cache.path_for(tmp_path, "gpt", "abc123", 43)
    cache.save(path, payload(), "cpu")
    raw = bytearray(path.read_bytes())
    raw[-10] ^= 0xFF  # one flipped byte in the tensors
    path.write_bytes(bytes(raw))
    fresh = {"state": {"w": torch.zeros(1)}, "val_loss": []}
    got, reused = cache.load_or_compute(path, "cpu", lambda: fresh)
    assert not reused and torch.equal(got["state"]["w"], torch.zeros(1))
    assert "checksum does not match" in capsys.readouterr().err
    assert cache.load(path, "cpu") is not None  # the recomputed file replaced the damaged one


def test_a_truncated_file_is_not_trusted(tmp_path, capsys) -> None:
    path = cache.path_for(tmp_path, "gpt", "abc123", 43)
    cache.save(path, payload(), "cpu")
    path.write_bytes(path.read_bytes()[:100])
    assert cache.load(path, "cpu") is None
    assert "not used" in capsys.readouterr().err


def test_a_model_made_under_another_torch_is_recomputed(tmp_path, monkeypatch, capsys) -> None:
    path = cache.path_for(tmp_path, "gpt", "abc123", 43)
    cache.save(path, payload(), "cpu")
    monkeypatch.setattr(torch, "__version__", "0.0.1")
    assert cache.load(path, "cpu") is None
    assert "made with" in capsys.readouterr().err
