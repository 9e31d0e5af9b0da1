"""Numbers for machines: every store's results as CSV rows with one number per column.

The tables print for people ("0.0039 ± 0.0073", "8,320"); :func:`numeric_rows` gives the same
results from the records, long format: one row per (study, method, rank, metric) with the mean,
the bounds of its 95% interval and n in separate columns. Quality stores are summarised at each
(method, rank)'s tuned learning rate over the seeds that did not diverge, as the tables are;
timing stores give the fastest and median round in ms (n: rounds); failed cells give a row with
their reason.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from typing import Any

from nfl.selection import tune
from nfl.stats import mean_ci

Records = list[dict[str, Any]]
COLUMNS = ("study", "method", "rank", "lr", "params", "metric", "mean", "ci_low", "ci_high", "n", "diverged", "failed")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _summary_rows(
    study: str, method: str, rank: int | None, lr: float | None, records: Records
) -> list[dict[str, Any]]:
    """One row per numeric summary key of these records (one per seed)."""
    summaries = [r["summary"] for r in records]
    finished = [s for s in summaries if s.get("diverged_at") is None]
    params = summaries[0].get("trainable_params")
    keys = [k for k, v in summaries[0].items() if _number(v) and k not in ("trainable_params", "diverged_at")]
    base = {"study": study, "method": method, "rank": rank, "lr": lr, "params": params,
            "diverged": len(summaries) - len(finished)}
    rows = []
    for key in keys:
        values = [s[key] for s in finished if _number(s.get(key))]
        if not values:
            rows.append({**base, "metric": key, "n": 0})
            continue
        mean, half = (float(v) for v in mean_ci(values))
        low, high = (mean - half, mean + half) if len(values) > 1 else (None, None)  # one run: no interval
        rows.append({**base, "metric": key, "mean": mean, "ci_low": low, "ci_high": high, "n": len(values)})
    return rows


def _timing_rows(study: str, record: dict[str, Any]) -> list[dict[str, Any]]:
    timing = record["timing"]
    base = {"study": study, "method": record["method"], "rank": record["rank"], "lr": None,
            "params": record.get("summary", {}).get("trainable_params"), "n": timing["rounds"], "diverged": 0}
    return [{**base, "metric": f"{name}_ms", "mean": 1e3 * timing[f"{name}_s"]} for name in ("fastest", "median")]


def numeric_rows(stores: dict[str, Records], failed: dict[str, Records] | None = None) -> list[dict[str, Any]]:
    """Every store's results as rows of :data:`COLUMNS` (missing values None)."""
    rows: list[dict[str, Any]] = []
    for study, records in stores.items():
        if records and "timing" in records[0]:
            rows += [row for record in records for row in _timing_rows(study, record)]
        elif records and records[0].get("lr") is not None:
            for tuned in tune(records):
                if tuned.lr is None:
                    rows.append({"study": study, "method": tuned.method, "rank": tuned.rank, "metric": "test_loss",
                                 "failed": "every learning rate diverged on some seed"})
                else:
                    rows += _summary_rows(study, tuned.method, tuned.rank, tuned.lr, tuned.records)
        else:
            groups: dict[tuple[str, int | None], Records] = {}
            for record in records:
                groups.setdefault((record["method"], record["rank"]), []).append(record)
            for (method, rank), mine in groups.items():
                rows += _summary_rows(study, method, rank, None, mine)
    for study, records in (failed or {}).items():
        reasons: dict[tuple[str, int | None], str] = {}
        for record in records:
            reasons[(record["method"], record["rank"])] = record["failed"]
        rows += [{"study": study, "method": m, "rank": r, "failed": why} for (m, r), why in reasons.items()]
    return rows


def to_csv(rows: Iterable[dict[str, Any]], columns: Sequence[str] = COLUMNS) -> str:
    """``rows`` as CSV text: numbers written as Python prints them (repr: no digits lost), None empty."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else repr(row[c]) if isinstance(row[c], float) else row[c]
                         for c in columns])
    return buffer.getvalue()
