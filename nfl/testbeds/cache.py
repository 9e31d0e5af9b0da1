"""Pretrained models paid for once: stored under a study's ``--out``, keyed by what made them.

A file ``<out>/pretrained/<testbed>-<config hash>-seed<seed>.pt`` holds the model's tensors and its
pretraining history. Its first line is the sha256 of the rest, checked on every load: a file torn by
a crash, truncated or edited is reported and recomputed, never trusted. The key's config hash covers
every setting the pretraining depends on (the corpora's identity included), and the file records the
torch version and device type it was made with: a load under others recomputes rather than mix them.
Writes go to a temporary file renamed into place, so a reader never sees half a file.
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nfl import seeds, testbeds
from nfl.config import ExperimentConfig, config_digest
from nfl.training import History, pretrain

Payload = dict[str, Any]


def path_for(out: str | Path, testbed: str, config_hash: str, seed: int) -> Path:
    return Path(out) / "pretrained" / f"{testbed}-{config_hash}-seed{seed}.pt"


def _provenance(device: torch.device | str) -> dict[str, str]:
    return {"torch": str(torch.__version__), "device_type": torch.device(device).type}


def save(path: Path, payload: Payload, device: torch.device | str) -> None:
    """Write ``payload`` (tensors, lists, numbers, strings) with its checksum, atomically."""
    buffer = io.BytesIO()
    torch.save({**payload, "provenance": _provenance(device)}, buffer)
    body = buffer.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(temporary, "wb") as file:
        file.write(hashlib.sha256(body).hexdigest().encode() + b"\n" + body)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


def load(path: Path, device: torch.device | str) -> Payload | None:
    """The payload stored at ``path``, or None (with one line on stderr saying why) when it is
    missing, damaged or made under another torch version or device type."""
    if not path.exists():
        return None
    raw = path.read_bytes()
    digest, _, body = raw.partition(b"\n")
    why = None
    if hashlib.sha256(body).hexdigest().encode() != digest:
        why = "its checksum does not match (damaged)"
    else:
        try:
            payload = torch.load(io.BytesIO(body), map_location=device, weights_only=True)
        except Exception as error:  # a checksummed file that will not load is damaged all the same
            why = f"it does not load ({type(error).__name__})"
        else:
            if payload.get("provenance") != _provenance(device):
                why = f"it was made with {payload.get('provenance')}, not {_provenance(device)}"
    if why is not None:
        print(f"nfl: pretrained model {path} is not used, {why}: computing it again", file=sys.stderr)
        return None
    payload.pop("provenance")
    return payload


# Settings that shape only the adaptation: a pretrained model is shared by configs that differ in these.
ADAPTATION_ONLY = {"": ("targets", "train_unadapted_layers", "hparams"),
                   "train": ("adapt_epochs", "adapt_lr", "lr_grid"), "gpt": ("batch",)}


def pretraining_digest(cfg: ExperimentConfig) -> str:
    """The config hash of what the pretraining depends on (the corpora's identity included)."""
    data = cfg.to_dict()
    for section, names in ADAPTATION_ONLY.items():
        where = data[section] if section else data
        for name in names:
            where.pop(name, None)  # a record from before a field existed lacks it
    return config_digest(data)


def pretrained(
    cfg: ExperimentConfig, data: Any, seed: int, device: torch.device | str, out: str | Path
) -> tuple[nn.Module, History]:
    """The model pretrained on ``data``'s base task for run ``seed``, and its history: read from ``out`` when
    a sound file is there, else computed (:func:`nfl.training.pretrain`) and stored for the next study."""
    path = path_for(out, cfg.testbed, pretraining_digest(cfg), seed)
    payload = load(path, device)
    if payload is None:
        model, history = pretrain(cfg, data, seed, device)
        save(path, {"state": model.state_dict(), "history": history.to_dict()}, device)
        return model, history
    print(f"note: pretrained model reused from {path}", file=sys.stderr)
    model = testbeds.get(cfg.testbed).make_model(cfg, seeds.derive(seed, "model")).to(device)
    model.load_state_dict(payload["state"])
    return model, History(**payload["history"])
