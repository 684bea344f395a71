"""Schemathesis against the running gateway's own /openapi.json: no input gets a 5xx, and
every rejection names the field and why (a check of ours, in schemathesis_hooks.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import SERVER_KEY
from tests.reliability import record

ROOT = Path(__file__).parents[2]
EXAMPLES = "300" if os.environ.get("TIKTOK_GATEWAY_SOAK") else "40"


def test_no_server_errors_for_any_input(make_gateway: Callable[..., str], tmp_path: Path) -> None:
    """Generated requests for every operation never get a 5xx, and every rejection says why."""
    cli = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    if cli is None:
        pytest.skip("schemathesis is not installed (pip install -e '.[dev]')")
    url = make_gateway()
    report = tmp_path / "report.json"
    result = subprocess.run(
        [cli, "run", f"{url}/openapi.json", "--checks", "not_a_server_error,rejections_name_fields",
         "-H", f"Authorization: Bearer {SERVER_KEY}", "--max-examples", EXAMPLES,
         "--generation-deterministic", "--report", "json", "--report-json-path", str(report)],
        # cwd: schemathesis keeps a crash cache in ./.schemathesis; keep it out of the checkout.
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
        env={**os.environ, "SCHEMATHESIS_HOOKS": "tests.acceptance.schemathesis_hooks",
             "PYTHONPATH": str(ROOT)})
    output = result.stdout + result.stderr
    tried = _count(report, output)
    passed = result.returncode == 0
    record("schemathesis", inputs_tried=tried, server_errors=0 if passed else "see failures",
           rejections_without_a_reason=0 if passed else "see failures",
           exit_code=result.returncode)
    assert result.returncode == 0, output[-3000:]


def _count(report: Path, output: str) -> int | str:
    try:
        data = json.loads(report.read_text())
    except (OSError, ValueError):
        data = {}
    for key in ("total_cases", "cases", "test_cases"):
        if isinstance(data.get(key), int):
            return int(data[key])
    import re

    match = re.search(r"(\d+)\s+(?:generated|test cases|cases)", output)
    return int(match.group(1)) if match else "unknown"
