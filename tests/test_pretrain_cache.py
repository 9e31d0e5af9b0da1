"""The pretrained-model cache (nfl.testbeds.cache): reused when sound, recomputed when damaged."""

from __future__ import annotations

import torch

from nfl.testbeds import cache


def payload() -> dict:
    return {"state": {"w": torch.arange(6.0).view(2, 3)}, "val_loss": [3.0, 2.5]}


def test_a_stored_payload_loads_bit_for_bit(tmp_path) -> None:
    path = cache.path_for(tmp_path, "gpt", "abc123", 43)
    assert cache.load(path, "cpu") is None  # nothing stored yet
    cache.save(path, payload(), "cpu")
    loaded = cache.load(path, "cpu")
    assert torch.equal(loaded["state"]["w"], payload()["state"]["w"]) and loaded["val_loss"] == [3.0, 2.5]
    assert path.name == "gpt-abc123-seed43.pt" and not list(path.parent.glob("*.tmp*"))


def test_a_damaged_file_is_reported_and_not_trusted(tmp_path, capsys) -> None:
    path = cache.path_for(tmp_path, "gpt", "abc123", 43)
    cache.save(path, payload(), "cpu")
    raw = bytearray(path.read_bytes())
    raw[-10] ^= 0xFF  # one flipped byte in the tensors
    path.write_bytes(bytes(raw))
    assert cache.load(path, "cpu") is None
    assert "checksum does not match" in capsys.readouterr().err


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
