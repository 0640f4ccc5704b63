"""The README is a test: every shell block runs as written, in order, on a fresh machine (a new
home folder, no se-flow settings), and so does the library example. A walk-through that fails
when a new user types it in is a bug."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.S | re.M)
# The two set-up commands create virtual environments; CI runs those itself (.ci/run).
SET_UP = "python3 -m venv"


def _blocks(language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(README.read_text()) if lang == language]


def _fresh_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SE_FLOW_")}
    env["HOME"] = str(home)
    env["XDG_CONFIG_HOME"] = str(home / ".config")
    # `se-flow` as the README's set-up leaves it: installed beside this Python.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def test_every_fence_says_its_language() -> None:
    """A shell block fenced as another dialect would escape this test (plain fences are
    diagrams and folder trees, never commands)."""
    langs = {lang for lang, _ in FENCE.findall(README.read_text())}
    assert not langs & {"bash", "shell", "console", "zsh", "shell-session"}, langs
    assert "sh" in langs and "python" in langs


def test_every_shell_block_runs_as_written(tmp_path: Path) -> None:
    blocks = [b for b in _blocks("sh") if SET_UP not in b]
    assert len(blocks) >= 3, "the walk-throughs went missing"
    script = "set -euo pipefail\n" + "\n".join(blocks)
    done = subprocess.run(
        ["bash", "-c", script],
        cwd=tmp_path,
        env=_fresh_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr}"
    out = done.stdout + done.stderr
    assert "unexpected" not in out and "Traceback" not in out
    # The walk-through reaches a job start, and the auditor's checks pass.
    assert "start_job: Job Matching → In-work Support" in done.stdout
    assert "export ok" in done.stdout
    assert "only appended to since" in done.stdout
    assert (tmp_path / "caseload.db").exists()  # SE_FLOW_DB as the README set it


def test_the_set_up_commands_are_exactly_two() -> None:
    set_up = [b for b in _blocks("sh") if SET_UP in b]
    assert len(set_up) == 2
    assert all(b.count("\n") == 1 for b in set_up), "each set-up command is one line"
    assert "se-flow demo" in set_up[0] and "pytest" in set_up[1]


def test_the_library_example_runs(tmp_path: Path) -> None:
    (example,) = _blocks("python")
    done = subprocess.run(
        [sys.executable, "-c", example],
        cwd=tmp_path,
        env=_fresh_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "Verification(ok=True" in done.stdout
    assert "first meeting" in done.stdout  # the refused guards it prints, in words
