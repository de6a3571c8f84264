"""The figures printed at the end: faults, traffic, losses, recovery and freshness."""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any

from rivyahooks.output import table
from tests.soak.chaos import Window
from tests.soak.invariants import Truth, Verdict


def percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def _total(counts: list[int | str]) -> int | str:
    numbers = [c for c in counts if isinstance(c, int)]
    return sum(numbers) if len(numbers) == len(counts) else "?"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def freshness(
    truth: Truth, seen: dict[str, float], windows: list[Window]
) -> tuple[list[float], list[float]]:
    """Seconds from Rivya finishing to finished in the feed, split by whether a fault was on."""
    calm: list[float] = []
    faulty: list[float] = []
    spans = [(w.start, w.end or w.start) for w in windows]
    for task_id, finished in truth.finished.items():
        if task_id not in seen:
            continue
        value = max(0.0, seen[task_id] - finished)
        during = any(start <= finished <= end for start, end in spans)
        (faulty if during else calm).append(value)
    return calm, faulty


def render(
    windows: list[Window],
    recovery: dict[int, float],
    sim_state: dict[str, Any],
    truth: Truth,
    seen: dict[str, float],
    verdicts: list[Verdict],
    load_errors: int,
) -> str:
    kinds = Counter(w.fault.kind for w in windows)
    rows: list[list[Any]] = [
        [f"faults: {kind}", count, ""] for kind, count in sorted(kinds.items())
    ]
    rows.append(["faults: total", sum(kinds.values()), ""])
    for kind in sorted(kinds):
        times = [
            recovery[w.fault.number]
            for w in windows
            if w.fault.kind == kind and w.fault.number in recovery
        ]
        missing = sum(1 for w in windows if w.fault.kind == kind and w.fault.number not in recovery)
        note = f"{missing} without an event after" if missing else ""
        rows.append(
            [f"recovery after {kind} (longest)", _seconds(max(times) if times else None), note]
        )
    statuses = Counter(truth.status.values())
    rows += [
        ["generations created", len(truth.status), f"{load_errors} creations failed"],
        ["generations succeeded at Rivya", statuses.get("succeeded", 0), ""],
        ["generations failed at Rivya", statuses.get("failed", 0), ""],
    ]
    deliveries = sim_state["deliveries"]
    for name in ("attempted", "succeeded", "failed", "dropped", "duplicated"):
        rows.append([f"deliveries {name}", deliveries[name], ""])
    by_name = {v.name: v.problems for v in verdicts}

    def count(name: str, only: str = "") -> int | str:
        return sum(1 for p in by_name[name] if only in p) if name in by_name else "?"

    lost = [
        count("every finished generation stored once, byte-identical"),
        count("no delivery answered 2xx is missing"),
    ]
    duplicated = [
        count("no output row written twice"),
        count("no object written beyond its row"),
        count("every finished generation in the feed exactly once", " times"),
    ]
    rows += [
        ["lost", _total(lost), "generations not stored + 2xx deliveries missing"],
        ["duplicated", _total(duplicated), "rows + objects + feed entries"],
    ]
    calm, faulty = freshness(truth, seen, windows)
    for label, values in (("calm", calm), ("during faults", faulty)):
        rows.append(
            [
                f"freshness {label} p50 / p99",
                f"{_seconds(percentile(values, 0.5))} / {_seconds(percentile(values, 0.99))}",
                f"{len(values)} generations"
                + (f", mean {statistics.fmean(values):.1f} s" if values else ""),
            ]
        )
    return table(rows, ["figure", "value", "note"])
