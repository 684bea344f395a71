"""The `tiktok-gateway` command: a surface like `web/`, over the same core.

Each command parses its arguments and calls the core (or a helper module of this package:
`transform`, `output`, `send`, `doctor`, `defaults`, `logs`); none holds logic of its own.
"""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.markup import escape

from .. import __version__
from ..config_file import CONFIG_ENV, DEFAULT_CONFIG_PATH, config_path
from ..exceptions import ConfigError, GatewayError, InvalidEvent
from ..pipeline import TransformOptions, route_for
from ..tiktok import legacy
from .transform import NotJSON, write_transform

if TYPE_CHECKING:  # the settings layer loads when a command reads a config file
    from ..config import Settings

app = typer.Typer(
    help="Server-side tracking gateway for the TikTok Events API.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help=f"Config file (default: ${CONFIG_ENV} or ./{DEFAULT_CONFIG_PATH})."),
]


def fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    return typer.Exit(code)


def read_json(source: Path | None) -> Any:
    """JSON from a file, or from stdin when no file is given; exit 2 with a clear message."""
    try:
        text = source.read_text() if source else sys.stdin.read()
    except OSError as exc:
        raise fail(f"cannot read {source}: {exc.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        where = source or "stdin"
        raise fail(f"{where} is not valid JSON: {exc.msg} at line {exc.lineno}, "
                   f"column {exc.colno}") from None


def load_config(path: Path | None, *, required: bool = True) -> Settings | None:
    chosen = config_path(path)
    if path is None and not chosen.exists() and not required:
        return None
    from ..config import load_settings

    try:
        return load_settings(chosen)
    except ConfigError as exc:
        raise fail(str(exc)) from None


@app.command()
def transform(
    pixel: Annotated[str | None, typer.Option("--pixel", help="Pixel code (event_source_id).")] = None,
    test_event_code: Annotated[str | None, typer.Option("--test-event-code")] = None,
    region: Annotated[str | None, typer.Option("--region", help="Default phone region, e.g. US.")] = None,
    config: ConfigOption = None,
    pretty: Annotated[bool, typer.Option(
        "--pretty", help="Indent the JSON (the default on a terminal).")] = False,
) -> None:
    """Turn inbound events (stdin: one, a list, {"events": [...]}, or JSON Lines) into 2.0
    request bodies."""
    settings = load_config(config, required=config is not None)
    options, pixel_id = TransformOptions(), "PIXEL_CODE"
    event_source, partner_name = "web", "tiktok-gateway"
    if settings and settings.destinations:
        dest = settings.destinations[0]
        options, pixel_id = route_for(dest, settings.delivery).options, dest.pixel_id
        test_event_code = test_event_code or dest.test_event_code or None
        event_source, partner_name = dest.event_source, settings.tiktok.partner_name
    if region:
        options = TransformOptions(**{**options.__dict__, "phone_region": region})
    request: dict[str, Any] = {"pixel_id": pixel or pixel_id, "test_event_code": test_event_code,
                               "partner_name": partner_name, "event_source": event_source}
    try:
        if pretty or sys.stdout.isatty():  # for a person: the same result, indented
            compact = io.BytesIO()
            rejected = write_transform(sys.stdin.buffer, compact, options, **request)
            sys.stdout.buffer.write(orjson.dumps(orjson.loads(compact.getvalue()),
                                                 option=orjson.OPT_INDENT_2) + b"\n")
        else:
            rejected = write_transform(sys.stdin.buffer, sys.stdout.buffer, options, **request)
    except InvalidEvent as exc:
        raise fail(str(exc)) from None
    except NotJSON as exc:
        raise fail(f"stdin is not valid JSON: {exc}") from None
    sys.stdout.flush()
    raise typer.Exit(2 if rejected else 0)


@app.command()
def check(
    file: Annotated[Path | None, typer.Argument(help="Request body (default: stdin).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the verdict as JSON.")] = False,
) -> None:
    """Lint an Events API 2.0 request body (or a legacy pixel/track or pixel/batch body)."""
    report = legacy.lint_body(read_json(file))
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        from .output import print_lint_report

        print_lint_report(report, Console())
    raise typer.Exit(0 if report.ok else 1)


def parse_tokens(pairs: list[str]) -> dict[str, set[str]]:
    tokens: dict[str, set[str]] = {}
    for pair in pairs:
        pixel, sep, token = pair.partition("=")
        if not sep or not pixel or not token:
            raise fail(f"--token takes PIXEL=TOKEN, got {pair.split('=')[0]!r}=...")
        tokens.setdefault(pixel, set()).add(token)
    return tokens


def tokens_from_config(settings: Settings) -> dict[str, set[str]]:
    """The sandbox accepts the tokens a gateway config would send, for each pixel."""
    from ..config import resolve_secret

    tokens: dict[str, set[str]] = {}
    for dest in settings.destinations:
        secret = resolve_secret(dest.access_token)
        if secret:
            tokens.setdefault(dest.pixel_id, set()).add(secret.get_secret_value())
    return tokens


@app.command()
def sandbox(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free port).")] = 9400,
    token: Annotated[list[str] | None, typer.Option(
        "--token", help="PIXEL=TOKEN that may send to PIXEL; repeatable. None: any token.")] = None,
    strict: Annotated[bool, typer.Option(help="Answer 40002 for what TikTok drops.")] = False,
    latency_ms: Annotated[int, typer.Option(help="Added latency per request.")] = 0,
    error_rate: Annotated[float, typer.Option(help="Share of requests answered 5xx.")] = 0.0,
    rate_limit: Annotated[float, typer.Option(help="Answer 40100 above this QPS (0: none).")] = 0,
    config: Annotated[Path | None, typer.Option(
        "--config", help="Accept the access tokens of this gateway config's destinations.")] = None,
) -> None:
    """Run a local TikTok Events API with a Test Events page and fault injection."""

    from ..sandbox import Faults, create_sandbox
    from ..web.server import run, serve

    tokens = parse_tokens(token or [])
    if config:
        settings = load_config(config)
        assert settings is not None
        for pixel, values in tokens_from_config(settings).items():
            tokens.setdefault(pixel, set()).update(values)
    faults = Faults(latency_ms=latency_ms, error_rate=error_rate, rate_limit_qps=rate_limit)
    app_ = create_sandbox(tokens, strict=strict, faults=faults)

    def announce(url: str) -> None:
        mode = f"{len(tokens)} pixel(s) with tokens" if tokens else "any access token accepted"
        typer.echo(f"TikTok sandbox listening on {url} ({mode}{', strict' if strict else ''})")
        typer.echo(f"  Events API:  POST {url}/open_api/v1.3/event/track/")
        typer.echo(f"  Test Events: {url}/")
        sys.stdout.flush()

    run(serve(app_, host, port, announce))


