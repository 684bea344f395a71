"""Acceptance fixtures: the sandbox as a real process, as TikTok for gateway processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.acceptance.processes import PIXEL, TOKEN, Process, start_sandbox


@pytest.fixture
def tiktok_process(tmp_path: Path) -> Iterator[Process]:
    """`tiktok-gateway sandbox` on a free port, accepting the acceptance token for PIXEL."""
    process = start_sandbox(tmp_path, "--token", f"{PIXEL}={TOKEN}")
    yield process
    process.stop()
