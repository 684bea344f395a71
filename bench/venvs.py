"""Virtualenvs for the contenders, each with its own dependencies (under bench/.venvs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).with_name(".venvs")


def venv_python(name: str, *packages: str) -> Path:
    """The Python of a virtualenv holding `packages`, created on first use."""
    home = ROOT / name
    python = home / "bin" / "python"
    marker = home / ".installed"
    if not marker.exists():
        subprocess.run([sys.executable, "-m", "venv", str(home)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *packages], check=True)
        marker.write_text(" ".join(packages))
    return python