def apply_server_flags(settings: Settings, host: str | None, port: int | None) -> Settings:
    server = settings.server.model_copy(update={k: v for k, v in
                                                (("host", host), ("port", port)) if v is not None})
    return settings.model_copy(update={"server": server})


@app.command()
def serve(
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on (default: config).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (default: config).")] = None,
    init: Annotated[bool, typer.Option(
        "--init", help="Write a default config (and secrets under ./data) if none exists.")] = False,
    demo: Annotated[bool, typer.Option(
        "--demo", help="Deliver to the built-in sandbox, whatever tokens are configured.")] = False,
    workers: Annotated[int, typer.Option(
        "--workers", min=1, max=64,
        help="Gateway processes sharing the port, each a whole gateway with its own "
             "delivery.workers (PostgreSQL only: one process owns a SQLite file).")] = 1,
    socket_fd: Annotated[int | None, typer.Option("--socket-fd", hidden=True)] = None,
    quiet: Annotated[bool, typer.Option("--quiet", hidden=True)] = False,
) -> None:
    """Run the gateway: ingest API, delivery workers, health and metrics."""

    import socket

    from ..web.app import create_app
    from ..web.server import run
    from ..web.server import serve as serve_app
    from .logs import configure_logging

    path = config_path(config)
    if init and not path.exists():
        from .defaults import write_default_config

        write_default_config(path, Path("data"))
        typer.echo(f"Wrote a default config to {path} (secrets in ./data)")
    settings = load_config(path)
    assert settings is not None
    settings = apply_server_flags(settings, host, port)
    if workers > 1:
        raise typer.Exit(serve_in_processes(settings, path, workers, demo=demo))
    configure_logging(json_logs=settings.server.json_logs)
    try:
        application = create_app(settings, demo=demo)
    except GatewayError as exc:  # a config error, or a store that cannot be opened
        raise fail(str(exc)) from None
    gateway = application.state.gateway

    def announce(url: str) -> None:
        from .output import startup_banner

        if not quiet:
            typer.echo(startup_banner(url, settings, demo=gateway.demo))
            sys.stdout.flush()

    def reload_config() -> None:
        """SIGHUP: keys, tokens, webhook secrets and the admin login from the file again."""
        import logging

        from ..config import load_settings

        log = logging.getLogger("tiktok_gateway")
        try:
            new = apply_server_flags(load_settings(path), host, port)
            log.info("%s", application.state.reload(new).text())
        except GatewayError as exc:
            log.error("reload refused, the running config is unchanged: %s", exc.message)

    run(serve_app(application, settings.server.host, settings.server.port, announce,
                  limit_concurrency=settings.server.limit_concurrency,
                  keep_alive=settings.server.keep_alive_seconds,
                  header_timeout=settings.server.header_timeout_seconds,
                  on_reload=reload_config,
                  sock=socket.socket(fileno=socket_fd) if socket_fd is not None else None))


