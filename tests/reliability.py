"""Figures the reliability tests record, rendered by `bench/reliability.py` into
bench/results/reliability.md (events acknowledged, delivered, duplicated, lost; inputs tried;
5xx seen)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

REPORT_DIR = Path(os.environ.get("TIKTOK_GATEWAY_REPORT_DIR", "test-results/reliability"))


def record(name: str, **figures: Any) -> None:
    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    (REPORT_DIR / f"{name}.json").write_text(json.dumps(figures, indent=2))
