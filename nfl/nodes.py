"""Kinds of node: timings are comparable only among cells measured on the same device and CPU model.

A sweep spread over a cluster can mix machines; a figure that draws timings calls
:func:`by_node_kind` and draws each kind apart.
"""

from __future__ import annotations

from typing import Any


def node_kind(record: dict[str, Any]) -> str:
    """The device name and CPU model a record was measured on, from its environment."""
    env = record.get("env", {})
    device, cpu = env.get("device_name", "unknown device"), env.get("cpu_model")
    return device if cpu is None or cpu == device else f"{device} on {cpu}"


def by_node_kind(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Records grouped by :func:`node_kind`, kinds and records in first-seen order."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault(node_kind(record), []).append(record)
    return groups
