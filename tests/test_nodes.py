"""Timings from different kinds of node are never drawn together."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nfl.nodes import by_node_kind, node_kind
from studies import pareto

TINY = ["--pretrain-epochs", "10", "--adapt-epochs", "3", "--seeds", "1", "--quick", "--width", "8"]


def record(device: str, cpu: str | None) -> dict:
    return {"env": {"device_name": device, **({} if cpu is None else {"cpu_model": cpu})}}


def test_a_node_kind_is_the_device_and_the_cpu_model() -> None:
    assert node_kind(record("NVIDIA H100", "AMD EPYC 7763")) == "NVIDIA H100 on AMD EPYC 7763"
    assert node_kind(record("AMD EPYC 7763", "AMD EPYC 7763")) == "AMD EPYC 7763"  # a CPU run names it once
    assert node_kind(record("AMD EPYC 7763", None)) == "AMD EPYC 7763"  # a record from before cpu_model


def test_records_are_grouped_by_kind_in_first_seen_order() -> None:
    a, b, c = record("A100", "Xeon"), record("H100", "EPYC"), record("A100", "Xeon")
    assert by_node_kind([a, b, c]) == {"A100 on Xeon": [a, c], "H100 on EPYC": [b]}
    assert by_node_kind([record("A100", "Xeon"), record("A100", "EPYC")]).keys() == {"A100 on Xeon", "A100 on EPYC"}


@pytest.mark.slow
def test_pareto_draws_timings_from_two_kinds_of_node_apart(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    argv = [*TINY, "--methods", "lora,miss_e", "--ranks", "1", "--out", str(tmp_path)]
    pareto.main(argv)
    for study in ("init_time", "train_time"):  # as if the second half had run on another cluster node
        path = tmp_path / f"{study}.jsonl"
        records = [json.loads(line) for line in path.read_text().splitlines()]
        # The run's environment is stored once, in its context line; every round of one method's cells
        # names a second context, on another CPU, so that each cell has one kind of node.
        context = next(r for r in records if "study" not in r)
        other = {**context, "context": "other-node", "env": {**context["env"], "cpu_model": "Other CPU"}}
        for r in records:
            if r.get("method") == "miss_e":
                r["context"] = "other-node"
        path.write_text("".join(json.dumps(r) + "\n" for r in [other, *records]))
    capsys.readouterr()
    pareto.main([*argv, "--resume"])  # nothing to compute: the figures are drawn from the store
    assert "timings from 2 kinds of node, drawn apart" in capsys.readouterr().out
    for stem in ("figure2_node1", "figure2_node2", "pareto_node1", "pareto_node2"):
        assert (tmp_path / f"{stem}.png").stat().st_size > 1000
