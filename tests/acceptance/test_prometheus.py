"""The shipped Prometheus rules and Grafana dashboard: valid to promtool, about metrics the
gateway really exports, and firing in a real Prometheus that scrapes a running gateway while
the sandbox is down."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import SERVER_KEY

DEPLOY = Path(__file__).parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "tiktok-gateway-rules.yml"
RULE_TESTS = DEPLOY / "prometheus" / "tiktok-gateway-rules.test.yml"
DASHBOARD = DEPLOY / "grafana" / "tiktok-gateway-dashboard.json"
METRIC = re.compile(r"\b(tiktok_gateway_[a-z_]+)")


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"needs {name} (apt-get install prometheus)")
    return found


def test_the_rules_pass_promtool() -> None:
    promtool = tool("promtool")
    checked = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True,
                             text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run([promtool, "test", "rules", RULE_TESTS.name], cwd=RULE_TESTS.parent,
                            capture_output=True, text=True, timeout=120)
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr


def exported_metrics(gateway: str) -> set[str]:
    text = httpx.get(f"{gateway}/metrics").text
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines()
             if line and not line.startswith("#")}
    return names | {re.sub(r"_(bucket|count|sum|total|created)$", "", n) for n in names}


def test_rules_and_dashboard_use_metrics_the_gateway_exports(
        make_gateway: Callable[..., str]) -> None:
    gateway = make_gateway()
    post = httpx.post(f"{gateway}/v1/events", headers={"Authorization": f"Bearer {SERVER_KEY}"},
                      json={"event": "purchase", "properties": {"order_id": "G-1", "value": 1,
                                                                 "currency": "USD"}})
    assert post.status_code == 202
    time.sleep(0.5)
    exported = exported_metrics(gateway)
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = set(METRIC.findall(RULES.read_text() + "\n".join(expressions)))
    assert used and used - {"tiktok_gateway_"} <= exported, used - exported
    assert len(dashboard["panels"]) >= 6 and dashboard["uid"] == "tiktok-gateway"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def quick_rules(tmp_path: Path) -> Path:
    """The shipped rules with seconds for minutes, so that a test sees them fire; the
    shipped durations are what `promtool test rules` checks."""
    text = RULES.read_text()
    text = re.sub(r"for: \d+m", "for: 0s", text)
    text = re.sub(r"\[(\d+)m\]", "[10s]", text)
    path = tmp_path / "rules.yml"
    path.write_text(text)
    return path


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """Start a Prometheus scraping the given gateway every second; yields a starter."""
    binary = tool("prometheus")
    processes: list[subprocess.Popen[bytes]] = []
    log = (tmp_path / "prometheus.log").open("wb")

    def start(gateway: str) -> str:
        port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            f"rule_files: ['{quick_rules(tmp_path)}']\n"
            "scrape_configs:\n"
            "  - job_name: tiktok-gateway\n"
            f"    static_configs: [{{targets: ['{gateway.removeprefix('http://')}']}}]\n")
        processes.append(subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=log))
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if httpx.get(f"{url}/-/ready").status_code == 200:
                    return url
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError((tmp_path / "prometheus.log").read_text()[-2000:])

    yield start
    for process in processes:
        process.terminate()
        process.wait(timeout=20)
    log.close()


def alerts(prometheus_url: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = httpx.get(f"{prometheus_url}/api/v1/alerts").json()["data"][
        "alerts"]
    return found


def test_prometheus_sees_delivery_fail_during_a_sandbox_outage(
        make_gateway: Callable[..., str], sandbox_url: str,
        prometheus: Callable[[str], str]) -> None:
    gateway = make_gateway()
    url = prometheus(gateway)
    stop = threading.Event()

    def traffic() -> None:
        with httpx.Client(headers={"Authorization": f"Bearer {SERVER_KEY}"}) as client:
            for n in range(1500):  # bounded: at most a minute and a quarter
                if stop.is_set():
                    return
                client.post(f"{gateway}/v1/events", json={
                    "event": "add_to_cart", "event_id": f"p-{n}-{time.time_ns()}",
                    "properties": {"value": 1, "currency": "USD"}})
                time.sleep(0.05)

    sender = threading.Thread(target=traffic, daemon=True)
    sender.start()
    try:
        time.sleep(4)  # healthy: scraped, nothing fires
        assert [a["labels"]["alertname"] for a in alerts(url)
                if a["state"] == "firing"] == []
        httpx.post(f"{sandbox_url}/sandbox/faults", json={"outage_seconds": 20})
        deadline = time.time() + 20
        firing: list[dict[str, Any]] = []
        while time.time() < deadline and not firing:
            firing = [a for a in alerts(url) if a["state"] == "firing"
                      and a["labels"]["alertname"] == "TikTokDeliveryFailing"]
            time.sleep(0.5)
        assert firing, alerts(url)
        assert firing[0]["labels"]["destination"] == "shop"
        httpx.delete(f"{sandbox_url}/sandbox/faults")  # TikTok is back
        deadline = time.time() + 30
        while time.time() < deadline and any(
                a["labels"]["alertname"] == "TikTokDeliveryFailing" for a in alerts(url)):
            time.sleep(0.5)
        assert not any(a["labels"]["alertname"] == "TikTokDeliveryFailing" for a in alerts(url))
    finally:
        stop.set()
        sender.join(timeout=10)
