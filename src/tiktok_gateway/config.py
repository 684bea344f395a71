"""Settings: one object from `gateway.toml`, validated at start with errors that name the line.

Secrets (`access_token`, key `secret`, admin `password`) are written as `env:NAME`,
`file:PATH` or a literal, resolved once at load, and held as `SecretStr` so that no repr,
log line or page ever shows them.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from .exceptions import ConfigError
from .outbox import SCHEMES, StoreOptions
from .tiktok import schema

# The pixel id `serve --init` writes: well-formed, and nobody's. Going live needs one's own.
EXAMPLE_PIXEL_ID = "C0EXAMPLE0PIXEL00001"


def resolve_secret(reference: str) -> SecretStr | None:
    """`env:NAME` / `file:PATH` / literal to a secret; None when the env var or file is absent."""
    if reference.startswith("env:"):
        value = os.environ.get(reference[4:])
        return SecretStr(value) if value else None
    if reference.startswith("file:"):
        path = Path(reference[5:]).expanduser()
        if not path.is_file():
            return None
        return SecretStr(path.read_text().strip()) or None
    return SecretStr(reference) if reference else None


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StorageSettings(_Section):
    url: str = "sqlite:///./data/gateway.db"
    max_pending: int = Field(default=1_000_000, ge=1)
    # Browser keys are public: past this share of max_pending they get 429, so that the shop's
    # own server keys and webhooks can still be stored.
    browser_max_pending_share: float = Field(default=0.5, gt=0, le=1)
    retention_days: float = Field(default=7, gt=0)
    synchronous: Literal["FULL", "NORMAL"] = "FULL"
    auto_migrate: bool = True
    pool_size: int = Field(default=10, ge=1)

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if not value.startswith(SCHEMES):
            raise ValueError("must start with sqlite:///, postgresql:// or memory://")
        return value

    def options(self, delivery: DeliverySettings) -> StoreOptions:
        return StoreOptions(dedup_window=delivery.dedup_window_hours * 3600,
                            order_window=delivery.order_dedup_days * 86400,
                            retention=self.retention_days * 86400, synchronous=self.synchronous,
                            auto_migrate=self.auto_migrate, pool_size=self.pool_size,
                            max_delay=delivery.longest_wait + 60)


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    trusted_proxies: list[str] = Field(default_factory=list)
    json_logs: bool = False
    # /metrics shows destination names and per-event volumes: set a token (env:/file:/literal)
    # and Prometheus sends it as `authorization: credentials` (bearer).
    metrics_token: str = ""
    # Connections served at once (past it: 503), and how long an idle keep-alive stays open.
    limit_concurrency: int = Field(default=1000, ge=10)
    keep_alive_seconds: int = Field(default=5, ge=1, le=300)
    # A request's line and headers must arrive within this (slowloris), its body within
    # body_timeout_seconds: slow clients cannot hold connections for ever.
    header_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    body_timeout_seconds: float = Field(default=30.0, gt=0, le=600)


class TikTokSettings(_Section):
    base_url: str = schema.DEFAULT_BASE_URL
    timeout: float = Field(default=10.0, gt=0)
    rate_limit_qps: float = Field(default=1000.0, gt=0)
    partner_name: str = "tiktok-gateway"
    max_request_bytes: int = Field(default=schema.MAX_REQUEST_BYTES, ge=10_000)


class DeliverySettings(_Section):
    batch_size: int = Field(default=1000, ge=1, le=schema.MAX_EVENTS_PER_REQUEST)
    linger_ms: int = Field(default=200, ge=0)
    workers: int = Field(default=2, ge=1)
    lease_seconds: float = Field(default=60, gt=0)
    retry_base_seconds: float = Field(default=1.0, gt=0)
    retry_max_seconds: float = Field(default=300.0, gt=0)
    rate_limit_pause_seconds: float = Field(default=1.0, gt=0)
    max_retry_after_seconds: float = Field(default=300.0, gt=0, le=3600)
    max_event_age_days: float = Field(default=7, gt=0)
    dedup_window_hours: float = Field(default=48, ge=0)
    # One order's event is sent once for this long, however late the next copy (0: only
    # the 48-hour dedup window).
    order_dedup_days: float = Field(default=90, ge=0)
    # A purchase waits this long before delivery, so the webhook's or backend's copy can be
    # merged into the browser's (or the other way round).
    merge_window_seconds: float = Field(default=3.0, ge=0, le=300)
    # A purchase from a browser key (public: anyone can send one for any order id) waits this
    # long, so that the shop's signed webhook or server copy can replace its values. Under
    # TikTok's 5-minute window for merging the pixel's copy with ours.
    browser_purchase_wait_seconds: float = Field(default=60.0, ge=0, le=280)

    @property
    def longest_wait(self) -> float:
        """The longest the gateway makes an event wait before its next attempt."""
        return max(self.retry_max_seconds, self.max_retry_after_seconds, self.lease_seconds,
                   self.merge_window_seconds, self.browser_purchase_wait_seconds)


class ObserveSettings(_Section):
    inspect_sample_rate: float = Field(default=0.1, ge=0, le=1)
    flush_seconds: float = Field(default=2.0, gt=0)


class AlertWebhookSettings(_Section):
    """Where alert messages go: a Slack-compatible incoming webhook, or any URL taking JSON."""

    # A secret (Slack's URL is one): env:NAME, file:PATH or a literal.
    url: str = Field(min_length=1)
    format: Literal["json", "slack"] = "json"
    # Signs each JSON body (X-TikTok-Gateway-Signature, HMAC-SHA256): env:NAME, file:PATH.
    secret: str = ""


class AlertSettings(_Section):
    """Rules the gateway evaluates itself; every threshold is for a small shop by default."""

    enabled: bool = True
    evaluate_seconds: float = Field(default=30, gt=0)
    # The share of events in requests TikTok accepted, over a window, with enough of them.
    delivery_rate_below: float = Field(default=0.9, ge=0, le=1)
    delivery_window_minutes: float = Field(default=15, gt=0)
    delivery_min_events: int = Field(default=5, ge=1)
    # Any 40001 (token invalid or expired) or 40105 (no permission) fires at once.
    auth_errors: bool = True
    # No event for this long, when the same hour of the last week had at least
    # `silent_usual_events` in as long on average. 0 turns the rule off.
    silent_minutes: float = Field(default=60, ge=0)
    silent_usual_events: float = Field(default=3, gt=0)
    # A destination's test_event_code still on with traffic for longer than this. 0: off.
    test_code_hours: float = Field(default=4, ge=0)
    dead_letters_above: int = Field(default=10, ge=0)
    oldest_pending_minutes: float = Field(default=30, gt=0)
    # A fall against the previous week: of the pairing rate (0.2 is 20 points) and of the
    # match-quality estimate (points out of 10), with at least `weekly_min_events` each week.
    pairing_drop: float = Field(default=0.2, gt=0, le=1)
    match_quality_drop: float = Field(default=1.5, gt=0, le=10)
    weekly_min_events: int = Field(default=50, ge=1)
    webhooks: list[AlertWebhookSettings] = Field(default_factory=list)
    # The first wait before a webhook that failed gets a message again (then doubling, to 5 min).
    webhook_retry_seconds: float = Field(default=5, gt=0)


class WebhookSettings(_Section):
    # A secret reference, or a list of them while one is rotated (the new one and the old).
    shopify_secret: str | list[str] = ""
    # orders/create for orders paid at checkout, orders/paid for those paid later (bank
    # transfer, cash on delivery): one order is sent once, as a purchase when it is paid.
    shopify_topics: list[str] = Field(default_factory=lambda: ["orders/create", "orders/paid"])
    woocommerce_secret: str | list[str] = ""
    woocommerce_statuses: list[str] = Field(default_factory=lambda: ["processing", "completed"])
    # Count orders without a payment date (cash on delivery, cheque) at order time.
    woocommerce_count_unpaid: bool = False


class AdminSettings(_Section):
    username: str = "admin"
    password: str = ""
    # A password shorter than MIN_ADMIN_PASSWORD characters stops start-up unless this is set.
    allow_weak_password: bool = False


class KeySettings(_Section):
    name: str
    secret: str
    kind: Literal["server", "browser"] = "server"
    allowed_origins: list[str] = Field(default_factory=list)
    rate_limit_per_minute: int = Field(default=600, ge=1)
    # A browser key may send only standard event names and those configured in event_names.
    allow_custom_events: bool = False
    # A server key's requests come from a backend: its IP and user agent are not the shopper's.
    # Only for a backend that forwards the browser's own request (and its headers).
    fill_client_context: bool = False


class FilterSettings(_Section):
    consent_category: str = "marketing"
    require_consent: bool = False
    allow_events: list[str] = Field(default_factory=list)
    block_events: list[str] = Field(default_factory=list)
    session_field: str = "user.external_id"
    session_values: list[str] = Field(default_factory=list)


class DestinationSettings(_Section):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    pixel_id: str = Field(min_length=1)
    access_token: str = "env:TIKTOK_ACCESS_TOKEN"
    test_event_code: str = ""
    event_source: Literal["web", "app", "offline", "crm"] = "web"
    purchase_event: Literal["CompletePayment", "Purchase"] = "CompletePayment"
    lead_event: Literal["Lead", "SubmitForm"] = "Lead"
    event_names: dict[str, str] = Field(default_factory=dict)
    property_map: dict[str, str] = Field(default_factory=dict)
    phone_region: str | None = Field(default=None, pattern=r"^[A-Za-z]{2}$")
    lowercase_external_id: bool = False
    fill_client_context: bool = True
    filters: FilterSettings = Field(default_factory=FilterSettings)


class Settings(_Section):
    """The whole configuration of one gateway process."""

    storage: StorageSettings = Field(default_factory=StorageSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    tiktok: TikTokSettings = Field(default_factory=TikTokSettings)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    admin: AdminSettings = Field(default_factory=AdminSettings)
    observe: ObserveSettings = Field(default_factory=ObserveSettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    keys: list[KeySettings] = Field(default_factory=list)
    destinations: list[DestinationSettings] = Field(default_factory=list)

    @field_validator("destinations")
    @classmethod
    def _unique_names(cls, value: list[DestinationSettings]) -> list[DestinationSettings]:
        names = [d.name for d in value]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"destination names must be unique: {', '.join(duplicates)}")
        return value


def load_settings(path: str | Path) -> Settings:
    """Read and validate a config file; raise ConfigError naming the file, line and field."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return settings_from_dict(data, source=str(path), text=text)


