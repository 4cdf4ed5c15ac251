"""The benchmark scripts still run: each with ``--quick`` (tiny sizes), as a subprocess.

Full-size runs never happen here; they are run by hand (see bench/README.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"

CASES = {
    "chain_scale": {"locations", "variations", "baseline_translation", "rounds", "goals"},
    "durability": {"orders", "repeat", "results"},
    "intake": {"results", "ratios", "generator", "generator_headroom", "store_statuses"},
    "e2e": {"baseline", "first_rate", "highest_rate_p99_under_250ms", "steps"},
    "link": {"pickup", "steps", "backlog"},
    "menu_translation": {
        "results",
        "ratio",
        "target_met",
        "memory",
        "json_bytes",
        "menu",
        "floor_ratio",
    },
    "menu_load": {"results", "body_bytes", "goal_met"},
    "scale_out": {
        "baseline",
        "one_worker",
        "two_workers",
        "ratio_one_worker_to_baseline",
        "speedup_two_workers",
        "pickup_ms",
        "one_worker_delivering",
        "cpu_us_per_order",
    },
    "scheduler_scale": {
        "host_idle_cpu",
        "baseline_idle_cpu",
        "host_rss_bytes",
        "first_sync_histogram",
        "startup_seconds",
    },
}

#: Seconds a quick run may take, when more than the default: link.py starts a dozen processes
#: (three hubs, three agent starts, POS simulators, receivers), each importing the host. These
#: only guard against a hang: on a machine busy with other work a quick run of intake.py took
#: half a minute, four times as long as on a quiet one.
TIMEOUTS = {"link": 600, "scale_out": 600}


@pytest.mark.timeout(900)  # above every run's own limit, so that limit reports the hang
@pytest.mark.parametrize("name", sorted(CASES))
def test_quick_run(name: str) -> None:
    # The scripts write bench/results/<name>.json; keep a full-size result that is there.
    result_file = BENCH / "results" / f"{name}.json"
    kept = result_file.read_bytes() if result_file.exists() else None
    result_file.unlink(missing_ok=True)
    try:
        done = subprocess.run(
            [sys.executable, str(BENCH / f"{name}.py"), "--quick"],
            capture_output=True,
            text=True,
            timeout=TIMEOUTS.get(name, 240),
            env={**os.environ, "POSINTEGRATOR_LOG_LEVEL": "WARNING"},
        )
        assert done.returncode == 0, done.stdout + done.stderr
        payload = json.loads(result_file.read_text())
    finally:
        if kept is not None:
            result_file.write_bytes(kept)
    assert CASES[name] <= payload.keys(), sorted(payload)
    assert "machine" in payload
