"""The examples in the README and docs/ are real: TOML loads as settings, JSON parses, Python
runs, and every `tiktok-gateway` command line names a command and options that exist.

(tests/acceptance/test_docs_run.py runs the quick start's commands against real processes and
compares their output with what the docs show.)"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import typer

from tiktok_gateway.cli import app
from tiktok_gateway.config import settings_from_dict

ROOT = Path(__file__).parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def blocks(language: str) -> list[tuple[str, str]]:
    return [(f"{path.name}:{text[:match.start()].count(chr(10)) + 1}", match.group(2))
            for path in DOCS for text in [path.read_text()]
            for match in BLOCK.finditer(text) if match.group(1) == language]


@pytest.mark.parametrize(("where", "body"), blocks("toml"), ids=lambda v: v if ":" in v else "")
def test_toml_examples_are_valid_settings(where: str, body: str) -> None:
    settings_from_dict(tomllib.loads(body), source=where)


@pytest.mark.parametrize(("where", "body"), blocks("json"), ids=lambda v: v if ":" in v else "")
def test_json_examples_parse(where: str, body: str) -> None:
    json.loads(body)


def test_the_signature_check_in_alerts_md_accepts_the_gateways_signature() -> None:
    """The receiver's check the docs give, run against what the notifier really sends."""
    from tiktok_gateway.notify import SIGNATURE, TIMESTAMP, Webhook
    from tiktok_gateway.outbox import FIRING, AlertRecord

    [(where, code)] = [b for b in blocks("python") if "def genuine" in b[1]]
    scope: dict[str, Any] = {}
    exec(compile(code, where, "exec"), scope)  # noqa: S102 - our own docs
    hook = Webhook("http://receiver.invalid", "json", b"shared-secret")
    import time

    body, headers = hook.request(AlertRecord("auth_error", "shop", FIRING, 1.0, None, "x"),
                                 time.time())
    assert scope["genuine"](body, headers[TIMESTAMP], headers[SIGNATURE], b"shared-secret")
    assert not scope["genuine"](body + b" ", headers[TIMESTAMP], headers[SIGNATURE],
                                b"shared-secret")


def command_lines() -> list[tuple[str, list[str]]]:
    """Each `tiktok-gateway ...` invocation in a shell block or an inline command line."""
    found = []
    for where, body in blocks("sh") + blocks(""):
        for line in body.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            # A command line starts with the command (perhaps its path, or sudo); output and
            # other tools' lines that merely name the service do not.
            match = re.match(r"(?:sudo\s+)?(?:\S*/)?tiktok-gateway\s+(.*)$", line)
            if not match or match.group(1).startswith("listening"):
                continue
            try:
                words = shlex.split(match.group(1).split("|")[0].split("&&")[0])
            except ValueError:
                continue
            found.append((where, words))
    return found


COMMANDS = typer.main.get_command(app).commands  # type: ignore[attr-defined]


@pytest.mark.parametrize(("where", "words"), command_lines(), ids=lambda v: v if isinstance(v, str) else "")
def test_command_lines_name_real_commands_and_options(where: str, words: list[str]) -> None:
    assert words and words[0] in COMMANDS, f"{where}: no command {words[:1]}"
    options = {opt for param in COMMANDS[words[0]].params for opt in param.opts}
    used = [w.strip("[]").split("=")[0] for w in words[1:] if w.strip("[]").startswith("--")]
    unknown = [w for w in used if w not in options and w != "--help"]
    assert unknown == [], f"{where}: tiktok-gateway {words[0]} has no {unknown}"


def test_the_python_programs_in_the_docs_run_and_print_what_they_say(
        capsys: pytest.CaptureFixture[str]) -> None:
    """A block that runs a program (`asyncio.run(main())`) runs, and each line it prints is
    what its `# ...` comment says."""
    programs = [b for b in blocks("python") if "asyncio.run(main())" in b[1]]
    assert programs
    for where, code in programs:
        exec(compile(code, where, "exec"), {"__name__": "__docs__"})  # noqa: S102 - our docs
        printed = capsys.readouterr().out.splitlines()
        promised = [line.split("# ")[1].strip() for line in code.splitlines()
                    if line.strip().startswith("print(") and "# " in line]
        assert printed == promised, where
