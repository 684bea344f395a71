"""docs/configuration.md names every setting the gateway reads."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from tiktok_gateway.config import Settings

DOC = Path(__file__).parents[2] / "docs" / "configuration.md"


def settings_of(model: type[BaseModel], prefix: str = "") -> list[str]:
    names = []
    for name, field in model.model_fields.items():
        annotation: Any = field.annotation
        inner = getattr(annotation, "__args__", (annotation,))
        nested = [a for a in inner if isinstance(a, type) and issubclass(a, BaseModel)]
        if nested:
            names += settings_of(nested[0], f"{prefix}{name}.")
        else:
            names.append(f"{prefix}{name}")
    return names


def test_every_setting_is_documented() -> None:
    text = DOC.read_text()

    def documented(name: str) -> bool:
        leaf = re.escape(name.split(".")[-1])  # as a TOML key line, or named in backticks
        return re.search(rf"(?m)^\s*{leaf}\s*=|`{leaf}`", text) is not None

    missing = [name for name in settings_of(Settings) if not documented(name)]
    assert missing == [], f"settings missing from docs/configuration.md: {missing}"


def test_the_complete_example_is_a_valid_config() -> None:
    """The reference config in the docs is read by the gateway's own loader as it stands."""
    import tomllib

    block = re.search(r"## A complete example\s+```toml\n(.*?)```", DOC.read_text(), re.S)
    assert block
    settings = Settings.model_validate(tomllib.loads(block.group(1)))
    assert settings.destinations[0].filters.block_events == ["page_view"]
    assert settings.webhooks.shopify_topics == ["orders/create", "orders/paid"]
