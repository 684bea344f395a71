"""Admin access for the dashboard: HTTP Basic credentials, and CSRF tokens on actions.

Wrong credentials are logged and slow down: after FREE_ATTEMPTS failures from one client,
each further attempt waits twice as long as the last (up to MAX_LOCKOUT seconds) and is
refused with 429 meanwhile, so a password cannot be guessed at hundreds a second.

Browsers resend Basic credentials on their own, so every state-changing form carries a
token of the browser's session (a random nonce, signed with a key derived from the admin
password, so that every process sharing a config accepts it), set as a cookie and repeated
in the form; a form is refused without both, from another origin, or once the token is
older than CSRF_LIFETIME.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import secrets
import time

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ..config import AdminSettings, resolve_secret
from ..exceptions import ConfigError

REALM = 'Basic realm="tiktok-gateway dashboard", charset="UTF-8"'
MIN_ADMIN_PASSWORD = 12
FREE_ATTEMPTS = 5
MAX_LOCKOUT = 300.0
MAX_CLIENTS = 10_000  # failure records kept at once; older ones are forgotten first
CSRF_COOKIE = "tiktok_gateway_csrf"
CSRF_LIFETIME = 12 * 3600.0
logger = logging.getLogger("tiktok_gateway.admin")


class AdminAuth:
    def __init__(self, settings: AdminSettings) -> None:
        self.username = settings.username
        secret = resolve_secret(settings.password) if settings.password else None
        self._password = secret.get_secret_value() if secret else None
        if (self._password is not None and len(self._password) < MIN_ADMIN_PASSWORD
                and not settings.allow_weak_password):
            raise ConfigError(f"[admin] password is shorter than {MIN_ADMIN_PASSWORD} characters: "
                              "choose a longer one (or set allow_weak_password = true)")
        self._failures: dict[str, tuple[int, float]] = {}  # client -> (failures, last failure)

    def replace(self, other: AdminAuth) -> None:
        """Take another login (a reload). A new password also ends every session's CSRF
        token, which is signed with a key derived from it."""
        self.username, self._password = other.username, other._password

    def wait(self, client: str) -> float:
        """Seconds before `client` may try again (0: now)."""
        failures, last = self._failures.get(client, (0, 0.0))
        if failures < FREE_ATTEMPTS:
            return 0.0
        lockout = min(MAX_LOCKOUT, 2.0 ** (failures - FREE_ATTEMPTS))
        return max(0.0, last + lockout - time.monotonic())

    def attempt(self, request: Request, client: str) -> bool:
        """Check the request's credentials, counting a wrong attempt against `client`."""
        ok = self.check(request)
        if ok:
            self._failures.pop(client, None)
        elif "authorization" in request.headers:  # a browser's first, bare request is no guess
            if len(self._failures) >= MAX_CLIENTS:
                oldest = min(self._failures, key=lambda c: self._failures[c][1])
                del self._failures[oldest]
            failures = self._failures.get(client, (0, 0.0))[0] + 1
            self._failures[client] = (failures, time.monotonic())
            logger.warning("dashboard login failed from %s (%d in a row)", client, failures)
        return ok

    @property
    def enabled(self) -> bool:
        return self._password is not None

    def check(self, request: Request) -> bool:
        if self._password is None:
            return False
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return (hmac.compare_digest(user.encode(), self.username.encode())
                & hmac.compare_digest(password.encode(), self._password.encode()))

    def guard_asgi(self, app: ASGIApp) -> ASGIApp:
        """`app` behind the admin login (for the demo sandbox)."""
        async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and not self.check(Request(scope)):
                await self.challenge()(scope, receive, send)
                return
            await app(scope, receive, send)

        return guarded

    @staticmethod
    def _own_origins(request: Request, behind_tls_proxy: bool) -> set[str]:
        own = str(request.base_url).rstrip("/")
        origins = {own}
        if behind_tls_proxy:
            proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip()
            host = request.headers.get("x-forwarded-host") or request.headers.get("host", "")
            if proto in ("http", "https") and host:
                origins.add(f"{proto}://{host.split(',')[0].strip()}")
        return origins

    def challenge(self) -> Response:
        message = ("admin login required" if self.enabled else
                   "the dashboard is disabled: set [admin] password in the config")
        return PlainTextResponse(message, 401, headers={"WWW-Authenticate": REALM})

    def _signature(self, nonce: str, issued: str) -> str:
        key = hashlib.sha256(f"csrf-key:{self._password or ''}".encode()).digest()
        message = f"csrf:{self.username}:{nonce}:{issued}".encode()
        return hmac.new(key, message, hashlib.sha256).hexdigest()

    def new_csrf_token(self) -> str:
        nonce, issued = secrets.token_hex(16), str(int(time.time()))
        return f"{nonce}.{issued}.{self._signature(nonce, issued)}"

    def csrf_valid(self, token: str | None) -> bool:
        """A token this dashboard issued (under the current password) and not yet expired."""
        if not token or len(token) > 200 or token.count(".") != 2:
            return False
        nonce, issued, signature = token.split(".")
        if not issued.isdigit() or time.time() - int(issued) > CSRF_LIFETIME:
            return False
        return hmac.compare_digest(signature, self._signature(nonce, issued))

    def session_csrf(self, request: Request) -> tuple[str, bool]:
        """The browser session's token, and whether it is new (to be set as the cookie)."""
        token = request.cookies.get(CSRF_COOKIE)
        if token and self.csrf_valid(token):
            return token, False
        return self.new_csrf_token(), True

    @staticmethod
    def set_csrf_cookie(response: Response, token: str, *, secure: bool) -> None:
        response.set_cookie(CSRF_COOKIE, token, max_age=int(CSRF_LIFETIME), path="/dashboard",
                            httponly=True, samesite="strict", secure=secure)

    async def csrf_ok(self, request: Request, *, behind_tls_proxy: bool = False) -> bool:
        """The form's token is the session's cookie, issued here, from a page of this
        dashboard (its Origin, when the browser sends one, is ours: behind a TLS-terminating
        proxy that we trust, an https one)."""
        origin = request.headers.get("origin")
        if origin and origin.rstrip("/") not in self._own_origins(request, behind_tls_proxy):
            return False
        form = await request.form()
        token, cookie = form.get("csrf"), request.cookies.get(CSRF_COOKIE, "")
        return (isinstance(token, str) and self.csrf_valid(token)
                and hmac.compare_digest(token.encode(), cookie.encode()))
