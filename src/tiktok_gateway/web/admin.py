"""Admin access for the dashboard: HTTP Basic credentials, and CSRF tokens on actions.

Browsers resend Basic credentials on their own, so every state-changing form carries a
token derived from the admin password (the same in every process sharing a config) and
is refused without it, or from another origin.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from ..config import AdminSettings, resolve_secret

REALM = 'Basic realm="tiktok-gateway dashboard", charset="UTF-8"'


class AdminAuth:
    def __init__(self, settings: AdminSettings) -> None:
        self.username = settings.username
        secret = resolve_secret(settings.password) if settings.password else None
        self._password = secret.get_secret_value() if secret else None

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

    def challenge(self) -> Response:
        message = ("admin login required" if self.enabled else
                   "the dashboard is disabled: set [admin] password in the config")
        return PlainTextResponse(message, 401, headers={"WWW-Authenticate": REALM})

    def csrf_token(self) -> str:
        key = (self._password or "").encode()
        return hmac.new(key, f"csrf:{self.username}".encode(), hashlib.sha256).hexdigest()

    async def csrf_ok(self, request: Request) -> bool:
        origin = request.headers.get("origin")
        if origin and origin.rstrip("/") != str(request.base_url).rstrip("/"):
            return False
        form = await request.form()
        token = form.get("csrf")
        return isinstance(token, str) and hmac.compare_digest(token, self.csrf_token())
