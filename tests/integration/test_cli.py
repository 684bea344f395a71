"""The `transform` and `check` commands, run as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tiktok_gateway.testing import sample_event

EXAMPLES = Path(__file__).parents[2] / "examples"
CLI = [sys.executable, "-m", "tiktok_gateway"]


def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], input=stdin, capture_output=True, text=True, timeout=60)


def test_transform_prints_requests_and_exits_0() -> None:
    """A valid event becomes one 2.0 request; exit 0."""
    result = run("transform", "--pixel", "C0EXAMPLE0PIXEL00001", stdin=json.dumps(sample_event()))
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert set(out) == {"requests", "rejected", "warnings"}
    [request] = out["requests"]
    assert request["event_source_id"] == "C0EXAMPLE0PIXEL00001"
    assert request["data"][0]["event"] == "CompletePayment"
    assert "alice" not in result.stdout.lower()


def test_transform_reports_rejections_with_exit_2() -> None:
    """A batch with a bad event names index and field, and exits 2."""
    events = {"events": [sample_event(), {"event": "purchase", "properties": {"currency": "ZZZ"}}]}
    result = run("transform", "--test-event-code", "TEST1", stdin=json.dumps(events))
    assert result.returncode == 2
    out = json.loads(result.stdout)
    assert out["rejected"] == [{"index": 1, "errors": [
        {"field": "properties.currency",
         "message": "'ZZZ' is not an ISO 4217 currency code (e.g. USD, EUR)"}]}]
    assert out["requests"][0]["test_event_code"] == "TEST1"


def test_transform_region_option() -> None:
    """--region lets national phone numbers through; without it they are dropped."""
    event = sample_event(user={"phone": "(213) 373-4253"})
    without = json.loads(run("transform", stdin=json.dumps(event)).stdout)
    with_region = json.loads(run("transform", "--region", "US", stdin=json.dumps(event)).stdout)
    assert "user" not in without["requests"][0]["data"][0]
    assert without["warnings"][0]["field"] == "user.phone"
    assert with_region["requests"][0]["data"][0]["user"]["phone"]


def test_transform_uses_config(tmp_path: Path) -> None:
    """--config takes the first destination's pixel, names and region."""
    config = tmp_path / "gateway.toml"
    config.write_text('[tiktok]\npartner_name = "MyShop"\n'
                      '[[destinations]]\nname = "shop"\npixel_id = "7654321098765432109"\n'
                      'event_source = "crm"\npurchase_event = "Purchase"\nphone_region = "US"\n')
    out = json.loads(run("transform", "--config", str(config),
                         stdin=json.dumps(sample_event())).stdout)
    assert out["requests"][0]["event_source_id"] == "7654321098765432109"
    assert out["requests"][0]["data"][0]["event"] == "Purchase"
    assert out["requests"][0]["event_source"] == "crm"
    assert out["requests"][0]["partner_name"] == "MyShop"


def test_doctor_warns_about_custom_event_name_targets(tmp_path: Path) -> None:
    """An event_names target that is not a standard name is named by doctor; case is fixed."""
    config = tmp_path / "gateway.toml"
    config.write_text('[tiktok]\nbase_url = "http://127.0.0.1:9"\n[[destinations]]\n'
                      'name = "shop"\npixel_id = "C0EXAMPLE0PIXEL00009"\naccess_token = "t"\n'
                      'event_names = { "a" = "download", "b" = "BrochureFetched" }\n')
    out = run("doctor", "--config", str(config)).stdout
    assert "BrochureFetched" in out and "custom event" in out
    assert "download" not in out.replace("Download", "")


def test_doctor_prints_config_table_names_as_written(tmp_path: Path) -> None:
    """`[[keys]]` and `[[destinations]]` in doctor's findings are text, not terminal markup."""
    config = tmp_path / "gateway.toml"
    config.write_text('[tiktok]\nbase_url = "http://127.0.0.1:9"\n')
    result = run("doctor", "--config", str(config))
    assert result.returncode == 1
    assert "no [[destinations]]: nothing would be delivered" in result.stdout
    assert "no [[keys]]: nobody can post events" in result.stdout


def test_replay_names_a_destination_that_does_not_exist(tmp_path: Path) -> None:
    """`replay --destination nosuch` says so instead of queuing nothing in silence."""
    config = tmp_path / "gateway.toml"
    config.write_text(f'[storage]\nurl = "sqlite:///{tmp_path}/g.db"\n[[destinations]]\n'
                      'name = "shop"\npixel_id = "C0EXAMPLE0PIXEL00009"\naccess_token = "t"\n')
    result = run("replay", "--config", str(config), "--destination", "nosuch")
    assert result.returncode == 2
    assert "no destination 'nosuch' in the config (there are: shop)" in result.stderr


