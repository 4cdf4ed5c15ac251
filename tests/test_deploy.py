"""The deployment recipes in deploy/ are valid and fit the host: the systemd units pass
`systemd-analyze verify`, the container recipe passes hadolint, and each gives a stop more time
than the host's drain takes."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from posintegrator.runtime.host import STOP_GRACE_SECONDS

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
UNITS = sorted(DEPLOY.glob("*.service"))


def test_there_are_units_for_the_hub_and_the_agent() -> None:
    assert [u.name for u in UNITS] == ["posintegrator-agent.service", "posintegrator.service"]
    assert "posintegrator agent --config" in (DEPLOY / "posintegrator-agent.service").read_text()


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed here (Debian package systemd); the units are "
    "still checked for their stop time below",
)
@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_systemd_unit_verifies(unit: Path, tmp_path: Path) -> None:
    # verify checks that ExecStart's program exists: point it at this environment's command.
    command = Path(sys.executable).with_name("posintegrator")
    copy = tmp_path / unit.name
    copy.write_text(unit.read_text().replace("/opt/posintegrator/bin/posintegrator", str(command)))
    run = subprocess.run(
        ["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_units_wait_longer_than_the_drain_and_hear_readiness(unit: Path) -> None:
    text = unit.read_text()
    stop = re.search(r"^TimeoutStopSec=(\d+)", text, re.M)
    assert stop is not None and int(stop.group(1)) > STOP_GRACE_SECONDS + 5
    assert re.search(r"^Type=notify$", text, re.M), "the host reports readiness by sd_notify"


def test_container_recipe_passes_hadolint() -> None:
    hadolint = Path(sys.executable).with_name("hadolint")
    run = subprocess.run(
        [str(hadolint), str(DEPLOY / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_container_runs_unprivileged_with_a_volume_a_health_check_and_a_long_stop() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^USER 10001", dockerfile, re.M), "not root"
    assert 'VOLUME ["/data"]' in dockerfile
    assert "HEALTHCHECK" in dockerfile and "/healthz" in dockerfile
    compose = (DEPLOY / "compose.yaml").read_text()
    grace = re.search(r"stop_grace_period: (\d+)s", compose)
    assert grace is not None and int(grace.group(1)) > STOP_GRACE_SECONDS + 5
    assert "--stop-timeout 30" in dockerfile
