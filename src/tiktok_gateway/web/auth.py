"""Who may post events: ingest keys, browser origins, per-IP limits, trusted proxies."""

from __future__ import annotations

import hmac
import ipaddress
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from starlette.requests import Request

from ..config import KeySettings, resolve_secret
from ..exceptions import ConfigError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class IngestKey:
    name: str
    secret: str
    kind: str
    allowed_origins: frozenset[str]
    rate_limit_per_minute: int
    fill_client_context: bool = False
    allow_custom_events: bool = False

    @property
    def from_shopper(self) -> bool:
        """Whether the connection's IP and user agent are the shopper's."""
        return self.is_browser or self.fill_client_context

    @property
    def is_browser(self) -> bool:
        return self.kind == "browser"


class KeyRing:
    """The configured ingest keys, compared in constant time."""

    def __init__(self, keys: Iterable[KeySettings]) -> None:
        self.keys = []
        for key in keys:
            secret = resolve_secret(key.secret)
            if secret is None:
                raise ConfigError(f"ingest key {key.name!r}: its secret ({key.secret.split(':')[0]}:"
                                  "...) is not set")
            origins = frozenset(o.rstrip("/") for o in key.allowed_origins)
            self.keys.append(IngestKey(key.name, secret.get_secret_value(), key.kind, origins,
                                       key.rate_limit_per_minute, key.fill_client_context,
                                       key.allow_custom_events))
        self.browser_origins = frozenset().union(*(k.allowed_origins for k in self.keys
                                                   if k.is_browser))

    def replace(self, other: KeyRing) -> None:
        """Take another ring's keys at once (a reload): each request sees the old set or the
        new one, never a mix."""
        self.keys, self.browser_origins = other.keys, other.browser_origins

    def find_presented(self, request: Request) -> IngestKey | None:
        """The request's key: from the Authorization header, or a browser key from `?key=`.
        Server keys are secret, and URLs end up in proxies' and servers' logs."""
        header = presented_key(request)
        if header is not None:
            return self.find(header)
        key = self.find(request.query_params.get("key"))
        return key if key is not None and key.is_browser else None

    def find(self, presented: str | None) -> IngestKey | None:
        if not presented:
            return None
        match = None
        for key in self.keys:
            if hmac.compare_digest(key.secret.encode(), presented.encode()):
                match = key
        return match


def presented_key(request: Request) -> str | None:
    """`Authorization: Bearer <key>`; browsers using sendBeacon may pass `?key=` instead
    (see `KeyRing.find_presented`: only a browser key is taken from the URL)."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


class PerClientLimiter:
    """A token bucket per (key, client): `per_minute` requests at once, refilled evenly.

    A fixed one-minute window would let a client send twice the limit across a minute's edge.
    An IPv6 client is limited per /64 (one subscriber's prefix: it can pick any address in
    it). Buckets are kept least recently used first, at most MAX_CLIENTS of them, so each
    request costs O(1) however many addresses a flood comes from; an evicted bucket was the
    least recently used, and would have refilled."""

    MAX_CLIENTS = 100_000

    def __init__(self) -> None:
        self._buckets: OrderedDict[tuple[str, str], tuple[float, float]] = OrderedDict()

    def wait(self, key: str, client: str, per_minute: int) -> float:
        """Take one request's token: 0.0 when allowed, else the seconds until one is free."""
        now = time.monotonic()
        rate = per_minute / 60.0
        slot = (key, client_network(client))
        tokens, when = self._buckets.pop(slot, (float(per_minute), now))
        tokens = min(float(per_minute), tokens + (now - when) * rate)
        if len(self._buckets) >= self.MAX_CLIENTS:
            self._buckets.popitem(last=False)
        if tokens < 1.0:
            self._buckets[slot] = (tokens, now)
            return (1.0 - tokens) / rate
        self._buckets[slot] = (tokens - 1.0, now)
        return 0.0


@lru_cache(maxsize=4096)
def client_network(client: str) -> str:
    """What one client is, for rate limits: its IPv4 address, or its IPv6 /64."""
    if ":" not in client:
        return client
    try:
        return str(ipaddress.IPv6Network(f"{client}/64", strict=False).network_address)
    except ValueError:
        return client


def parse_networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    try:
        return tuple(ipaddress.ip_network(v, strict=False) for v in values)
    except ValueError as exc:
        raise ConfigError(f"server.trusted_proxies: {exc}") from None


def client_ip(request: Request, trusted: tuple[IPNetwork, ...]) -> str | None:
    """The client's address; X-Forwarded-For is believed only from trusted proxies."""
    peer = request.client.host if request.client else None
    if not peer or not _in(peer, trusted):
        return peer
    hops = [h.strip() for h in request.headers.get("x-forwarded-for", "").split(",") if h.strip()]
    for hop in reversed(hops):  # the right-most address that is not one of our proxies
        if not _in(hop, trusted):
            return hop
    return peer


def is_trusted(address: str, networks: tuple[IPNetwork, ...]) -> bool:
    """Whether an address is one of our trusted proxies (whose forwarded headers count)."""
    return _in(address, networks)


def _in(address: str, networks: tuple[IPNetwork, ...]) -> bool:
    return bool(networks) and _in_networks(address, networks)


@lru_cache(maxsize=4096)  # runs for every request; the peers are a handful of proxies
def _in_networks(address: str, networks: tuple[IPNetwork, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)