def test_malformed_json_is_a_clear_error() -> None:
    """Broken JSON exits 2 and says where."""
    result = run("transform", stdin='{"event": ')
    assert result.returncode == 2
    assert "not valid JSON" in result.stderr and result.stdout == ""


def check_json(body: Any) -> tuple[int, dict[str, Any]]:
    result = run("check", "--json", stdin=json.dumps(body))
    return result.returncode, json.loads(result.stdout)


def test_check_passes_shared_examples() -> None:
    """Example bodies A, B and C pass check, exit 0."""
    for path in sorted(EXAMPLES.glob("example-*.json")):
        result = run("check", str(path))
        assert result.returncode == 0, (path, result.stdout)


def test_check_json_for_a_broken_body() -> None:
    """A broken body exits 1 and the JSON names each field."""
    body = json.loads((EXAMPLES / "example-a-web-purchase.json").read_text())
    body["data"][0]["event_id"] = 7
    body["data"][0]["user"]["email"] = ["alice@example.com"]
    code, report = check_json(body)
    assert code == 1 and report["ok"] is False
    event = report["events"][0]
    assert event["errors"] == [{"field": "data.0.event_id", "message": "Not a valid string"}]
    assert event["dropped"][0]["field"] == "data.0.user.email.0"


def test_check_readable_report() -> None:
    """Without --json, check prints a table naming the field and the verdict."""
    body = json.loads((EXAMPLES / "example-a-web-purchase.json").read_text())
    body["data"][0]["properties"]["currency"] = "dollars"
    result = run("check", stdin=json.dumps(body))
    assert result.returncode == 0
    assert "dropped" in result.stdout and "data.0.properties.currency" in result.stdout


def test_backup_refuses_what_it_cannot_copy_and_restore_checks_the_file(tmp_path: Path) -> None:
    """PostgreSQL is pointed to its own tools; a file that is no store is not restored."""
    config = tmp_path / "gateway.toml"
    config.write_text('[storage]\nurl = "postgresql://gateway@127.0.0.1/gateway"\n'
                      '[[destinations]]\nname = "shop"\npixel_id = "C0EXAMPLE0PIXEL00001"\n')
    result = run("backup", "--config", str(config), str(tmp_path / "copy.db"))
    assert result.returncode == 2 and "pg_dump -Fc" in " ".join(result.stderr.split())
    config.write_text(config.read_text().replace(
        "postgresql://gateway@127.0.0.1/gateway", f"sqlite:///{tmp_path}/gateway.db"))
    junk = tmp_path / "junk.db"
    junk.write_text("not a database")
    result = run("restore", "--config", str(config), str(junk), "--yes")
    # rich wraps the message at the terminal's width
    assert result.returncode == 2 and "not a gateway store" in " ".join(result.stderr.split())
    assert not (tmp_path / "gateway.db").exists()


def test_transform_reads_json_lines_and_keeps_going_past_a_bad_line() -> None:
    """JSON Lines: one event per line; a broken line is rejected by its place, the rest pass."""
    lines = [json.dumps(sample_event(event_id=f"e{i}")) for i in range(3)]
    lines.insert(1, '{"event": ')
    result = run("transform", stdin="\n".join(lines) + "\n")
    assert result.returncode == 2, result.stderr
    out = json.loads(result.stdout)
    assert [e["event_id"] for e in out["requests"][0]["data"]] == ["e0", "e1", "e2"]
    [bad] = out["rejected"]
    assert bad["index"] == 1 and bad["errors"][0]["message"].startswith("line 2: not valid JSON")


def test_transform_output_is_compact_when_piped_and_indented_with_pretty() -> None:
    """Piped output is one compact line; --pretty indents the same object."""
    event = json.dumps(sample_event())
    piped, pretty = run("transform", stdin=event), run("transform", "--pretty", stdin=event)
    assert piped.stdout.count("\n") == 1 and pretty.stdout.count("\n") > 10
    assert json.loads(piped.stdout) == json.loads(pretty.stdout)


def test_transform_splits_a_large_input_into_full_requests() -> None:
    """2,500 events stream out as requests of 1,000, 1,000 and 500, none lost."""
    events = [sample_event(event_id=f"e{i}") for i in range(2500)]
    out = json.loads(run("transform", stdin=json.dumps({"events": events})).stdout)
    assert [len(r["data"]) for r in out["requests"]] == [1000, 1000, 500]
    assert [e["event_id"] for r in out["requests"] for e in r["data"]] == [
        f"e{i}" for i in range(2500)]
