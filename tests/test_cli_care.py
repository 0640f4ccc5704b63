"""Care with what cannot be undone, and reads that are owed an account: a trigger that closes a
case asks as `close` does; `close ... other` needs a note (in the API too); every `--stage`
reads a number, title or id; `due` pages by whole cases as `cases` does, and an unknown
`--after` is named; `find` is an audited read on every store, refused for auditors and for an
empty search, and logs no search text."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import Clock, staffed_db
from pg import pg_server, pg_url
from test_cli import CLI, event_count, ok, refer, refused, walk
from typer.testing import Result

import se_flow
import se_flow.cli
from se_flow.cli import app
from se_flow.contract import WORKFLOW

__all__ = ["pg_server", "pg_url"]


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


def _in_terminal(
    db: Path, args: list[str], answer: str, monkeypatch: pytest.MonkeyPatch, actor: str = "sam"
) -> Result:
    monkeypatch.setattr(se_flow.cli, "_can_ask", lambda: True)
    return CLI(db).runner.invoke(
        app, ["--db", str(db), "--as", actor, *args], input=answer, env={"COLUMNS": "200"}
    )


def _status(db: Path, case_id: str) -> str:
    with se_flow.open(db, actor="ada", read_only=True) as flow:
        return flow.case(case_id).status.value


# --- advance: a trigger that closes the case asks first ------------------------------------------


@pytest.fixture
def finishing(db: Path) -> str:
    """C-1 in in-work support with its final review held: `complete` would close it."""
    case_id = refer(db)
    walk(db, case_id, "in_work_support")
    with se_flow.open(db, actor="sam") as flow:
        flow.record(case_id, "final_review", {"summary": "settled in", "fading_finished": True})
    return case_id


def test_closing_triggers_are_read_from_the_workflow() -> None:
    wf = WORKFLOW
    closing = {t.trigger for t in wf.transitions if t.dest == wf.final}
    assert {"complete", "withdraw", "close", "close_disengaged"} <= closing
    assert all(wf.closes(t) == (t in closing) for t in wf.triggers)
    assert not wf.closes("engage") and not wf.closes("pause")


def test_advance_to_a_close_is_refused_without_a_terminal_or_yes(
    db: Path, run: CLI, finishing: str
) -> None:
    before = event_count(db)
    err = refused(run("advance", finishing, "complete"), 5, "give --yes", "nothing written")
    assert f"closing case {finishing} cannot be undone" in err
    assert event_count(db) == before and _status(db, finishing) == "active"
    ok(run("advance", finishing, "complete", "--yes"))
    assert event_count(db) == before + 1 and _status(db, finishing) == "closed"


def test_advance_to_a_close_asks_in_a_terminal(
    db: Path, finishing: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = event_count(db)
    said = _in_terminal(db, ["advance", finishing, "complete"], "n\n", monkeypatch)
    assert said.exit_code == 1 and "nothing written" in said.output
    assert f"Close {finishing} (Complete support)?" in said.output
    assert event_count(db) == before and _status(db, finishing) == "active"
    said = _in_terminal(db, ["advance", finishing, "complete"], "y\n", monkeypatch)
    assert said.exit_code == 0, said.output
    assert _status(db, finishing) == "closed"


def test_close_disengaged_asks_too(db: Path, run: CLI, case: str) -> None:
    before = event_count(db)
    refused(run("advance", case, "close_disengaged", actor="lee"), 5, "give --yes")
    assert event_count(db) == before


def test_a_move_that_does_not_close_does_not_ask(run: CLI, db: Path) -> None:
    case_id = refer(db)
    ok(run("advance", case_id, "engage"))  # no terminal, no --yes: not refused
    assert _status(db, case_id) == "active"


# --- close ... other needs a note --------------------------------------------------------------


def test_close_other_without_a_note_is_refused_before_asking(
    db: Path, run: CLI, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = event_count(db)
    refused(run("close", case, "other", "--yes"), 5, "--note missing", "'other'")
    refused(run("close", case, "other", "--note", "  ", "--yes"), 5, "--note missing")
    said = _in_terminal(db, ["close", case, "other"], "y\n", monkeypatch)
    assert said.exit_code == 5 and "--note missing" in said.stderr
    assert "Close " not in said.output  # refused, not asked
    assert event_count(db) == before and _status(db, case) == "active"
    ok(run("close", case, "other", "--note", "the service ended", "--yes"))
    assert _status(db, case) == "closed"


def test_close_other_needs_a_note_in_the_api_too(flow: se_flow.SEFlow) -> None:
    case_id = flow.refer("Alex Doe", source="GP").case.id
    before = len(flow.events(actor="ada"))
    with pytest.raises(se_flow.NoteRequired) as refusal:
        flow.close(case_id, "other", actor="lee")
    assert refusal.value.reason == "other" and refusal.value.exit_code == 5
    with pytest.raises(se_flow.NoteRequired):
        flow.advance(case_id, "close", outcome="other", actor="lee")
    with pytest.raises(se_flow.NoteRequired):
        flow.advance(case_id, "close", outcome="other", reason="other", actor="lee")
    assert len(flow.events(actor="ada")) == before
    flow.close(case_id, "moved_away", actor="lee")  # the other reasons need none
    second = flow.refer("Bea Lind", source="GP").case.id
    done = flow.advance(second, "close", outcome="other", reason="service ended", actor="lee")
    assert done.case.status is se_flow.Status.CLOSED


# --- every --stage reads a number, a title or an id ---------------------------------------------


@pytest.mark.parametrize("named", ["1", "customer engagement", "Customer  Engagement"])
def test_export_stage_takes_the_number_title_or_id(
    run: CLI, case: str, tmp_path: Path, named: str
) -> None:
    out = tmp_path / "out"
    made = run.json("export", str(out), "--stage", named, actor="ada")
    assert made["request"]["filters"]["stage"] == "customer_engagement"
    assert made["tables"]["clients"]["rows"] == 1
    cases = run.json("cases", "--stage", named)
    assert [c["id"] for c in cases] == [case]


def test_an_unknown_export_stage_is_refused_naming_the_stages(
    db: Path, run: CLI, case: str, tmp_path: Path
) -> None:
    before = event_count(db)
    out = tmp_path / "out"
    refused(run("export", str(out), "--stage", "9", actor="ada"), 5, "unknown stage '9'", "1 ")
    assert event_count(db) == before and not out.exists()


def test_every_stage_option_reads_stages_alike() -> None:
    """Each `--stage` in the CLI goes through the one resolver: its help says so."""
    from typer.main import get_command

    def options(command: object, path: str = "") -> Iterator[tuple[str, object]]:
        for p in getattr(command, "params", ()):
            if "--stage" in getattr(p, "opts", ()):
                yield path, p
        for name, sub in getattr(command, "commands", {}).items():
            yield from options(sub, f"{path} {name}".strip())

    found = dict(options(get_command(app)))
    assert set(found) == {"cases", "export"}
    assert all("number" in str(getattr(p, "help", "")) for p in found.values())


# --- due pages by whole cases; an unknown --after is named -------------------------------------


def _due(run: CLI, *args: str) -> list[dict[str, object]]:
    items: list[dict[str, object]] = run.json("due", "--all", "--within", "400", *args)
    return items


def test_due_pages_by_whole_cases(db: Path, run: CLI) -> None:
    for name in ("Alex Doe", "Bea Lind", "Cy Moor"):
        walk(db, refer(db, name), "customer_engagement")
    everything = _due(run)
    order = list(dict.fromkeys(str(i["case_id"]) for i in everything))
    assert len(order) == 3
    first = _due(run, "--limit", "1")
    assert {i["case_id"] for i in first} == {order[0]}
    assert first == [i for i in everything if i["case_id"] == order[0]]
    rest = _due(run, "--after", order[0])
    assert rest == [i for i in everything if i["case_id"] != order[0]]
    second = _due(run, "--limit", "1", "--after", order[0])
    assert {i["case_id"] for i in second} == {order[1]}
    assert _due(run, "--after", order[2]) == []
    pages = _due(run, "--limit", "2") + _due(run, "--limit", "2", "--after", order[1])
    assert sorted(map(json.dumps, pages)) == sorted(map(json.dumps, everything))


def test_an_unknown_after_is_named(db: Path, run: CLI, case: str) -> None:
    refused(run("due", "--all", "--after", "C-99"), 4, "no case 'C-99'")
    refused(run("cases", "--after", "C-99"), 4, "no case 'C-99'")
    refused(run("cases", "--after", "C-99", "--sort", "days"), 4, "no case 'C-99'")
    with se_flow.open(db, actor="sam") as flow:
        closed = flow.refer("Dee Ray", source="GP").case.id
        flow.withdraw(closed, reason="moving")
    refused(run("due", "--all", "--after", closed), 4, f"case '{closed}' is not on this due")
    ok(run("cases", "--after", case))  # a real case: an empty page is a real answer


# --- find is an audited read ---------------------------------------------------------------------


def _searches(db: Path) -> list[sqlite3.Row]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return list(conn.execute("SELECT * FROM events WHERE kind = 'search' ORDER BY seq"))


def test_find_logs_a_search_event_and_verify_passes(db: Path, run: CLI, case: str) -> None:
    ok(run("find", "alex", actor="lee"))
    ok(run("find", "nobody-at-all"))
    found = _searches(db)
    assert [(r["actor"], r["role"], r["case_id"]) for r in found] == [
        ("lee", "team_leader", None),
        ("sam", "coach", None),
    ]
    with se_flow.open(db, actor="ada", read_only=True) as flow:
        participant = flow.case(case).participant_id
        payloads = [e.payload for e in flow.events() if e.kind == "search"]
        assert flow.verify().ok
    assert payloads == [
        {"matched": 1, "participants": [participant]},
        {"matched": 0, "participants": []},
    ]
    # The search text is in no stored event, hashed row or kept-apart text.
    with sqlite3.connect(db) as conn:
        dump = "\n".join(conn.iterdump()).casefold()
    assert "nobody-at-all" not in dump
    ok(run("audit", "verify", actor="ava"))


def test_find_refused_for_an_auditor_and_an_empty_search_logs_nothing(
    db: Path, run: CLI, case: str
) -> None:
    before = event_count(db)
    refused(run("find", "alex", actor="ava"), 7, "only coaches and team leaders")
    refused(run("find", "alex", actor="ada"), 7, "only coaches and team leaders")
    refused(run("find", "   "), 5, "search text is empty")
    refused(run("find", ""), 5, "search text is empty")
    assert event_count(db) == before and _searches(db) == []


def test_find_on_a_store_that_cannot_log_it_is_refused(db: Path, case: str) -> None:
    with (
        se_flow.open(db, actor="sam", read_only=True) as flow,
        pytest.raises(se_flow.StoreError, match="read-only"),
    ):
        flow.find("alex")
    assert _searches(db) == []


def _staffed(flow: se_flow.SEFlow) -> se_flow.SEFlow:
    flow.add_staff("ada", "Ada Admin", "admin", actor="ada")
    flow.add_staff("sam", "Sam Coach", "coach", actor="ada")
    flow.add_staff("ava", "Ava Auditor", "auditor", actor="ada")
    return flow


def _audited_find(flow: se_flow.SEFlow) -> None:
    pid = flow.refer(se_flow.PersonalDetails(name="Alex Doe"), source="GP").case.participant_id
    before = len(flow.events(actor="ada"))
    with pytest.raises(se_flow.PermissionDenied):
        flow.find("alex", actor="ava")
    with pytest.raises(se_flow.InvalidInput):
        flow.find(" ")
    assert len(flow.events(actor="ada")) == before
    assert [p.participant_id for p in flow.find("ALEX")] == [pid]
    last = flow.events(actor="ada")[-1]
    assert (last.kind, last.actor, last.case_id) == ("search", "sam", None)
    assert last.payload == {"matched": 1, "participants": [pid]}
    assert "alex" not in json.dumps(list(flow.store.event_rows()), default=str).casefold()
    assert flow.verify(actor="ada").ok


def test_find_is_audited_on_the_memory_store(clock: Clock) -> None:
    with se_flow.SEFlow(se_flow.MemoryStore(WORKFLOW), WORKFLOW, actor="sam", clock=clock) as f:
        _audited_find(_staffed(f))


def test_find_is_audited_on_postgresql(pg_url: str, clock: Clock) -> None:
    with se_flow.open(pg_url, actor="sam", clock=clock) as flow:
        _audited_find(_staffed(flow))