def settings_from_dict(data: dict[str, Any], *, source: str = "config", text: str = "") -> Settings:
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        lines = []
        for error in exc.errors(include_url=False, include_input=False):
            loc = [str(p) for p in error["loc"]]
            where = f"{source}:{locate_line(text, loc)}" if text else source
            message = error["msg"].removeprefix("Value error, ")
            lines.append(f"{where}: {'.'.join(loc)}: {message}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from None


def locate_line(text: str, loc: list[str]) -> int:
    """The line of a TOML file where the value at `loc` (e.g. destinations.1.pixel_id) sits."""
    table, index, key = _split_loc(loc)
    header = re.compile(rf"^\s*\[\[?\s*{re.escape(table)}\s*\]\]?\s*$") if table else None
    seen, in_table, best = -1, header is None, 1
    for number, line in enumerate(text.splitlines(), start=1):
        if header and header.match(line):
            seen += 1
            in_table = index is None or seen == index
            best = number if in_table else best
            continue
        if line.lstrip().startswith("[") and header:
            in_table = in_table and line.strip().startswith(f"[{table}.")
        if in_table and key and re.match(rf"^\s*{re.escape(key)}\s*=", line):
            return number
    return best


def _split_loc(loc: list[str]) -> tuple[str, int | None, str | None]:
    if not loc:
        return "", None, None
    table, rest = loc[0], loc[1:]
    index = int(rest.pop(0)) if rest and rest[0].isdigit() else None
    return table, index, (rest[-1] if rest else None)
