"""What every benchmark script shares: repeated timing, median and spread, results as JSON.

Machines here are shared and noisy, so a script measures its baseline in the same run and
reports ratios to it; absolute figures are printed beside them for context only.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Measure:
    """Repeated measurements of one quantity (seconds, or a rate)."""

    name: str
    unit: str
    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def spread(self) -> float:
        """Half the distance between the fastest and slowest sample, relative to the median."""
        if len(self.samples) < 2 or self.median == 0:
            return 0.0
        return (max(self.samples) - min(self.samples)) / 2 / self.median

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "unit": self.unit,
            "median": self.median,
            "spread": self.spread,
            "samples": self.samples,
        }


async def repeat(times: int, run: Callable[[], Awaitable[float]], measure: Measure) -> Measure:
    """Run ``run`` ``times`` times, recording what each run returns."""
    for _ in range(times):
        measure.samples.append(await run())
    return measure


def clock() -> float:
    """A monotonic clock in seconds."""
    return time.perf_counter()


def machine() -> dict[str, Any]:
    """What ran the benchmark."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }


def write_results(name: str, payload: dict[str, Any]) -> Path:
    """Save ``payload`` as ``bench/results/<name>.json`` and return the path."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **payload}, indent=2) + "\n")
    return path


def table(rows: list[list[str]]) -> str:
    """A plain text table."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def as_dict(value: Any) -> dict[str, Any]:
    """A dataclass as a dict (for JSON)."""
    result: dict[str, Any] = asdict(value)
    return result
