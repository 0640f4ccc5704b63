"""`refer`'s duplicate check is a search of personal data, audited as `find` is: a `search`
event (purpose `duplicates`) saying who, when, how many matched and their pseudonyms, never
the name, contact or date of birth looked for; on every store, verify passing after it."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path

from helpers import Clock, staffed_db
from pg import pg_server, pg_url
from test_cli import CLI, event_count, ok, refused

import se_flow
from se_flow.contract import WORKFLOW

__all__ = ["pg_server", "pg_url"]

DOB = dt.date(1990, 4, 1)


def _staffed(flow: se_flow.SEFlow) -> se_flow.SEFlow:
    flow.add_staff("ada", "Ada Admin", "admin", actor="ada")
    flow.add_staff("sam", "Sam Coach", "coach", actor="ada")
    flow.add_staff("ava", "Ava Auditor", "auditor", actor="ada")
    return flow


def _searches(flow: se_flow.SEFlow) -> list[se_flow.Event]:
    return [e for e in flow.events(actor="ada") if e.kind == "search"]


def _audited_duplicates(flow: se_flow.SEFlow) -> None:
    details = se_flow.PersonalDetails(name="Alex Doe", contact="07700 900123", date_of_birth=DOB)
    pid = flow.refer(details, source="GP", coach="sam").case.participant_id
    assert _searches(flow) == []

    again = se_flow.PersonalDetails(name="alex  DOE", date_of_birth=DOB)
    assert [p.participant_id for p in flow.duplicates(again)] == [pid]
    (first,) = _searches(flow)
    assert (first.kind, first.actor, first.role, first.case_id) == ("search", "sam", "coach", None)
    assert first.payload == {"matched": 1, "participants": [pid], "purpose": "duplicates"}

    # No match is an account too; an admin (who may refer) is audited like a coach.
    other = se_flow.PersonalDetails(name="Zed Quill", contact="zed@example.org")
    assert flow.duplicates(other, actor="ada") == []
    second = _searches(flow)[-1]
    assert (second.actor, second.role) == ("ada", "admin")
    assert second.payload == {"matched": 0, "participants": [], "purpose": "duplicates"}

    # An auditor sees no personal data: nothing is searched, so nothing is logged.
    before = len(flow.events(actor="ada"))
    assert flow.duplicates(again, actor="ava") == []
    assert len(flow.events(actor="ada")) == before

    # What was looked for is in no stored event (the first referral's own name aside).
    stored = json.dumps([e.payload for e in _searches(flow)], default=str).casefold()
    for text in ("alex", "doe", "zed", "quill", "zed@example.org", "1990-04-01", "07700"):
        assert text not in stored, text
    assert "zed" not in json.dumps(list(flow.store.event_rows()), default=str).casefold()
    assert flow.verify(actor="ada").ok


def test_duplicates_is_audited_on_the_memory_store(clock: Clock) -> None:
    with se_flow.SEFlow(se_flow.MemoryStore(WORKFLOW), WORKFLOW, actor="sam", clock=clock) as f:
        _audited_duplicates(_staffed(f))


def test_duplicates_is_audited_on_sqlite(tmp_path: Path, clock: Clock) -> None:
    with se_flow.open(tmp_path / "d.db", actor="sam", clock=clock) as flow:
        _audited_duplicates(_staffed(flow))


def test_duplicates_is_audited_on_postgresql(pg_url: str, clock: Clock) -> None:
    with se_flow.open(pg_url, actor="sam", clock=clock) as flow:
        _audited_duplicates(_staffed(flow))


def test_a_refused_duplicate_referral_still_accounts_for_its_search(tmp_path: Path) -> None:
    """Refused without --yes: no case written, but the check named who matched, so its search
    event stays; `audit verify` passes."""
    db = staffed_db(tmp_path / "c.db")
    with se_flow.open(db) as flow:
        pid = flow.refer(
            se_flow.PersonalDetails(name="Alex Doe", date_of_birth=DOB),
            source="GP",
            coach="sam",
            actor="sam",
        ).case.participant_id
    run = CLI(db)
    before = event_count(db)
    refused(run("refer", "Alex Doe", "--source", "GP", "--dob", "1990-04-01"), 5, "--yes")
    assert event_count(db) == before + 1
    with sqlite3.connect(db) as conn:
        kinds = [k for (k,) in conn.execute("SELECT kind FROM events WHERE seq > ?", (before,))]
        (payload,) = [
            json.loads(p)
            for (p,) in conn.execute("SELECT payload FROM events WHERE seq > ?", (before,))
        ]
    assert kinds == ["search"]
    assert payload["participants"] == [pid] and payload["purpose"] == "duplicates"
    ok(run("refer", "Alex Doe", "--source", "GP", "--dob", "1990-04-01", "--yes"))
    ok(run("audit", "verify", actor="ava"))
