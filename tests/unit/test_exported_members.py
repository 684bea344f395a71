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
