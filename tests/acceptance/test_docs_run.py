"""The docs' commands, run as written against real processes: the quick start's gateway
(`serve --init`, demo mode) and the sandbox, with each `curl` example's output compared with
the JSON the docs show under it. Times, ids and counts that differ run to run are compared by
type and shape; the rest must be equal."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.processes import Process

ROOT = Path(__file__).parents[2]
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
VOLATILE = {"request_id", "time", "start", "end", "since", "at", "first_seen", "last_seen",
            "received_at", "event_time", "latency", "attempts", "finished_at", "total"}
DATA_MAPS = {"filtered", "rejected", "by_event", "destinations", "events", "by_code",
             "server_only_causes", "errors", "deliveries", "records", "data"}


def examples(doc: str, host: str) -> list[tuple[str, str, Any]]:
    """(where, shell command, the JSON shown after it) for each curl example to `host`."""
    text = (ROOT / doc).read_text()
    found = list(BLOCK.finditer(text))
    pairs = []
    for block, after in zip(found, found[1:], strict=False):
        shown_right_after = not text[block.end():after.start()].strip()
        if (block.group(1) == "sh" and host in block.group(2) and after.group(1) == "json"
                and shown_right_after):
            where = f"{doc}:{text[:block.start()].count(chr(10)) + 1}"
            pairs.append((where, block.group(2), json.loads(after.group(2).replace("…", "x"))))
    return pairs


def like(shown: Any, got: Any, path: str = "") -> list[str]:
    """Where `got` differs from `shown` beyond what differs run to run."""
    key = path.rsplit(".", 1)[-1]
    if isinstance(shown, dict):
        if not isinstance(got, dict):
            return [f"{path}: {got!r} is not an object"]
        keys = shown if key not in DATA_MAPS else [k for k in shown if k in got][:1]
        return [d for k in keys for d in (like(shown[k], got[k], f"{path}.{k}") if k in got
                                          else [f"{path}.{k}: missing"])]
    if isinstance(shown, list):
        if not isinstance(got, list):
            return [f"{path}: {got!r} is not a list"]
        if key in DATA_MAPS or not shown:
            return like(shown[0], got[0], f"{path}.0") if shown and got else []
        if len(shown) != len(got):
            return [f"{path}: {len(got)} items, the docs show {len(shown)}"]
        return [d for i, (s, g) in enumerate(zip(shown, got, strict=True))
                for d in like(s, g, f"{path}.{i}")]
    if key in VOLATILE or path.split(".")[1:2] and path.split(".")[1] in DATA_MAPS:
        return [] if type(shown) is type(got) or got is None or shown is None else [
            f"{path}: {got!r} is not like {shown!r}"]
    return [] if shown == got else [f"{path}: {got!r}, the docs show {shown!r}"]


def run(command: str, cwd: Path, urls: dict[str, str]) -> Any:
    for documented, real in urls.items():
        command = command.replace(documented, real)
    done = subprocess.run(["bash", "-c", command], cwd=cwd, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def settled(shown: Any, command: str, cwd: Path, urls: dict[str, str]) -> list[str]:
    """A read (a GET) is asked again for a few seconds, as a user would once delivery has
    happened; a POST runs once."""
    deadline = time.time() + (0 if "-X POST" in command else 5)
    while True:
        differences = like(shown, run(command, cwd, urls))
        if not differences or time.time() > deadline:
            return differences
        time.sleep(0.3)


@pytest.fixture
def quick_start(tmp_path: Path) -> Any:
    gateway = Process(["serve", "--init", "--port", "0"], tmp_path / "gateway.log",
                      cwd=tmp_path).start()
    yield gateway
    gateway.stop()


def test_the_quick_start_and_http_api_examples(tmp_path: Path, quick_start: Process) -> None:
    urls = {"http://127.0.0.1:8080": quick_start.url}
    failures = []
    for doc in ("README.md", "docs/http-api.md"):
        for where, command, shown in examples(doc, "http://127.0.0.1:8080"):
            failures += [f"{where}: {d}" for d in settled(shown, command, tmp_path, urls)]
    assert failures == [], "\n".join(failures)
    # The start-up message, as the README shows it (its last line is cut short there).
    readme = (ROOT / "README.md").read_text()
    banner = next(b.group(2) for b in BLOCK.finditer(readme)
                  if b.group(2).startswith("tiktok-gateway listening on"))
    printed = (tmp_path / "gateway.log").read_text()
    for line in banner.replace("http://127.0.0.1:8080", quick_start.url).splitlines():
        assert line.removesuffix(" ...") in printed, line


def test_the_sandbox_examples(tmp_path: Path) -> None:
    sandbox = Process(["sandbox", "--port", "0", "--token", "C0EXAMPLE0PIXEL00001=my-test-token"],
                      tmp_path / "sandbox.log").start()
    try:
        failures = []
        for where, command, shown in examples("docs/sandbox.md", "http://127.0.0.1:9400"):
            got = run(command, tmp_path, {"http://127.0.0.1:9400": sandbox.url})
            failures += [f"{where}: {d}" for d in like(shown, got)]
        assert failures == [], "\n".join(failures)
    finally:
        sandbox.stop()


RUNNABLE = ("check", "transform", "send", "erase", "doctor", "report")  # against the quick start


def command_examples() -> list[tuple[str, str]]:
    """The docs' `tiktok-gateway` command lines that run against the quick start's gateway
    and files as written (not those for /etc, a real token or a server of their own)."""
    found = []
    for doc in ("README.md", *(f"docs/{p.name}" for p in sorted((ROOT / "docs").glob("*.md")))):
        text = (ROOT / doc).read_text()
        for block in BLOCK.finditer(text):
            if block.group(1) != "sh":
                continue
            for line in block.group(2).replace("\\\n", " ").splitlines():
                command = line.split("  #")[0].strip()
                match = re.match(r"(?:\S*/)?tiktok-gateway\s+(\w+)", command)
                if match and match.group(1) in RUNNABLE and "/etc/" not in command:
                    where = f"{doc}:{text[:block.start()].count(chr(10)) + 1}"
                    found.append((where, command))
    return found


def test_the_command_examples_run(tmp_path: Path, quick_start: Process) -> None:
    import shutil
    import sys

    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    ran = []
    for where, command in command_examples():
        files = [w for w in command.split() if w.endswith((".csv", ".json")) and "/" not in w[:1]]
        if any(not (tmp_path / f).exists() for f in files if not f.startswith("examples/")):
            continue  # names a file of the reader's own (their orders.csv)
        runnable = re.sub(r"^(?:\S*/)?tiktok-gateway", f"{sys.executable} -m tiktok_gateway",
                          command)
        if " send " in f" {runnable} ":
            runnable += f" --url {quick_start.url}"  # the quick start listens on its own port
        done = subprocess.run(["bash", "-c", runnable], cwd=tmp_path, capture_output=True,
                              text=True, timeout=120)
        output = done.stdout + done.stderr
        # 1 is a finding (doctor: TikTok itself is unreachable from here); 2 a usage error.
        assert done.returncode in (0, 1) and "Traceback" not in output, f"{where}: {output[-800:]}"
        ran.append(where)
    assert len(ran) >= 5, ran
