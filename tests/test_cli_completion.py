"""Shell completion of case ids, triggers, record kinds and staff ids, driven as the shells drive
it (Typer's `_SE_FLOW_COMPLETE` protocol), on a small database; and the API read behind it.

A completion offers ids only (never a name), reads without writing or auditing, and fails
silently: no database, or nobody on the staff list at the keyboard, offers nothing and exits 0.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import LEAST_EVIDENCE, staffed_db
from typer.testing import CliRunner

import se_flow
from se_flow.cli import app

VAR = "_SE_FLOW_COMPLETE"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Path]:
    """Coaches sam and kim (lee a team leader, ada an admin, ava an auditor); C-1 engaged,
    C-2 just referred, C-3 closed."""
    path = staffed_db(tmp_path / "c.db")
    with se_flow.open(path, actor="sam") as flow:
        for name in ("Alex Doe", "Bo Rivers", "Cy Lake"):
            flow.refer(se_flow.PersonalDetails(name=name), source="GP")
        flow.advance("C-1", "engage")
        flow.close("C-3", "moved_away", note="to Leeds")
        flow.edit_staff("kim", active=False, actor="ada")
    yield path


def bash(db: Path | None, line: str, actor: str | None = "sam") -> tuple[list[str], str, int]:
    """What bash would offer after typing `line` (a trailing space: a new word)."""
    words = line.split(" ")
    env = {VAR: "complete_bash", "COMP_WORDS": line, "COMP_CWORD": str(len(words) - 1)}
    return _run(db, actor, env)


def zsh(db: Path | None, line: str, actor: str | None = "sam") -> tuple[list[str], str, int]:
    return _run(db, actor, {VAR: "complete_zsh", "_TYPER_COMPLETE_ARGS": line})


def _run(db: Path | None, actor: str | None, env: dict[str, str]) -> tuple[list[str], str, int]:
    full: dict[str, str | None] = {
        "SE_FLOW_DB": str(db) if db is not None else None,
        "SE_FLOW_ACTOR": actor,
        **env,
    }
    done = CliRunner().invoke(app, [], env=full, prog_name="se-flow")
    return done.stdout.split(), done.stderr, done.exit_code


def test_case_ids(db: Path) -> None:
    offered, err, code = bash(db, "se-flow show C")
    assert (offered, err, code) == (["C-1", "C-2", "C-3"], "", 0)
    assert bash(db, "se-flow history C-2")[0] == ["C-2"]
    assert bash(db, "se-flow export out --case C-")[0] == ["C-1", "C-2", "C-3"]
    assert bash(db, "se-flow show X")[0] == []


def test_triggers_open_from_the_case_stage(db: Path) -> None:
    referred, _, _ = bash(db, "se-flow advance C-2 ")
    engaged, _, _ = bash(db, "se-flow check C-1 ")
    assert "engage" in referred and "start_profiling" not in referred
    assert "start_profiling" in engaged and "engage" not in engaged
    assert bash(db, "se-flow advance C-1 start_")[0] == ["start_profiling"]
    # A closed case has no trigger open; an unknown case offers nothing rather than guessing.
    assert bash(db, "se-flow advance C-3 ")[0] == []
    assert bash(db, "se-flow advance C-99 ")[0] == []


def test_record_kinds(db: Path) -> None:
    offered, _, code = bash(db, "se-flow record C-1 ")
    needed = {kind for kind, _ in LEAST_EVIDENCE["customer_engagement"].records}
    assert code == 0 and needed <= set(offered)
    jobs = bash(db, "se-flow record C-1 job_")[0]
    assert {"job_analysis", "job_offer"} <= set(jobs) and all(k.startswith("job_") for k in jobs)


def test_staff_ids(db: Path) -> None:
    # Active staff only (kim has left); for --coach those who may hold cases.
    assert bash(db, "se-flow staff edit ")[0] == ["ada", "ava", "lee", "sam"]
    assert bash(db, "se-flow --as ")[0] == ["ada", "ava", "lee", "sam"]
    assert bash(db, "se-flow cases --coach ")[0] == ["lee", "sam"]
    assert bash(db, "se-flow assign C-1 s")[0] == ["sam"]
    assert bash(db, "se-flow due --coach l")[0] == ["lee"]
    assert bash(db, "se-flow audit grant-texts a")[0] == ["ada", "ava"]


def test_zsh(db: Path) -> None:
    offered, err, code = zsh(db, "se-flow record C-1 cons")
    assert code == 0 and err == "" and '"consent"' in " ".join(offered)


def test_never_a_name(db: Path) -> None:
    lines = [
        "se-flow show ",
        "se-flow find ",
        "se-flow erase ",
        "se-flow refer ",
        "se-flow cases --coach ",
        "se-flow staff edit ",
    ]
    offered = " ".join(w for line in lines for w in bash(db, line)[0])
    for name in ("Alex", "Rivers", "Lake", "Sam", "Patel", "Leader"):
        assert name not in offered


def test_no_database_offers_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "none.db"
    for line in ("se-flow show ", "se-flow advance C-1 ", "se-flow --as ", "se-flow record C-1 "):
        assert bash(missing, line) == ([], "", 0)
    assert not missing.exists()  # completion never creates a database


def test_not_staff_offers_nothing(db: Path) -> None:
    assert bash(db, "se-flow show C", actor="mallory") == ([], "", 0)
    assert bash(db, "se-flow show C", actor="kim") == ([], "", 0)  # no longer active


def test_db_option_on_the_line(db: Path, tmp_path: Path) -> None:
    # The database the line names, not the environment's.
    other = staffed_db(tmp_path / "other.db")
    assert bash(other, f"se-flow --db {db} show C")[0] == ["C-1", "C-2", "C-3"]
    assert bash(db, f"se-flow --db {other} show C")[0] == []


def test_as_the_shell_runs_it(db: Path) -> None:
    """The installed command, in its own process, as bash's completion function calls it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SE_FLOW_")}
    env |= {
        "SE_FLOW_DB": str(db),
        "SE_FLOW_ACTOR": "sam",
        VAR: "complete_bash",
        "COMP_WORDS": "se-flow advance C-2 eng",
        "COMP_CWORD": "3",
    }
    exe = Path(sys.executable).parent / "se-flow"
    done = subprocess.run([str(exe)], env=env, capture_output=True, text=True, timeout=60)
    assert (done.stdout.split(), done.stderr, done.returncode) == (["engage"], "", 0)
    env["SE_FLOW_DB"] = str(db.parent / "missing.db")
    done = subprocess.run([str(exe)], env=env, capture_output=True, text=True, timeout=60)
    assert (done.stdout.strip(), done.stderr, done.returncode) == ("", "", 0)


# --- the API read ---------------------------------------------------------------------------


def test_completions_read_only_and_unaudited(db: Path) -> None:
    with se_flow.open(db, actor="sam") as flow:
        before = flow.store.head()
        assert flow.completions("case") == ("C-1", "C-2", "C-3")
        assert flow.completions("case", "C-3") == ("C-3",)
        assert flow.completions("trigger", "start_p", case_id="C-1") == ("start_profiling",)
        assert "engage" in flow.completions("trigger")  # no case: every trigger
        assert flow.completions("record", "consent") == ("consent",)
        assert flow.completions("staff", "k") == ()  # kim is inactive
        assert flow.completions("coach") == ("lee", "sam")
        assert flow.store.head() == before


def test_completions_refusals(db: Path) -> None:
    with se_flow.open(db, actor="sam") as flow:
        with pytest.raises(se_flow.InvalidInput, match="unknown completion 'names'"):
            flow.completions("names")
        with pytest.raises(se_flow.SEFlowError):
            flow.completions("case", actor="mallory")
        with pytest.raises(se_flow.CaseNotFound):
            flow.completions("trigger", case_id="C-99")
