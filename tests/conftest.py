"""Shared fixtures: sample events, a sandbox on a real loopback port, TikTok clients."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.postgres_db import postgres_template, postgres_url  # noqa: F401 - fixtures
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


SERVER_KEY = "server-key-0123456789"
BROWSER_KEY = "browser-key-0123456789"
SHOP_ORIGIN = "https://shop.example.com"
ADMIN = ("admin", "admin-password-0123456789")


def gateway_config(tmp_path: Path, sandbox_url: str, **sections: Any) -> dict[str, Any]:
    """A gateway config dict for tests; keyword arguments replace whole sections."""
    config: dict[str, Any] = {
        "storage": {"url": f"sqlite:///{tmp_path}/gateway.db"},
        "tiktok": {"base_url": sandbox_url, "timeout": 5},
        "delivery": {"linger_ms": 10, "retry_base_seconds": 0.05, "retry_max_seconds": 0.5,
                     "merge_window_seconds": 0, "browser_purchase_wait_seconds": 0},
        "admin": {"username": ADMIN[0], "password": ADMIN[1]},
        "observe": {"flush_seconds": 0.2, "inspect_sample_rate": 1.0},
        "keys": [
            {"name": "backend", "secret": SERVER_KEY, "kind": "server"},
            {"name": "web", "secret": BROWSER_KEY, "kind": "browser",
             "allowed_origins": [SHOP_ORIGIN], "rate_limit_per_minute": 20},
        ],
        "destinations": [{"name": "shop", "pixel_id": PIXEL, "access_token": TOKEN,
                          "phone_region": "US"}],
    }
    config.update(sections)
    return config


@pytest.fixture
def make_gateway(tmp_path: Path, sandbox_url: str) -> Iterator[Callable[..., str]]:
    """Start a gateway app on a loopback port, delivering to the sandbox; returns its URL."""
    from contextlib import ExitStack

    from tiktok_gateway.config import settings_from_dict
    from tiktok_gateway.testing import serve_in_thread
    from tiktok_gateway.web.app import create_app

    with ExitStack() as stack:
        def make(**sections: Any) -> str:
            settings = settings_from_dict(gateway_config(tmp_path, sandbox_url, **sections))
            return stack.enter_context(serve_in_thread(create_app(settings)))

        yield make
