"""The figures and the event search, against counts the test keeps itself.

Real processes: the gateway, and the sandbox with an outage and partial answers. Every
number the summary shows is checked against what the test sent and what the sandbox got.
"""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.acceptance.processes import Process, sandbox_events, start_gateway, wait_for, write_config

KEY = {"Authorization": "Bearer acceptance-server-key-0123"}
ADMIN = ("admin", "acceptance-admin-password")
HOSTILE = "\u202eFig<b>x</b>"  # a right-to-left override and HTML in an order id


def purchase(order: str, **extra: Any) -> dict[str, Any]:
    return {"event": "purchase", "event_time": int(time.time()),
            "user": {"email": f"{order.lower()}@example.com"},
            "properties": {"order_id": order, "value": 20, "currency": "EUR"}, **extra}


def post(gateway: Process, events: list[dict[str, Any]], expect: int = 202,
         **headers: str) -> dict[str, Any]:
    answer = httpx.post(f"{gateway.url}/v1/events", json={"events": events},
                        headers={**KEY, **headers}, timeout=10)
    assert answer.status_code == expect, answer.text
    body: dict[str, Any] = answer.json()
    return body


def summary(gateway: Process, mode: str) -> dict[str, Any]:
    answer = httpx.get(f"{gateway.url}/dashboard/api/summary", auth=ADMIN,
                       params={"window": "1h", "mode": mode})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def search(gateway: Process, **params: Any) -> dict[str, Any]:
    answer = httpx.get(f"{gateway.url}/dashboard/api/events", auth=ADMIN, params=params)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def gap_labels(gateway: Process, csv_text: str) -> dict[str, str]:
    """Upload an orders CSV on the dashboard's gap report page; each order's label."""
    with httpx.Client(base_url=gateway.url, auth=ADMIN) as browser:
        form = browser.get("/dashboard/gaps").text
        csrf = form.split('name="csrf" value="')[1].split('"')[0]
        page = browser.post("/dashboard/gaps", data={"csrf": csrf},
                            files={"orders": ("orders.csv", csv_text, "text/csv")})
    assert page.status_code == 200, page.text
    rows = re.findall(r'<tr class="gap-order" data-label="[^"]*"><td><bdi>(.*?)</bdi></td>'
                      r'<td><bdi>(.*?)</bdi></td>', page.text)
    labels = {html.unescape(o): html.unescape(label) for o, label in rows}
    delivered = re.search(r'id="gap-delivered">(\d+)<', page.text)
    unlisted = [line.split(",")[0] for line in csv_text.splitlines()[1:]
                if line.split(",")[0] not in labels]
    # Delivered orders without a later change are not listed: the count says how many.
    assert delivered and int(delivered.group(1)) >= len(unlisted)
    labels.update({order: "delivered" for order in unlisted})
    return labels


