"""The config `make run` writes on a fresh machine, and its generated ingest key."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from ..config import EXAMPLE_PIXEL_ID

TEMPLATE = """\
# tiktok-gateway configuration. Reference: docs/configuration.md
# Written by `tiktok-gateway serve --init`. With no TikTok access token configured
# (access_token = ""), the gateway runs in demo mode against its built-in sandbox.

[storage]
url = "sqlite:///{data}/gateway.db"

[server]
host = "127.0.0.1"
port = 8080

[tiktok]
base_url = "https://business-api.tiktok.com"

[admin]
username = "admin"
password = "file:{data}/admin.password"

[[keys]]
name = "backend"
secret = "file:{data}/server.key"
kind = "server"

[[destinations]]
name = "shop"
pixel_id = "{example_pixel}"
# To go live: access_token = "env:TIKTOK_ACCESS_TOKEN" (a token that does not resolve then
# stops start-up; it never falls back to demo mode), and your own pixel_id.
access_token = ""
test_event_code = ""
phone_region = "US"
"""


def write_default_config(path: Path, data_dir: Path) -> None:
    """Write the config and fresh secrets (mode 600) unless they already exist."""
    data_dir.mkdir(parents=True, exist_ok=True)
    for name in ("server.key", "admin.password"):
        secret_file = data_dir / name
        if not secret_file.exists():
            secret_file.write_text(secrets.token_urlsafe(24) + "\n")
            os.chmod(secret_file, 0o600)
    path.write_text(TEMPLATE.format(data=_relative(data_dir), example_pixel=EXAMPLE_PIXEL_ID))


def _relative(path: Path) -> str:
    return "./" + os.path.relpath(path) if not path.is_absolute() else str(path)
