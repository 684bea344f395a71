"""The dashboard's pages about whether the set-up works: the checklist, pixel and server
pairing, and alerts. Rendered by the Dashboard (same login, layout and CSRF)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from .. import checklist
from ..gateway import Gateway
from ..pairing import CAUSES, WINDOWS
from .api import ALERT_HISTORY

CAUSE_TEXT = {
    "blocked": "the pixel's script was blocked (an ad blocker, a privacy browser)",
    "not_loaded": "the pixel had not loaded (a slow page, the shopper left first)",
    "consent": "the page held the pixel back for consent",
    "absent": "no pixel event on the page (not tagged there, or tracked under another id)",
}
Render = Callable[..., Response]


OVERVIEW_CHECKLIST_TTL = 60.0  # the first page refreshes every 30 s; the week it reads changes slowly


class SetupPages:
    def __init__(self, gateway: Gateway, render: Render) -> None:
        self.gateway = gateway
        self.render = render
        self._overview_steps: tuple[float, list[checklist.Step]] | None = None

    async def setup(self, request: Request) -> Response:
        steps = await self.gateway.setup_steps()
        return self.render(request, "setup.html", steps=steps,
                           done=sum(s.status == checklist.DONE for s in steps))

    async def pairing(self, request: Request) -> Response:
        window = request.query_params.get("window", "7d")
        window = window if window in WINDOWS else "7d"
        end = time.time()
        found = await self.gateway.pairing(end - WINDOWS[window], end)
        return self.render(request, "pairing.html", window=window, windows=WINDOWS,
                           pairing=found, total=found.total, causes=CAUSES,
                           cause_text=CAUSE_TEXT, by_cause=found.by(0), by_browser=found.by(1),
                           by_os=found.by(2), by_load=found.by(3))

    async def alerts(self, request: Request) -> Response:
        found = await self.gateway.alert_list(time.time() - ALERT_HISTORY)
        return self.render(request, "alerts.html", alerts=found,
                           settings=self.gateway.settings.alerts,
                           hooks=len(self.gateway.settings.alerts.webhooks))

    async def overview_extras(self) -> dict[str, Any]:
        """What the first page shows above tag health: the checklist until it is all done,
        and the alerts firing."""
        now = time.monotonic()
        if self._overview_steps is None or now - self._overview_steps[0] > OVERVIEW_CHECKLIST_TTL:
            # A week of counters and requests: read once a minute, not on every refresh.
            self._overview_steps = (now, await self.gateway.setup_steps())
        steps = self._overview_steps[1]
        firing = [a for a in await self.gateway.alert_list(time.time()) if a.state == "firing"]
        return {"steps": steps, "setup_done": checklist.all_done(steps), "firing": firing,
                "steps_done": sum(s.status == checklist.DONE for s in steps)}