def test_the_summary_and_the_search_agree_with_what_was_sent(tmp_path: Path,
                                                            tiktok_process: Process) -> None:
    gateway = start_gateway(tmp_path, write_config(tmp_path, tiktok_process.url))
    faults = f"{tiktok_process.url}/sandbox/faults"
    live_orders = [f"Fig-{i}" for i in range(40)]
    try:
        httpx.post(faults, json={"outage_seconds": 2})
        post(gateway, [purchase(o) for o in live_orders[:20]])
        time.sleep(2.5)
        httpx.post(faults, json={"partial_rate": 0.3})
        post(gateway, [purchase(o) for o in live_orders[20:]])

        def settled() -> bool:
            shop = summary(gateway, "live")["destinations"]["shop"]["events"]
            return shop["pending"] == 0 and shop["delivered"] + shop["dead"] == 40

        assert wait_for(settled, timeout=40)
        httpx.delete(faults)
        post(gateway, [purchase(f"Test-{i}") for i in range(5)],
             **{"X-Test-Event-Code": "TEST0001"})
        late = post(gateway, [purchase(o) for o in live_orders[:3]])
        assert late["duplicates"] == 3
        filtered = post(gateway, [purchase(f"Consent-{i}", consent={"marketing": False})
                                  for i in range(4)] + [purchase(HOSTILE, consent={"marketing": False})])
        assert filtered["filtered"] == {"consent": 5}
        refused = post(gateway, [purchase(f"Bad-{i}", properties={
            "order_id": f"Bad-{i}", "value": 5, "currency": "EURO"}) for i in range(3)], expect=422)
        assert len(refused["rejected"]) == 3

        def counted() -> bool:
            shop = summary(gateway, "all")["destinations"]["shop"]["events"]
            return (shop["rejected"].get("properties.currency") == 3
                    and shop["filtered"].get("consent") == 5 and shop["pending"] == 0)

        assert wait_for(counted, timeout=20)
        delivered_live = len(sandbox_events(tiktok_process, live="true"))
        stats = httpx.get(f"{tiktok_process.url}/sandbox/stats").json()

        live = summary(gateway, "live")
        assert live["mode"] == "live" and live["window"]["end"] - live["window"]["start"] == 3600
        shop = live["destinations"]["shop"]
        events = shop["events"]
        assert events["received"] == 43  # 40 orders, then 3 late copies of them
        assert events["delivered"] == delivered_live
        assert events["dead"] == 40 - delivered_live > 0  # the partial answers' rejects
        assert events["duplicates"] == 3 and events["pending"] == 0
        assert events["filtered"] == {"consent": 5}
        assert events["rejected"] == {"properties.currency": 3}
        assert shop["delivery_rate"] == delivered_live / 40
        assert shop["by_event"]["CompletePayment"] == {
            "received": 43, "delivered": delivered_live, "pending": 0, "dead": 40 - delivered_live}

        test = summary(gateway, "test")["destinations"]["shop"]
        assert (test["events"]["received"], test["events"]["delivered"]) == (5, 5)
        assert test["delivery_rate"] == 1.0

        every = summary(gateway, "all")["destinations"]["shop"]
        assert every["requests"]["sent"] == stats["requests"]
        assert every["requests"]["failed"] == stats["by_code"].get("503", 0) > 0
        causes = {(g["code"], g["cause"]): g for g in every["errors"]}
        outage = causes[(None, "TikTok unavailable (HTTP 503)")]
        assert outage["http_status"] == 503 and outage["requests"] == stats["by_code"]["503"]
        assert outage["first_seen"] <= outage["last_seen"]
        [partial] = [g for g in every["errors"] if g["code"] == 20001]
        assert partial["events"] == 40 - delivered_live
        assert "partial-success fault" in partial["cause"] and partial["advice"]

        # Search: any event, whatever became of it, case-insensitively.
        [found] = search(gateway, order_id="fig-25", state="delivered")["events"] or [
            e for e in search(gateway, order_id="fig-25")["events"]]
        assert found["order_id"] == "Fig-25" and found["event"] == "CompletePayment"
        assert found["tiktok"]["request_id"] and found["test"] is False
        by_id = search(gateway, event_id="FIG-25")["events"]
        assert [e["event_id"] for e in by_id] == ["Fig-25_CompletePayment"]
        copies = search(gateway, order_id="Fig-1")["events"]
        assert sorted(e["state"] for e in copies) in (
            ["delivered", "duplicate"], ["dead", "duplicate"])
        [consent] = search(gateway, order_id="consent-2")["events"]
        assert (consent["state"], consent["reason"]) == ("filtered", "consent")
        [bad] = search(gateway, order_id="bad-1")["events"]
        assert bad["state"] == "rejected" and "properties.currency" in bad["reason"]
        kept = json.loads(bad["received"])  # as received, with nothing personal in it
        assert kept["properties"]["currency"] == "EURO" and "bad-1@" not in bad["received"]
        assert kept["user"]["email"] == "[removed: 17 characters]"
        dead = search(gateway, state="dead", reason="PARTIAL-SUCCESS", limit=1)
        assert dead["total"] == 40 - delivered_live and len(dead["events"]) == 1
        assert search(gateway, q="fig-")["total"] == 43
        assert search(gateway, q="fig-", code=20001, state="dead")["total"] == 40 - delivered_live
        assert search(gateway, q="fig-", event="completepayment", state="duplicate")["total"] == 3
        assert search(gateway, order_id=HOSTILE)["events"][0]["order_id"] == HOSTILE
        assert search(gateway, q="TEST-", mode="test")["total"] == 5
        assert search(gateway, q="TEST-", mode="live")["total"] == 0

        exported = httpx.get(f"{gateway.url}/dashboard/api/events", auth=ADMIN,
                             params={"q": "consent-", "format": "csv"})
        lines = exported.text.strip().splitlines()
        assert exported.headers["content-type"].startswith("text/csv") and len(lines) == 5
        assert lines[0].startswith("received_at,destination,event,event_id,order_id,state")

        status = httpx.get(f"{gateway.url}/v1/events/status", headers=KEY,
                           params={"order_id": "Consent-3"}).json()
        assert [r["state"] for r in status["records"]] == ["filtered"]

        # The gap report, on the dashboard and in the terminal, labels every true order.
        true_orders = ["Fig-25", "Test-2", "Consent-1", "Bad-0", "Never-1", *live_orders[:3]]
        csv_text = "order_id,value\n" + "".join(f"{o},20\n" for o in true_orders)
        labels = gap_labels(gateway, csv_text)
        assert labels["Test-2"] == "test" and labels["Never-1"] == "never received"
        assert labels["Consent-1"] == "filtered (consent)"
        assert labels["Bad-0"].startswith("rejected (properties.currency")
        assert labels["Fig-25"] in ("delivered", "dead (event rejected by the sandbox's "
                                                 "partial-success fault)")
        with httpx.Client(base_url=gateway.url, auth=ADMIN) as browser:
            form = browser.get("/dashboard/gaps").text
            csrf = form.split('name="csrf" value="')[1].split('"')[0]
            exported = browser.post("/dashboard/gaps", data={"csrf": csrf, "format": "csv"},
                                    files={"orders": ("orders.csv", csv_text, "text/csv")})
            too_big = browser.post("/dashboard/gaps", data={"csrf": csrf}, files={
                "orders": ("orders.csv", "order_id\n" + "x" * 5_100_000, "text/csv")})
        assert too_big.status_code == 413  # refused before the upload is parsed
        assert exported.headers["content-type"].startswith("text/csv")
        assert "Consent-1,filtered (consent)," in exported.text
        orders_file = tmp_path / "orders.csv"
        orders_file.write_text(csv_text)
        report = subprocess.run([sys.executable, "-m", "tiktok_gateway", "report", "--config",
                                 str(tmp_path / "gateway.toml"), "--orders", str(orders_file),
                                 "--json"], capture_output=True, text=True, timeout=60)
        assert report.returncode == 0, report.stderr
        assert json.loads(report.stdout)["labels"] == {o: labels[o] for o in true_orders}

        for bad_param in ({"window": "2y"}, {"mode": "both"}):
            assert httpx.get(f"{gateway.url}/dashboard/api/summary", auth=ADMIN,
                             params=bad_param).status_code == 400
        assert httpx.get(f"{gateway.url}/dashboard/api/events", auth=ADMIN,
                         params={"state": "lost"}).status_code == 400
        assert httpx.get(f"{gateway.url}/dashboard/api/summary").status_code == 401
        browser = httpx.get(f"{gateway.url}/", headers={"Accept": "text/html"})
        assert browser.status_code == 303 and browser.headers["location"] == "/dashboard"
    finally:
        gateway.stop()
