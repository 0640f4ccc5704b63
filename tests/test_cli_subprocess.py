"""The installed `se-flow` script, run as a user runs it: exit codes, stderr, `--json` that
parses, shell completion, and the checkout's front door `python cli.py`."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _script() -> Path:
    beside = Path(sys.executable).parent / "se-flow"
    if beside.exists():
        return beside
    found = shutil.which("se-flow")
    assert found, "no se-flow script: install the package (pip install -e .)"
    return Path(found)


SCRIPT = _script()


def se_flow(
    *args: str, db: Path | None = None, actor: str = "ada", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SE_FLOW_")}
    full_env.update({"COLUMNS": "160", **(env or {})})
    head = ["--db", str(db)] if db is not None else []
    return subprocess.run(
        [str(SCRIPT), *head, "--as", actor, *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=120,
    )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "caseload.db"
    done = se_flow("init", "--name", "Ada Admin", db=path)
    assert done.returncode == 0, done.stderr
    done = se_flow("staff", "add", "sam", "--name", "Sam", "--role", "coach", db=path)
    assert done.returncode == 0, done.stderr
    return path


def test_a_coach_refers_and_reads_the_caseload_as_json(db: Path) -> None:
    done = se_flow("refer", "Alex Doe", "--source", "GP", db=db, actor="sam")
    assert done.returncode == 0, done.stderr
    assert "case C-1" in done.stdout
    cases = json.loads(se_flow("cases", "--json", db=db).stdout)
    assert [(c["id"], c["state"], c["coach"]) for c in cases] == [("C-1", "referred", "sam")]
    events = json.loads(se_flow("history", "C-1", "--json", db=db).stdout)
    assert events[0]["kind"] == "referral"
    verified = se_flow("audit", "verify", "--json", db=db)
    assert verified.returncode == 0 and json.loads(verified.stdout)["ok"] is True


def test_refusals_are_one_line_with_their_exit_code(db: Path, tmp_path: Path) -> None:
    done = se_flow("show", "C-99", db=db)
    assert done.returncode == 4
    assert done.stderr == "error: no case 'C-99'\n" and done.stdout == ""

    se_flow("refer", "Alex Doe", "--source", "GP", db=db, actor="sam")
    se_flow("advance", "C-1", "engage", db=db, actor="sam")
    done = se_flow("advance", "C-1", "start_profiling", db=db, actor="sam")
    assert done.returncode == 6
    lines = done.stderr.splitlines()
    assert lines[0].startswith("error: case C-1: start_profiling refused")
    assert len(lines) == 5 and all(line.startswith("  ✗ ") for line in lines[1:])

    done = se_flow("record", "C-1", "consent", "participation", db=db, actor="sam")
    assert done.returncode == 5 and "'participation' is not field=value" in done.stderr

    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"not sqlite " * 100)
    done = se_flow("cases", db=corrupt)
    assert done.returncode == 10 and done.stderr.startswith("error: ")
    assert "Traceback" not in done.stderr


def test_a_broken_chain_exits_9(db: Path) -> None:
    se_flow("refer", "Alex Doe", "--source", "GP", db=db, actor="sam")
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TRIGGER events_append_only_delete")
        conn.execute("DELETE FROM events WHERE seq = 2")
    done = se_flow("audit", "verify", db=db)
    assert done.returncode == 9
    assert done.stderr.startswith("error: audit chain broken at event")
    assert len(done.stderr.splitlines()) == 1


def test_the_demo_runs_on_a_fresh_machine(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    done = subprocess.run(
        [str(SCRIPT), "demo"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("SE_FLOW_")}, **env},
    )
    assert done.returncode == 0, done.stderr
    assert "chain ok:" in done.stdout and "13 case(s)" in done.stdout
    assert list(tmp_path.rglob("*.db")) == []  # in memory: nothing left behind


def test_shell_completion_completes_commands_and_options() -> None:
    # Typer otherwise guesses the shell from the processes above this one (shellingham) and
    # ignores the one named: run under `sh -c` (a CI runner, a detached job) it refused "sh".
    script = subprocess.run(
        [str(SCRIPT), "--show-completion", "bash"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"},
    )
    assert script.returncode == 0 and "_SE_FLOW_COMPLETE" in script.stdout
    env = {**os.environ, "_SE_FLOW_COMPLETE": "complete_bash", "COMP_CWORD": "2"}
    done = subprocess.run(
        [str(SCRIPT)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "COMP_WORDS": "se-flow cases --st"},
    )
    assert done.stdout.split() == ["--stage", "--status", "--stuck"]


def test_the_front_door_in_the_checkout() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and "audit" in done.stdout and "demo" in done.stdout
    done = subprocess.run(
        [sys.executable, "-m", "se_flow.cli", "version"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stdout.strip()


def test_listing_cases_does_not_import_pydantic(db: Path) -> None:
    """Typer 0.2x imports pydantic (~90 ms) to coerce option values; the CLI's plain-value
    shortcut keeps it off the start-up path of every command here."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SE_FLOW_")}
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "se_flow.cli", "--db", str(db),
         "--as", "ada", "cases", "--coach", "sam", "--limit", "5"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if "|" in line}
    assert "typer" in imported and "se_flow" in imported
    assert not {name for name in imported if name.startswith("pydantic")}


@pytest.mark.parametrize("args", [["cases"], ["staff", "list"], ["history", "C-1", "--all"]])
def test_a_reader_that_stops_reading_ends_it_as_a_closed_pipe_ends_other_tools(
    db: Path, args: list[str]
) -> None:
    # `se-flow ... | head -1` under `set -o pipefail`: 141, as `git log | head -1` gives, not
    # 1 ("se-flow failed") and not a traceback; nothing said on stderr.
    assert se_flow("refer", "Alex Doe", "--source", "GP", db=db, actor="sam").returncode == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("SE_FLOW_")}
    proc = subprocess.Popen(
        [str(SCRIPT), "--db", str(db), "--as", "ada", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**env, "COLUMNS": "80"},
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # gone before se-flow writes a line
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 141, err
    assert err == b""
