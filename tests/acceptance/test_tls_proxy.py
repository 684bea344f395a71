"""The shipped nginx and Caddy examples in front of a running gateway, with TLS (a
self-signed certificate): events, the shopper's address, a dashboard replay, and the routes
kept private."""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN, SERVER_KEY

DEPLOY = Path(__file__).parents[2] / "deploy"
CLIENT_ADDRESS = "127.0.0.5"  # the "shopper": another loopback address than the proxy's


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def certificate(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def nginx(tmp_path: Path, upstream: str, tls_port: int, http_port: int, cert: Path,
          key: Path) -> list[str]:
    site = (DEPLOY / "nginx" / "tiktok-gateway.conf").read_text()
    site = (site.replace("listen 443 ssl http2;", f"listen 127.0.0.1:{tls_port} ssl http2;")
            .replace("listen 80;", f"listen 127.0.0.1:{http_port};")
            .replace("/etc/ssl/certs/gateway.example.com.pem", str(cert))
            .replace("/etc/ssl/private/gateway.example.com.key", str(key))
            .replace("127.0.0.1:8080", upstream))
    (tmp_path / "site.conf").write_text(site)
    user = "user root;\n" if os.geteuid() == 0 else ""
    (tmp_path / "nginx.conf").write_text(
        f"{user}daemon off;\nworker_processes 1;\npid {tmp_path}/nginx.pid;\n"
        f"error_log {tmp_path}/nginx-error.log;\nevents {{}}\n"
        f"http {{\n  access_log off;\n  client_body_temp_path {tmp_path}/body;\n"
        f"  proxy_temp_path {tmp_path}/proxy;\n  include {tmp_path}/site.conf;\n}}\n")
    return ["nginx", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")]


def caddy(tmp_path: Path, upstream: str, tls_port: int, http_port: int, cert: Path,
          key: Path) -> list[str]:
    site = (DEPLOY / "caddy" / "Caddyfile").read_text()
    site = (site.replace("gateway.example.com {", f"https://127.0.0.1:{tls_port} {{\n"
                                                   f"\ttls {cert} {key}")
            .replace("127.0.0.1:8080", upstream))
    global_options = (f"{{\n\tadmin off\n\thttp_port {http_port}\n\tauto_https disable_redirects"
                      f"\n\tstorage file_system {tmp_path}/caddy\n}}\n")
    (tmp_path / "Caddyfile").write_text(global_options + site)
    return ["caddy", "run", "--adapter", "caddyfile", "--config", str(tmp_path / "Caddyfile")]


PROXIES: dict[str, Callable[..., list[str]]] = {"nginx": nginx, "caddy": caddy}


@pytest.fixture(params=sorted(PROXIES))
def proxy(request: pytest.FixtureRequest, tmp_path: Path,
          make_gateway: Callable[..., str]) -> Iterator[tuple[str, str, str, str]]:
    """(the proxy's https URL, its CA file, the gateway's own URL, the proxy's name)."""
    name = request.param
    if shutil.which(name) is None:
        pytest.skip(f"needs {name} (apt-get install nginx-light caddy)")
    gateway = make_gateway(server={"trusted_proxies": ["127.0.0.1/32"]})
    cert, key = certificate(tmp_path)
    tls_port, http_port = free_port(), free_port()
    command = PROXIES[name](tmp_path, gateway.removeprefix("http://"), tls_port, http_port,
                            cert, key)
    log = (tmp_path / f"{name}.log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                               env={**os.environ, "HOME": str(tmp_path),
                                    "XDG_DATA_HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)})
    url = f"https://127.0.0.1:{tls_port}"
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            httpx.get(f"{url}/healthz", verify=ssl.create_default_context(cafile=str(cert)))
            break
        except httpx.HTTPError:
            time.sleep(0.2)
    try:
        yield url, str(cert), gateway, name
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


def client(url: str, ca: str, **extra: object) -> httpx.Client:
    """A client from another address than the proxy's, as a shopper's browser would be."""
    transport = httpx.HTTPTransport(local_address=CLIENT_ADDRESS,
                                    verify=ssl.create_default_context(cafile=ca))
    return httpx.Client(base_url=url, transport=transport, **extra)  # type: ignore[arg-type]


def test_behind_a_tls_proxy(proxy: tuple[str, str, str, str], sandbox: tuple[str, object],
                            caplog: pytest.LogCaptureFixture) -> None:
    url, ca, gateway, name = proxy
    _, sandbox_obj = sandbox
    with client(url, ca) as shopper:
        assert shopper.get("/healthz").json() == {"status": "ok"}
        # The private routes stay private through the proxy (and work on the gateway itself).
        assert shopper.get("/metrics").status_code == 403
        assert shopper.get("/tiktok-sandbox/").status_code == 404
        assert httpx.get(f"{gateway}/metrics").status_code == 200
        # The client's address is the one the proxy saw, whatever the client claims.
        caplog.set_level(logging.WARNING, logger="tiktok_gateway")
        denied = shopper.get("/dashboard", auth=("admin", "wrong-password-000"),
                             headers={"X-Forwarded-For": "203.0.113.7"})
        assert denied.status_code == 401
        logged = [r.getMessage() for r in caplog.records if "login failed" in r.getMessage()]
        assert logged and f"from {CLIENT_ADDRESS} " in logged[-1], logged
        # A rejected event, then a replay from the dashboard through the proxy.
        sandbox_obj.state.tokens = {"C0EXAMPLE0PIXEL00001": {"not-our-token"}}  # type: ignore[attr-defined]
        sent = shopper.post("/v1/events", headers={"Authorization": f"Bearer {SERVER_KEY}"},
                            json={"event": "purchase", "properties": {
                                "order_id": f"TLS-{name}", "value": 3, "currency": "USD"}})
        assert sent.status_code == 202, sent.text
    with client(url, ca, auth=ADMIN) as browser:
        deadline = time.time() + 10
        while 'class="dead-letter"' not in (html := browser.get("/dashboard/dead-letters").text):
            assert time.time() < deadline
            time.sleep(0.2)
        cookie = browser.cookies.jar
        assert any(c.name == "tiktok_gateway_csrf" and c.secure for c in cookie)  # https: Secure
        token = re.search(r'name="csrf" value="([0-9a-f.]+)"', html)
        assert token
        sandbox_obj.state.tokens = {"C0EXAMPLE0PIXEL00001": {"test-token-0123456789"}}  # type: ignore[attr-defined]
        done = browser.post("/dashboard/dead-letters/replay", headers={"Origin": url},
                            data={"csrf": token.group(1), "confirm": "yes"}, follow_redirects=True)
        assert done.status_code == 200 and "Queued 1 event(s) again" in done.text
    deadline = time.time() + 10
    while not sandbox_obj.state.events:  # type: ignore[attr-defined]
        assert time.time() < deadline
        time.sleep(0.1)
