"""From demo mode to TikTok: demo events in a store of their own, and `golive` checking the
token with a test event before clearing them."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.acceptance.processes import TOKEN, Process, sandbox_events, write_config
from tests.acceptance.test_commands import cli

HEADERS = {"Authorization": "Bearer acceptance-server-key-0123"}
OUR_PIXEL = "C4GOLIVE0PIXEL0CHECK"


def test_demo_to_live(tmp_path: Path) -> None:
    tiktok = Process(["sandbox", "--port", "0", "--token", f"{OUR_PIXEL}={TOKEN}"],
                     tmp_path / "sandbox.log").start()
    try:
        example = write_config(tmp_path, tiktok.url)  # the pixel `serve --init` writes
        live = tmp_path / "live.toml"
        live.write_text(example.read_text().replace("C0EXAMPLE0PIXEL00001", OUR_PIXEL))
        demo = tmp_path / "demo.toml"
        demo.write_text(live.read_text().replace('access_token = "env:ACCEPTANCE_TIKTOK_TOKEN"',
                                                 'access_token = ""'))
        gateway = Process(["serve", "--config", str(demo)], tmp_path / "demo.log").start()
        try:
            assert httpx.post(f"{gateway.url}/v1/events", headers=HEADERS, json={
                "event": "purchase", "properties": {"order_id": "D-1", "value": 5,
                                                    "currency": "USD"}}).status_code == 202
        finally:
            gateway.stop()
        data = tmp_path / "data"
        assert (data / "gateway.demo.db").exists() and not (data / "gateway.db").exists()

        def golive(config: Path, token: str) -> tuple[int, str]:
            done = cli("golive", "--config", str(config), "--test-event-code", "TEST7",
                       "--clear-demo", env={"ACCEPTANCE_TIKTOK_TOKEN": token})
            return done.returncode, " ".join((done.stdout + done.stderr).split())

        code, said = golive(live, "revoked-token-000000")  # the wrong token: nothing cleared
        assert code == 1 and "TikTok answered 40105" in said and "Events Manager" in said
        code, said = golive(example, TOKEN)
        assert code == 1 and "pixel_id is still the example" in said
        assert (data / "gateway.demo.db").exists() and sandbox_events(tiktok) == []
        code, said = golive(live, TOKEN)  # right: a test event, and the demo store goes
        assert code == 0, said
        assert f"TikTok accepted a test event for {OUR_PIXEL} with test code TEST7" in said
        assert not (data / "gateway.demo.db").exists() and "deleted the demo store" in said
        [event] = sandbox_events(tiktok)
        assert event["test_event_code"] == "TEST7"
    finally:
        tiktok.stop()
