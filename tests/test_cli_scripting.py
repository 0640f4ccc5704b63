"""Scripting and care: --json on writes (the case, event and record written), --quiet (just
the id), --version, confirmations on what cannot be undone (refused with no terminal and no
--yes), and every `next:` or `ready:` hint the CLI prints works as printed."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from helpers import staffed_db
from test_cli import CLI, event_count, ok, refer, refused, walk
from typer.testing import Result

import se_flow
import se_flow.cli
from se_flow.cli import app


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return staffed_db(tmp_path / "caseload.db")


@pytest.fixture
def run(db: Path) -> CLI:
    return CLI(db)


@pytest.fixture
def case(db: Path) -> str:
    case_id = refer(db)
    walk(db, case_id, "customer_engagement")
    return case_id


def test_writes_speak_json(run: CLI, case: str) -> None:
    made = run.json("record", case, "consent", "participation=yes", "data_processing=yes")
    assert made["case"]["id"] == case and made["event"]["kind"] == "record"
    assert made["record"]["kind"] == "consent" and made["record"]["seq"] == made["event"]["seq"]
    referred = run.json("refer", "Bea Lind", "--source", "GP")
    assert referred["case"]["state"] == "referred" and referred["event"]["kind"] == "referral"
    assert referred["record"]["kind"] == "referral"
    paused = run.json("pause", case, "--reason", "ill", "--review", "today")
    assert paused["case"]["status"] == "paused" and paused["event"]["kind"] == "pause"
    withdrawn = run.json("withdraw", referred["case"]["id"], "--reason", "moved", "--yes")
    assert withdrawn["case"]["status"] == "closed"


def test_quiet_prints_only_the_id(run: CLI, case: str) -> None:
    out = ok(run("--quiet", "record", case, "note", "text=called"))
    assert re.fullmatch(rf"{case} \d+\n", out)
    assert ok(run("-q", "refer", "Bea Lind", "--source", "GP")) == "C-2\n"
    assert ok(run("-q", "pause", case, "--reason", "ill", "--review", "today")) == f"{case}\n"


def test_version() -> None:
    result = CLI(Path("unused.db")).raw("--version")
    assert result.exit_code == 0 and result.stdout == f"se-flow {se_flow.__version__}\n"


@pytest.mark.parametrize(
    "command",
    [
        ("withdraw", "{case}", "--reason", "moving"),
        ("close", "{case}", "moved_away"),
        ("erase", "{participant}", "--reason", "asked to"),
    ],
    ids=lambda c: c[0],
)
def test_what_cannot_be_undone_is_refused_without_a_terminal_or_yes(
    db: Path, run: CLI, case: str, command: tuple[str, ...]
) -> None:
    with se_flow.open(db, actor="ada") as flow:
        participant = flow.case(case).participant_id
    args = [a.format(case=case, participant=participant) for a in command]
    actor = "ada" if command[0] == "erase" else "sam"
    before = event_count(db)
    refused(run(*args, actor=actor), 5, "give --yes", "nothing written")
    assert event_count(db) == before
    ok(run(*args, "--yes", actor=actor))
    assert event_count(db) == before + 1


def test_a_terminal_is_asked_and_no_means_nothing_written(
    db: Path, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(se_flow.cli, "_can_ask", lambda: True)
    before = event_count(db)
    said = _in_terminal(db, ["withdraw", case, "--reason", "moving"], "n\n")
    assert said.exit_code == 1 and "nothing written" in said.output
    assert event_count(db) == before
    said = _in_terminal(db, ["withdraw", case, "--reason", "moving"], "y\n")
    assert said.exit_code == 0, said.output
    assert event_count(db) == before + 1


def _in_terminal(db: Path, args: list[str], answer: str) -> Result:
    return CLI(db).runner.invoke(
        app, ["--db", str(db), "--as", "sam", *args], input=answer, env={"COLUMNS": "200"}
    )


HINT = re.compile(r"(?:next|ready): (se-flow [^;]*?)\s*$")


def test_every_printed_hint_works_as_printed(
    db: Path, run: CLI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Walk a case through the commands a coach types, and run every `next:` and `ready:`
    command printed on the way (in a terminal that says yes), in order."""
    hints: list[str] = []

    def typed(*args: str, actor: str = "sam") -> None:
        result = run(*args, actor=actor)
        assert result.exit_code in (0, 6), result.output
        hints.extend(m.group(1) for line in result.stdout.splitlines() if (m := HINT.search(line)))

    typed("refer", "Alex Doe", "--source", "GP")
    typed("advance", "C-1", "engage")
    typed("check", "C-1", "pause", "--reason", "in hospital", "--review", "today")
    typed("check", "C-1", "resume")
    typed("find", "alex")
    typed("record", "C-1", "note", "text=called")
    typed("check", "C-1", "withdraw", "--reason", "moving away")
    typed("check", "C-1", "close", "--close-reason", "moved_away")
    assert len(hints) >= 6, hints
    assert any(h.startswith("se-flow pause C-1 --reason") for h in hints), hints
    ran: list[list[str]] = []
    for hint in hints:
        argv = shlex.split(hint)[1:]
        if argv[0] in ("withdraw", "close") and any(r[0] in ("withdraw", "close") for r in ran):
            continue  # the case is closed by then: one closing hint is enough
        if argv[0] == "resume" and not any(r[0] == "pause" for r in ran):
            continue  # resume's hint was printed for a paused case; run after the pause
        monkeypatch.setattr(se_flow.cli, "_can_ask", lambda: True)
        result = _in_terminal(run.db, argv, "y\n")
        assert result.exit_code == 0, f"{hint}\n{result.output}"
        ran.append(argv)
    assert any(r[0] == "withdraw" for r in ran) or any(r[0] == "close" for r in ran)
    assert json.loads(ok(run("show", "C-1", "--json")))["case"]["status"] == "closed"
