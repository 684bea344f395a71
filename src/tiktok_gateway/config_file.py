"""Where the config file is. Apart from `config` so that a command which reads the file only
when it exists (`transform`) does not import the settings models and the stores to find out."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_CONFIG_PATH = "gateway.toml"
CONFIG_ENV = "TIKTOK_GATEWAY_CONFIG"


def config_path(explicit: Path | None) -> Path:
    """The file given, else `$TIKTOK_GATEWAY_CONFIG`, else `./gateway.toml`."""
    return explicit or Path(os.environ.get(CONFIG_ENV, DEFAULT_CONFIG_PATH))
