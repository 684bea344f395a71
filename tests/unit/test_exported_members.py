"""The public API is exactly what `__all__` lists."""

from __future__ import annotations

import tiktok_gateway
import tiktok_gateway.tiktok


def test_all_matches_public_names() -> None:
    """Every name in __all__ exists, and every public name is in __all__."""
    for module in (tiktok_gateway, tiktok_gateway.tiktok):
        public = {name for name in vars(module) if not name.startswith("_")}
        submodules = {name for name in public if type(getattr(module, name)).__name__ == "module"}
        assert set(module.__all__) == public - submodules


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
