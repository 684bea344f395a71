"""Shared fixtures: sample events, a sandbox on a real loopback port, TikTok clients."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tiktok_gateway import TikTokClient
from tiktok_gateway.sandbox import Sandbox
from tiktok_gateway.testing import running_sandbox, sample_event

PIXEL = "C0EXAMPLE0PIXEL00001"
OTHER_PIXEL = "C0EXAMPLE0PIXEL00002"
TOKEN = "test-token-0123456789"

CHROMIUM = os.environ.get("TIKTOK_GATEWAY_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture
def event_factory() -> Callable[..., dict[str, Any]]:
    """Build inbound events: `event_factory(event="add_to_cart", user={...})`."""
    return sample_event


@pytest.fixture
def sandbox() -> Iterator[tuple[str, Sandbox]]:
    """A sandbox on a loopback port that accepts TOKEN for PIXEL only."""
    with running_sandbox({PIXEL: {TOKEN}}) as running:
        yield running


@pytest.fixture
def sandbox_url(sandbox: tuple[str, Sandbox]) -> str:
    return sandbox[0]


@pytest.fixture
async def client(sandbox_url: str) -> AsyncIterator[TikTokClient]:
    async with TikTokClient(TOKEN, base_url=sandbox_url, timeout=5) as tiktok:
        yield tiktok


@pytest.fixture
def chromium_path() -> str:
    """Debian's chromium; tests that need it skip on a laptop without it (never in CI)."""
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.skip(f"needs Chromium at {CHROMIUM} (apt-get install chromium)")
    return CHROMIUM
