"""Reload without downtime (SIGHUP): ingest keys, TikTok tokens, webhook secrets and the admin
login are taken from the config file again; every other change needs a restart, and the log
says which.

All or nothing: the new keys, login and tokens are all checked before any is swapped in, so
a config with a secret that does not resolve leaves the running one as it was. A request
in flight finishes with what it started with; the next one sees the new set.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from ..config import Settings
from ..gateway import Gateway
from .admin import AdminAuth
from .auth import KeyRing
from .sources import Sources, webhook_secrets

logger = logging.getLogger("tiktok_gateway")
RELOADED = ("keys", "admin", "webhooks")  # sections taken whole; plus each access_token


@dataclass
class Reloaded:
    changed: list[str] = field(default_factory=list)
    needs_restart: list[str] = field(default_factory=list)

    def text(self) -> str:
        done = ", ".join(self.changed) or "nothing changed"
        rest = (f"; these need a restart to apply: {', '.join(self.needs_restart)}"
                if self.needs_restart else "")
        return f"config reloaded: {done}{rest}"


class Reloader:
    def __init__(self, settings: Settings, gateway: Gateway, keys: KeyRing, admin: AdminAuth,
                 sources: Sources) -> None:
        self.settings = settings
        self.gateway = gateway
        self.keys = keys
        self.admin = admin
        self.sources = sources

    def reload(self, new: Settings) -> Reloaded:
        ring, login = KeyRing(new.keys), AdminAuth(new.admin)  # ConfigError: nothing swapped
        result = Reloaded()
        tokens = self.gateway.rotate_tokens(new.destinations)
        result.changed += [f"access token of {name}" for name in tokens]
        old = self.settings
        if new.keys != old.keys or ring.keys != self.keys.keys:
            result.changed.append(f"ingest keys ({len(ring.keys)})")
        self.keys.replace(ring)
        if new.admin != old.admin:
            result.changed.append("admin login")
        self.admin.replace(login)
        if self.sources.secrets != webhook_secrets(new.webhooks):
            result.changed.append("webhook secrets")
        self.sources.replace(new.webhooks)
        result.needs_restart = _other_changes(old, new)
        self.settings = new
        return result


def _other_changes(old: Settings, new: Settings) -> list[str]:
    """Settings that differ outside what a reload takes, as dotted names."""
    before, after = old.model_dump(), new.model_dump()
    for name in RELOADED:
        before.pop(name), after.pop(name)
    for destinations in (before["destinations"], after["destinations"]):
        for dest in destinations:
            dest.pop("access_token")
    names = []
    for section in sorted(set(before) | set(after)):
        a, b = before.get(section), after.get(section)
        if isinstance(a, dict) and isinstance(b, dict):
            names += [f"{section}.{k}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        elif a != b:
            names.append(section)
    return names
