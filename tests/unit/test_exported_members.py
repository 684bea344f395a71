"""The public API is exactly what `__all__` lists."""

from __future__ import annotations

import subprocess
import sys

import pytest

import tiktok_gateway
import tiktok_gateway.tiktok


def test_all_matches_public_names() -> None:
    """Every name in __all__ loads (on first use), `import *` gives exactly those names, and
    a name that is not public is an AttributeError, not a silent None."""
    for module in (tiktok_gateway, tiktok_gateway.tiktok):
        for name in module.__all__:
            assert getattr(module, name).__name__ == name
        namespace: dict[str, object] = {}
        exec(f"from {module.__name__} import *", namespace)
        assert set(namespace) - {"__builtins__"} == set(module.__all__)
        with pytest.raises(AttributeError, match="no_such_name"):
            module.no_such_name  # noqa: B018


def test_transforming_does_not_load_the_http_client_or_the_settings() -> None:
    """What `tiktok-gateway transform` imports stays light: it starts in a fraction of the time
    the whole gateway takes (the benchmark's CLI row measures it)."""
    probe = ("import sys, tiktok_gateway.cli.transform, tiktok_gateway.cli; "
             "print(sorted(m for m in ('httpx', 'tiktok_gateway.config', 'tiktok_gateway.outbox',"
             " 'starlette') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert loaded == "[]"


def test_spliced_request_body_equals_the_built_one() -> None:
    """Splicing stored JSON events gives exactly the body build_request would."""
    import orjson

    from tiktok_gateway.tiktok.schema import build_request, build_request_bytes

    events = [{"event": "CompletePayment", "event_id": "1", "user": {"ip": "13.57.97.131"}},
              {"event": "AddToCart", "event_id": "2", "properties": {"value": 1.5}}]
    for code in (None, "TEST1"):
        spliced = build_request_bytes("PIXEL", [orjson.dumps(e).decode() for e in events],
                                      test_event_code=code)
        assert orjson.loads(spliced) == build_request("PIXEL", events, test_event_code=code)
