"""Loading gateway.toml: clear errors that point at the line, secrets never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from tiktok_gateway import ConfigError
from tiktok_gateway.config import load_settings, resolve_secret

GOOD = """\
[storage]
url = "sqlite:///./data/gateway.db"

[[keys]]
name = "backend"
secret = "env:GATEWAY_TEST_KEY"

[[destinations]]
name = "shop"
pixel_id = "C0EXAMPLE0PIXEL00001"
access_token = "env:TIKTOK_TEST_TOKEN"

[[destinations]]
name = "brand"
pixel_id = "C0EXAMPLE0PIXEL00002"
purchase_event = "Payment"
"""


def test_minimal_config_loads(tmp_path: Path) -> None:
    """The issue's minimal shape loads with defaults for everything else."""
    path = tmp_path / "gateway.toml"
    path.write_text(GOOD.replace('purchase_event = "Payment"\n', ""))
    settings = load_settings(path)
    assert settings.destinations[1].purchase_event == "CompletePayment"
    assert settings.delivery.dedup_window_hours == 48


def test_error_names_file_line_and_field(tmp_path: Path) -> None:
    """A bad value in the second destination is reported at its line."""
    path = tmp_path / "gateway.toml"
    path.write_text(GOOD)
    with pytest.raises(ConfigError) as exc:
        load_settings(path)
    assert f"{path}:16: destinations.1.purchase_event" in str(exc.value)
    assert "'CompletePayment' or 'Purchase'" in str(exc.value)


def test_unknown_keys_are_errors(tmp_path: Path) -> None:
    """A typo in a key name is an error, not silently ignored."""
    path = tmp_path / "gateway.toml"
    path.write_text('[tiktok]\nbase_ur = "http://x"\n')
    with pytest.raises(ConfigError) as exc:
        load_settings(path)
    assert ":2: tiktok.base_ur: Extra inputs are not permitted" in str(exc.value)


def test_invalid_toml(tmp_path: Path) -> None:
    """A TOML syntax error names the file and position."""
    path = tmp_path / "gateway.toml"
    path.write_text("[storage\n")
    with pytest.raises(ConfigError) as exc:
        load_settings(path)
    assert "not valid TOML" in str(exc.value) and "line 1" in str(exc.value)


def test_secrets_from_env_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """env: and file: references resolve; missing ones are None; values never show in repr."""
    monkeypatch.setenv("SECRET_FOR_TEST", "s3cr3t-value")
    (tmp_path / "token").write_text("from-file-token\n")
    env = resolve_secret("env:SECRET_FOR_TEST")
    assert env is not None and env.get_secret_value() == "s3cr3t-value"
    assert "s3cr3t" not in repr(env)
    from_file = resolve_secret(f"file:{tmp_path}/token")
    assert from_file is not None and from_file.get_secret_value() == "from-file-token"
    assert resolve_secret("env:NOT_SET_ANYWHERE_123") is None
    assert resolve_secret(f"file:{tmp_path}/missing") is None