def serve_in_processes(settings: Settings, path: Path, workers: int, *, demo: bool) -> int:
    """`serve --workers N`: bind the port once, then run N `serve` processes on it."""
    from ..outbox import shared_by_processes
    from .processes import Supervisor, listening_socket

    if not shared_by_processes(settings.storage.url):
        raise fail(f"--workers {workers} needs a PostgreSQL store: one process owns a SQLite "
                   f"file (storage.url is {settings.storage.url.split('://')[0]}://…). Run one "
                   "process, or move the store to PostgreSQL (docs/scaling.md)")
    host, port = settings.server.host, settings.server.port
    try:
        sock = listening_socket(host, port)
    except OSError as exc:
        raise fail(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    bound = sock.getsockname()[1]
    command = [sys.executable, "-m", "tiktok_gateway", "serve", "--config", str(path),
               "--host", host, "--port", str(bound), *(["--demo"] if demo else [])]
    return Supervisor(command, sock, workers).run()


@app.command()
def replay(
    config: ConfigOption = None,
    destination: Annotated[str | None, typer.Option(help="Only this destination.")] = None,
    since: Annotated[str | None, typer.Option(
        help="Only dead letters from this time on: ISO 8601, or an age such as 24h or 7d.")] = None,
) -> None:
    """Queue dead-lettered events again, after fixing what TikTok rejected."""
    import asyncio
    import time

    from ..gateway import MAX_REPLAY
    from ..outbox import DEAD, RecordQuery, StoreOptions, open_store
    from ..retry import RetryPolicy
    from ..timeparse import parse_since

    settings = load_config(config)
    assert settings is not None
    try:
        since_ts = parse_since(since) if since else None
    except ValueError as exc:
        raise fail(str(exc)) from None
    names = [d.name for d in settings.destinations]
    if destination is not None and destination not in names:
        raise fail(f"no destination {destination!r} in the config (there are: "
                   f"{', '.join(names) or 'none'})")

    # Ingest's age rule holds: an event TikTok would refuse as too old (within the hour) stays.
    policy = RetryPolicy(max_event_age=settings.delivery.max_event_age_days * 86400)

    async def run() -> tuple[int, int]:
        store = open_store(settings.storage.url, StoreOptions(owner=False))
        try:
            dead = await store.records.find(RecordQuery(state=DEAD, destination=destination,
                                                        limit=MAX_REPLAY))
            chosen = [r for r in dead if since_ts is None or (r.finished_at or 0) >= since_ts]
            young = [r.id for r in chosen if policy.replayable(r.event_time, time.time())]
            count = await store.outbox.replay(ids=young) if young else 0
            return count, len(chosen) - len(young)
        finally:
            await store.close()

    count, too_old = asyncio.run(run())
    typer.echo(f"Queued {count} dead-lettered event(s) for delivery again.")
    if too_old:
        typer.echo(f"{too_old} not replayed: older than TikTok accepts "
                   "(delivery.max_event_age_days).")


@app.command()
def send(
    event: Annotated[str, typer.Option(help="Event name, e.g. purchase.")] = "purchase",
    value: Annotated[float | None, typer.Option(help="Order value.")] = None,
    currency: Annotated[str | None, typer.Option(help="ISO 4217 code.")] = None,
    email: Annotated[str | None, typer.Option(help="Customer email (hashed by the gateway).")] = None,
    phone: Annotated[str | None, typer.Option(help="Customer phone (hashed by the gateway).")] = None,
    order_id: Annotated[str | None, typer.Option(help="Order id (gives a deterministic event_id).")] = None,
    test_event_code: Annotated[str | None, typer.Option(help="Send as a test event.")] = None,
    url: Annotated[str | None, typer.Option(help="Gateway URL (default: from the config).")] = None,
    key: Annotated[str | None, typer.Option(
        help="Server ingest key (default: the config's first server key).")] = None,
    wait: Annotated[float, typer.Option(help="Seconds to wait for TikTok's answer.")] = 15,
    config: ConfigOption = None,
) -> None:
    """Post one event through a running gateway and print what TikTok answered."""
    from .send import SendOptions, run_send

    settings = load_config(config, required=url is None or key is None)
    options = SendOptions(event=event, value=value, currency=currency, email=email, phone=phone,
                          order_id=order_id, test_event_code=test_event_code, wait=wait)
    try:
        ok = run_send(options, settings, url=url, key=key, echo=typer.echo)
    except ConfigError as exc:
        raise fail(str(exc)) from None
    raise typer.Exit(0 if ok else 1)


@app.command()
def report(
    config: ConfigOption = None,
    since: Annotated[str, typer.Option(help="Window: an age (24h, 7d) or an ISO 8601 time.")] = "7d",
    orders: Annotated[Path | None, typer.Option(
        help="CSV of true orders (order_id column): report those not delivered to TikTok.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the gap report as JSON.")] = False,
) -> None:
    """Tag health and data quality in the terminal; with --orders, the gap report."""
    import asyncio

    from ..figures import collect
    from ..gaps import gap_report
    from ..outbox import StoreOptions, open_store
    from ..timeparse import parse_since
    from .output import print_report, read_orders

    settings = load_config(config)
    assert settings is not None
    try:
        since_ts = parse_since(since)
        order_ids = read_orders(orders) if orders else None
    except (ValueError, ConfigError) as exc:
        raise fail(str(exc)) from None

    async def run() -> tuple[Any, Any]:
        store = open_store(settings.storage.url, StoreOptions(owner=False))
        try:
            figures = await collect(store.records, store.telemetry,
                                    [d.name for d in settings.destinations], since_ts)
            gap = (await gap_report(store.records, order_ids, store.telemetry)
                   if order_ids is not None else None)
            return figures, gap
        finally:
            await store.close()

    figures, gap = asyncio.run(run())
    if as_json:
        typer.echo(json.dumps(gap.as_dict() if gap else {}, indent=2))
    else:
        print_report(figures, gap, Console(width=160))


@app.command()
def erase(
    email: Annotated[list[str] | None, typer.Option(help="The customer's email; repeatable.")] = None,
    phone: Annotated[list[str] | None, typer.Option(help="The customer's phone; repeatable.")] = None,
    external_id: Annotated[list[str] | None, typer.Option(
        "--external-id", help="The customer's id in your shop; repeatable.")] = None,
    config: ConfigOption = None,
) -> None:
    """Delete every record of one customer from the store (an erasure request)."""
    import asyncio

    from ..outbox import StoreOptions, open_store
    from .erasure import customer_hashes

    settings = load_config(config)
    assert settings is not None
    hashes = customer_hashes(settings, email or [], phone or [], external_id or [])
    if not hashes:
        raise fail("give at least one valid --email, --phone or --external-id")

    async def run() -> int:
        store = open_store(settings.storage.url, StoreOptions(owner=False))
        try:
            return await store.outbox.erase(sorted(hashes))
        finally:
            await store.close()

    try:
        count = asyncio.run(run())
    except GatewayError as exc:
        raise fail(str(exc)) from None
    typer.echo(f"Erased {count} record(s) of this customer ({len(hashes)} hash(es) looked for).")


@app.command()
def migrate(config: ConfigOption = None) -> None:
    """Create or upgrade the PostgreSQL schema (SQLite needs no migration)."""
    import asyncio

    from ..outbox import migrate as run_migrations

    settings = load_config(config)
    assert settings is not None
    try:
        versions = asyncio.run(run_migrations(settings.storage.url))
    except GatewayError as exc:
        raise fail(str(exc)) from None
    if versions is None:
        typer.echo("SQLite and memory stores create their schema themselves; nothing to do.")
        return
    before, after = versions
    typer.echo(f"schema at version {after}" + ("" if before == after else f" (was {before})"))


@app.command()
def golive(
    test_event_code: Annotated[str, typer.Option(
        "--test-event-code", help="The code from Events Manager's Test Events tab.")],
    config: ConfigOption = None,
    clear_demo: Annotated[bool, typer.Option(
        "--clear-demo", help="Delete the demo store without asking.")] = False,
) -> None:
    """Go from demo mode to TikTok: check each token with a test event, then clear demo data."""
    from .golive import check_destination, demo_files
    from .output import print_findings

    settings = load_config(config)
    assert settings is not None
    findings = [f for dest in settings.destinations
                for f in check_destination(settings, dest, test_event_code)]
    print_findings(findings, Console())
    if any(level == "error" for level, _ in findings):
        raise typer.Exit(1)
    files = demo_files(settings)
    if files and (clear_demo or typer.confirm(
            f"delete the demo store ({files[0]}): events sent to the built-in sandbox?")):
        for file in files:
            file.unlink()
        typer.echo(f"deleted the demo store {files[0]}")
    typer.echo("ready: start (or restart) `tiktok-gateway serve`; events now go to TikTok. "
               "Remove test_event_code once the test events look right.")


@app.command()
def reload(
    config: ConfigOption = None,
    pid: Annotated[int | None, typer.Option(help="The gateway's process id (PostgreSQL stores; "
                                                  "with SQLite it is found from the store).")] = None,
) -> None:
    """Check the config file, then have the running gateway take its keys, tokens, webhook
    secrets and admin login again (SIGHUP), without a restart."""
    import signal

    from ..outbox.sqlite import owner_pid
    from ..outbox.sqlite_backup import store_path

    path = config_path(config)
    settings = load_config(path)  # a broken file is refused here, not by the gateway
    assert settings is not None
    if pid is None:
        try:
            pid = owner_pid(str(store_path(settings.storage.url)))
        except ConfigError:
            raise fail("this store is not a SQLite file: give the gateway's --pid (or "
                       "systemctl reload tiktok-gateway)") from None
        if pid is None:
            raise fail(f"no gateway is serving {settings.storage.url}")
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        raise fail(f"no process {pid}") from None
    typer.echo(f"asked the gateway (process {pid}) to reload {path}; its log says what it "
               "took, or why it refused (then the running config stays as it was)")


@app.command()
def backup(
    target: Annotated[Path, typer.Argument(help="The backup file to write (must not exist).")],
    config: ConfigOption = None,
) -> None:
    """Copy the SQLite store to a file, consistently, while the gateway runs."""
    from ..outbox.sqlite_backup import backup as backup_store

    settings = load_config(config)
    assert settings is not None
    try:
        snapshot = backup_store(settings.storage.url, target)
    except GatewayError as exc:
        raise fail(exc.message) from None
    typer.echo(f"backed up to {snapshot.path} ({snapshot.bytes:,} bytes): {snapshot.pending} "
               f"waiting, {snapshot.dead} dead-lettered, {snapshot.kept} events in all")


@app.command()
def restore(
    source: Annotated[Path, typer.Argument(help="A file written by `tiktok-gateway backup`.")],
    config: ConfigOption = None,
    yes: Annotated[bool, typer.Option("--yes", help="Replace the store without asking.")] = False,
) -> None:
    """Replace the SQLite store with a backup (stop `serve` first)."""
    from ..outbox.sqlite_backup import describe, store_path
    from ..outbox.sqlite_backup import restore as restore_store

    settings = load_config(config)
    assert settings is not None
    try:
        snapshot = describe(source)
        target = store_path(settings.storage.url)
        if not yes and target.exists() and not typer.confirm(
                f"replace {target} with {source} ({snapshot.pending} waiting, {snapshot.dead} "
                "dead-lettered)?"):
            raise typer.Exit(1)
        restore_store(settings.storage.url, source)
    except GatewayError as exc:
        raise fail(exc.message) from None
    typer.echo(f"restored {target} from {source}: {snapshot.pending} waiting events will be "
               "delivered when the gateway starts")


@app.command()
def doctor(
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Findings and checklist as JSON.")] = False,
) -> None:
    """Check a config (tokens, pixel ids, TikTok, test codes) and print the set-up checklist."""
    from ..checklist import as_json as checklist_json
    from .doctor import run_checks, setup_checklist
    from .output import print_checklist, print_findings

    path = config_path(config)
    settings = load_config(path)
    assert settings is not None
    findings = run_checks(settings)
    steps, unreadable = setup_checklist(settings)
    failed = any(level == "error" for level, _ in findings)
    if as_json:
        typer.echo(json.dumps({"findings": [{"level": lv, "message": m} for lv, m in findings],
                               "store": unreadable or "read", **checklist_json(steps)}, indent=2))
        raise typer.Exit(1 if failed else 0)
    console = Console()
    print_findings(findings, console)
    print_checklist(steps, unreadable, console)
    raise typer.Exit(1 if failed else 0)


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


def main() -> None:
    app()
