"""Named queries kept in `.sql` files, split on `-- name: <name>` headers."""

from __future__ import annotations

import re
from pathlib import Path

_HEADER = re.compile(r"^--\s*name:\s*(\w+)\s*$")


def load_queries(filename: str) -> dict[str, str]:
    """The queries in a `.sql` file beside this module, by name."""
    queries: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in (Path(__file__).parent / filename).read_text().splitlines():
        match = _HEADER.match(line)
        if match:
            current = queries.setdefault(match.group(1), [])
        elif current is not None:
            current.append(line)
    return {name: "\n".join(lines).strip() for name, lines in queries.items()}
