"""The shipped systemd unit: valid to systemd itself, and hardened."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).parents[2] / "deploy" / "tiktok-gateway.service"
INSTALLED = "/opt/tiktok-gateway/.venv/bin/tiktok-gateway"


def test_the_systemd_unit_verifies(tmp_path: Path) -> None:
    """`systemd-analyze verify` finds nothing to say (it also names unknown keys, which it
    otherwise ignores), with ExecStart pointed at this checkout's command."""
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("needs systemd-analyze (apt-get install systemd)")
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace(INSTALLED, str(Path(sys.executable).with_name(
        "tiktok-gateway"))))
    result = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True,
                            timeout=60)
    said = [line for line in (result.stdout + result.stderr).splitlines() if UNIT.name in line]
    assert result.returncode == 0 and said == [], result.stdout + result.stderr


def test_the_unit_runs_unprivileged_and_writes_only_its_state() -> None:
    settings = dict(line.split("=", 1) for line in UNIT.read_text().splitlines()
                    if "=" in line and not line.startswith("#"))
    assert settings["DynamicUser"] == "yes" and settings["NoNewPrivileges"] == "yes"
    assert settings["ProtectSystem"] == "strict" and settings["StateDirectory"] == "tiktok-gateway"
    assert settings["CapabilityBoundingSet"] == "" and settings["KillSignal"] == "SIGTERM"
    assert "access_token" not in UNIT.read_text().split("[Unit]")[1]  # secrets never in the unit
