"""Rotation without downtime, against real processes: a new ingest key beside the old, a new
TikTok token and webhook secret, taken on `tiktok-gateway reload` (SIGHUP) while a backend
keeps posting; no request is refused or dropped on the way, and a broken config is refused
whole."""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time
from pathlib import Path

import httpx

from tests.acceptance.processes import Process, start_gateway, wait_for, write_config
from tests.acceptance.test_commands import cli

PIXEL = "C0EXAMPLE0PIXEL00001"
OLD_TOKEN, NEW_TOKEN = "rotation-old-token-0001", "rotation-new-token-0002"
OLD_KEY, NEW_KEY = "acceptance-server-key-0123", "rotated-server-key-4567"


def signed(secret: str, body: bytes) -> dict[str, str]:
    digest = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    return {"X-Shopify-Hmac-Sha256": digest, "X-Shopify-Topic": "orders/create",
            "Content-Type": "application/json"}


def test_keys_tokens_and_secrets_rotate_without_a_restart(tmp_path: Path) -> None:
    sandbox = Process(["sandbox", "--port", "0", "--token", f"{PIXEL}={OLD_TOKEN}",
                       "--token", f"{PIXEL}={NEW_TOKEN}"], tmp_path / "sandbox.log").start()
    token = tmp_path / "tiktok.token"
    token.write_text(OLD_TOKEN)
    new_key = tmp_path / "new-server.key"
    new_key.write_text(NEW_KEY)
    old_secret, new_secret = tmp_path / "shopify.old", tmp_path / "shopify.new"
    old_secret.write_text("shopify-old-secret")
    new_secret.write_text("shopify-new-secret")
    config = write_config(tmp_path, sandbox.url,
                          extra=f'\n[webhooks]\nshopify_secret = "file:{old_secret}"\n')
    text = config.read_text().replace('access_token = "env:ACCEPTANCE_TIKTOK_TOKEN"',
                                      f'access_token = "file:{token}"')
    config.write_text(text)
    gateway = start_gateway(tmp_path, config)
    answers: list[int] = []
    stop = threading.Event()
    key = [OLD_KEY]

    def backend() -> None:
        with httpx.Client() as client:
            for n in range(4000):  # bounded
                if stop.is_set():
                    return
                try:
                    answers.append(client.post(f"{gateway.url}/v1/events", headers={
                        "Authorization": f"Bearer {key[0]}"}, json={
                        "event": "add_to_cart", "event_id": f"r-{n}",
                        "properties": {"value": 1, "currency": "USD"}}).status_code)
                except httpx.HTTPError:
                    answers.append(0)  # a dropped connection
                time.sleep(0.01)

    sender = threading.Thread(target=backend, daemon=True)
    sender.start()
    try:
        assert wait_for(lambda: len(answers) > 20)
        # 1. The new key beside the old, the new token, both webhook secrets.
        config.write_text(text.replace(
            '[[destinations]]', f'[[keys]]\nname = "backend-new"\nsecret = "file:{new_key}"\n\n'
            '[[destinations]]').replace(
            f'shopify_secret = "file:{old_secret}"',
            f'shopify_secret = ["file:{new_secret}", "file:{old_secret}"]'))
        token.write_text(NEW_TOKEN)
        told = cli("reload", "--config", str(config))
        assert told.returncode == 0 and f"process {gateway.pid}" in told.stdout, told.stdout
        log = tmp_path / "gateway.log"
        assert wait_for(lambda: "config reloaded: access token of shop, ingest keys (2), "
                                "webhook secrets" in log.read_text())
        key[0] = NEW_KEY  # the backend moves to the new key
        body = b'{"id": 5001, "financial_status": "paid", "total_price": "10.00", "currency": "USD"}'
        for secret in ("shopify-old-secret", "shopify-new-secret"):  # both while rotating
            hook = httpx.post(f"{gateway.url}/webhooks/shopify", content=body,
                              headers=signed(secret, body))
            assert hook.status_code in (200, 202), hook.text
        # 2. The old key removed; a broken config (a token file gone) is refused whole.
        config.write_text(config.read_text().replace(
            f'[[keys]]\nname = "backend"\nsecret = "file:{tmp_path / "server.key"}"\n', ""))
        token.rename(tmp_path / "moved.token")
        assert cli("reload", "--config", str(config)).returncode == 0
        assert wait_for(lambda: "reload refused, the running config is unchanged" in log.read_text())
        assert httpx.post(f"{gateway.url}/v1/events", headers={
            "Authorization": f"Bearer {OLD_KEY}"}, json={"event": "add_to_cart"}).status_code == 202
        (tmp_path / "moved.token").rename(token)
        assert cli("reload", "--config", str(config)).returncode == 0
        assert wait_for(lambda: "ingest keys (1)" in log.read_text())
        time.sleep(0.5)
    finally:
        stop.set()
        sender.join(timeout=30)
    try:
        assert answers and set(answers) == {202}, {a: answers.count(a) for a in set(answers)}
        assert httpx.post(f"{gateway.url}/v1/events", headers={
            "Authorization": f"Bearer {OLD_KEY}"}, json={"event": "add_to_cart"}).status_code == 401
        # TikTok saw the old token, then only the new one.
        def tokens() -> list[str]:
            entries = httpx.get(f"{sandbox.url}/sandbox/requests", params={"limit": 10000}).json()
            return [e["access_token"] for e in entries["requests"]]

        assert wait_for(lambda: tokens() and tokens()[-1] == "****0002")
        seen = tokens()
        first_new = seen.index("****0002")
        assert set(seen[:first_new]) == {"****0001"} and set(seen[first_new:]) == {"****0002"}
    finally:
        gateway.stop()
        sandbox.stop()
