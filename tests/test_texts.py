"""Free text outside the hashed log: kept apart with a salted hash in the event, erasable by an
admin without breaking the chain, withheld from auditors unless granted (`se_flow._texts`)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from helpers import Steps, drop_triggers, sqlite_conn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import se_flow
from se_flow import SEFlow
from se_flow._texts import ERASED, WITHHELD

NOTE = "lives with sister Jane Doe, 12 High St"


def _noted(flow: SEFlow, steps: Steps) -> tuple[se_flow.Case, int]:
    case = steps.refer()
    record = flow.record(case.id, "note", {"text": NOTE}).record
    return case, record.seq


def test_a_coach_reads_the_text_and_the_file_row_does_not_hold_it(
    flow: SEFlow, steps: Steps
) -> None:
    case, seq = _noted(flow, steps)
    assert flow.records(case.id, actor="sam")[-1]["text"] == NOTE
    assert flow.history(case.id, actor="sam")[-1].payload["record"]["fields"]["text"] == NOTE
    (row,) = sqlite_conn(flow).execute("SELECT * FROM events WHERE seq = ?", (seq,)).fetchall()
    assert "Jane" not in str(row)


def test_an_auditor_reads_withheld_until_an_admin_grants_the_texts(
    flow: SEFlow, steps: Steps
) -> None:
    case = steps.refer()
    flow.advance(case.id, "engage", reason="met at the job centre with Jane")
    flow.record(case.id, "note", {"text": NOTE})
    seen = flow.history(case.id, actor="ava")
    assert seen[-1].payload["record"]["fields"]["text"] == WITHHELD
    assert seen[-2].reason == WITHHELD
    assert flow.records(case.id, actor="ava")[-1]["text"] == WITHHELD
    grant = flow.grant_texts("ava", reason="annual audit", actor="ada").event
    assert (grant.kind, grant.payload) == ("text_grant", {"staff_id": "ava", "granted": True})
    assert flow.history(case.id, actor="ava")[-2].reason == "met at the job centre with Jane"
    flow.grant_texts("ava", reason="audit over", granted=False, actor="ada")
    assert flow.records(case.id, actor="ava")[-1]["text"] == WITHHELD
    assert flow.verify().ok


@pytest.mark.parametrize("actor", ["sam", "lee", "ava"])
def test_only_an_admin_grants_or_erases_texts(flow: SEFlow, steps: Steps, actor: str) -> None:
    case, seq = _noted(flow, steps)
    head = flow.store.head()
    with pytest.raises(se_flow.PermissionDenied, match="only an admin"):
        flow.grant_texts("ava", reason="x", actor=actor)
    with pytest.raises(se_flow.PermissionDenied, match="only an admin"):
        flow.erase_text(seq, "record.text", reason="asked", actor=actor)
    assert flow.store.head() == head
    assert flow.records(case.id)[-1]["text"] == NOTE


def test_show_and_history_pages_read_texts_as_history_does(flow: SEFlow, steps: Steps) -> None:
    case, _ = _noted(flow, steps)
    view = flow.case_view(case.id, actor="sam")
    assert view.records[-1]["text"] == NOTE
    assert view.history.events[-1].payload["record"]["fields"]["text"] == NOTE
    audited = flow.case_view(case.id, actor="ava")
    assert audited.records[-1]["text"] == WITHHELD
    page = flow.history_page(case.id, actor="ava")
    assert page.events[-1].payload["record"]["fields"]["text"] == WITHHELD
    assert flow.history_page(case.id, actor="sam").events[-1].payload["record"]["fields"] == {
        "text": NOTE
    }


def test_a_grant_is_for_auditors_and_not_given_twice(flow: SEFlow) -> None:
    head = flow.store.head()
    with pytest.raises(se_flow.InvalidInput, match="not an auditor"):
        flow.grant_texts("sam", reason="x", actor="ada")
    with pytest.raises(se_flow.InvalidInput, match="not granted"):
        flow.grant_texts("ava", reason="x", granted=False, actor="ada")
    with pytest.raises(se_flow.StaffNotFound):
        flow.grant_texts("nobody", reason="x", actor="ada")
    assert flow.store.head() == head


def test_erase_then_verify_passes_and_says_erased(flow: SEFlow, steps: Steps) -> None:
    case, seq = _noted(flow, steps)
    event = flow.erase_text(seq, "record.text", reason="request 2026-11-01", actor="ada").event
    assert event.kind == "text_erasure" and event.payload == {"texts": [[seq, "record.text"]]}
    assert "Jane" not in json.dumps(dict(event.payload))
    assert flow.records(case.id)[-1]["text"] == ERASED
    result = flow.verify()
    assert result.ok, result.problem
    assert result.erased_texts == 1 and "erased" in (result.texts or "")
    row = sqlite_conn(flow).execute("SELECT salt, text FROM texts WHERE seq = ?", (seq,)).fetchone()
    assert row == (None, None)


def test_erasing_bad_texts_is_refused_and_writes_nothing(flow: SEFlow, steps: Steps) -> None:
    _, seq = _noted(flow, steps)
    head = flow.store.head()
    with pytest.raises(se_flow.TextNotFound, match="no such event"):
        flow.erase_text(999, "record.text", reason="x", actor="ada")
    with pytest.raises(se_flow.TextNotFound, match=r"keeps these apart: record\.text"):
        flow.erase_text(seq, "reason", reason="x", actor="ada")
    with pytest.raises(se_flow.InvalidInput, match="seq"):
        flow.erase_text(0, "reason", reason="x", actor="ada")
    with pytest.raises(se_flow.InvalidInput, match="needs a reason"):
        flow.erase_text(seq, "record.text", reason=" ", actor="ada")
    assert flow.store.head() == head
    flow.erase_text(seq, "record.text", reason="x", actor="ada")
    head = flow.store.head()
    with pytest.raises(se_flow.TextAlreadyErased):
        flow.erase_text(seq, "record.text", reason="x", actor="ada")
    assert flow.store.head() == head


def test_erase_personal_data_erases_the_participants_texts(flow: SEFlow, steps: Steps) -> None:
    case, seq = _noted(flow, steps)
    other, _ = _noted(flow, steps)
    flow.erase_personal_data(case.participant_id, reason="erasure request", actor="ada")
    assert flow.records(case.id)[-1]["text"] == ERASED
    assert flow.records(other.id)[-1]["text"] == NOTE
    erasure = flow.events()[-1]
    assert [seq, "record.text"] in erasure.payload["texts"]
    result = flow.verify()
    assert result.ok and result.erased_texts == len(erasure.payload["texts"])


def _tampered(flow: SEFlow, sql: str, *params: object) -> se_flow.Verification:
    conn = sqlite_conn(flow)
    drop_triggers(conn)
    conn.execute(sql, params)
    return flow.verify()


def test_a_text_edited_in_its_table_is_caught(flow: SEFlow, steps: Steps) -> None:
    _, seq = _noted(flow, steps)
    result = _tampered(flow, "UPDATE texts SET text = 'nothing to see' WHERE seq = ?", seq)
    assert not result.ok and result.bad_seq == seq
    assert "altered" in (result.problem or "")


def test_a_text_deleted_without_an_erase_event_is_caught(flow: SEFlow, steps: Steps) -> None:
    _, seq = _noted(flow, steps)
    result = _tampered(flow, "DELETE FROM texts WHERE seq = ?", seq)
    assert not result.ok and result.bad_seq == seq and "missing" in (result.problem or "")


def test_a_text_cleared_without_an_erase_event_is_caught(flow: SEFlow, steps: Steps) -> None:
    _, seq = _noted(flow, steps)
    result = _tampered(flow, "UPDATE texts SET salt = NULL, text = NULL WHERE seq = ?", seq)
    assert not result.ok and result.bad_seq == seq
    assert "without an erasure event" in (result.problem or "")


def test_the_triggers_refuse_a_text_changed_or_deleted(flow: SEFlow, steps: Steps) -> None:
    _, seq = _noted(flow, steps)
    conn = sqlite_conn(flow)
    with pytest.raises(sqlite3.DatabaseError, match="only ever erased"):
        conn.execute("UPDATE texts SET salt = NULL, text = NULL WHERE seq = ?", (seq,))
    with pytest.raises(sqlite3.DatabaseError, match="never deleted"):
        conn.execute("DELETE FROM texts WHERE seq = ?", (seq,))
    with pytest.raises(sqlite3.DatabaseError, match="only with its event"):
        conn.execute("INSERT INTO texts VALUES (1, 'reason', '00', 'forged')")
    assert flow.verify().ok


def test_old_events_keep_their_inline_text_and_still_verify(flow: SEFlow, steps: Steps) -> None:
    """An event written before texts were kept apart holds its text in its hashed row, and no
    `texts` key in its hash: it verifies as before, reads as before, and cannot be erased."""
    from se_flow._audit import row_hash

    case, seq = _noted(flow, steps)
    conn = sqlite_conn(flow)
    drop_triggers(conn)
    # Rewrite the log as se-flow before this change wrote it: the text inline, no `texts`.
    rows = [dict(r) for r in flow.store.event_rows()]
    conn.execute("DELETE FROM texts")
    prev = "0" * 64
    for row in rows:
        row["prev_hash"] = prev
        if row["seq"] == seq:
            payload = json.loads(row["payload"])
            payload["record"]["fields"]["text"] = NOTE
            row["payload"] = se_flow._audit.canonical(payload)
            row["texts"] = None
        row["hash"] = row_hash(row)
        prev = row["hash"]
        conn.execute(
            "UPDATE events SET payload = ?, texts = ?, prev_hash = ?, hash = ? WHERE seq = ?",
            (row["payload"], row["texts"], row["prev_hash"], row["hash"], row["seq"]),
        )
    conn.execute("UPDATE records SET fields = ? WHERE seq = ?", (json.dumps({"text": NOTE}), seq))
    assert flow.verify().ok
    assert flow.history(case.id, actor="ava")[-1].payload["record"]["fields"]["text"] == NOTE
    with pytest.raises(se_flow.TextNotFound, match="inside its hashed row"):
        flow.erase_text(seq, "record.text", reason="x", actor="ada")


def test_an_auditors_export_shows_withheld_and_verifies(
    flow: SEFlow, steps: Steps, tmp_path: Path
) -> None:
    case, seq = _noted(flow, steps)
    flow.advance(case.id, "engage", reason="met Jane")
    out = tmp_path / "audit"
    manifest = flow.export(out, fmt="jsonl", actor="ava")
    assert "texts" in manifest.tables
    texts = [json.loads(line) for line in (out / "texts.jsonl").read_text().splitlines()]
    assert {(t["seq"], t["slot"], t["state"], t["text"]) for t in texts} >= {
        (seq, "record.text", "withheld", None)
    }
    assert "Jane" not in "".join(p.read_text() for p in out.iterdir())
    assert flow.events()[-1].payload["texts"] == "withheld"
    assert flow.verify_export(out).ok


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "json"])
def test_a_granted_export_holds_the_texts_and_an_edit_is_caught(
    flow: SEFlow, steps: Steps, tmp_path: Path, fmt: str
) -> None:
    from se_flow._verify_export import _check_texts

    _noted(flow, steps)
    flow.erase_text(_noted(flow, steps)[1], "record.text", reason="asked", actor="ada")
    flow.grant_texts("ava", reason="audit", actor="ada")
    out = tmp_path / fmt
    manifest = flow.export(out, fmt=fmt, actor="ava")
    assert flow.verify_export(out).ok
    name = manifest.tables["texts"]["file"]
    body = (out / name).read_text()
    assert NOTE in body and "erased" in body
    # A text changed in the file (and the manifest's hashes fixed) fails against its event.
    (out / name).write_text(body.replace("Jane", "John"))
    assert _check_texts(out, manifest) and "altered" in _check_texts(out, manifest)[0]


def test_texts_are_exported_only_with_their_events(flow: SEFlow, tmp_path: Path) -> None:
    with pytest.raises(se_flow.InvalidExportRequest, match="only with the events"):
        flow.export(tmp_path / "x", tables=["texts"], actor="ava")


# --- property: random histories, random erasures, any tampering caught ------------------------

_ACTIONS = st.lists(
    st.tuples(st.sampled_from(["note", "reason", "erase"]), st.text(min_size=1, max_size=20)),
    min_size=1,
    max_size=8,
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(actions=_ACTIONS, tamper=st.sampled_from(["none", "edit", "delete", "clear", "add"]))
def test_random_histories_with_erasures_verify_and_tampering_is_caught(
    tmp_path_factory: pytest.TempPathFactory, actions: list[tuple[str, str]], tamper: str
) -> None:
    from helpers import staffed_db

    db = staffed_db(tmp_path_factory.mktemp("texts") / "t.db")
    with se_flow.open(db, actor="sam") as flow:
        case = flow.refer("Alex", source="GP").case
        held: list[int] = []
        for action, words in actions:
            text = words.strip() or "x"
            if action == "note":
                held.append(flow.record(case.id, "note", {"text": text}).record.seq)
            elif action == "reason":
                flow.assign(case.id, "kim" if case.coach == "sam" else "sam", reason=text)
                case = flow.case(case.id)
                held.append(flow.store.head()[0])
            elif held:
                seq = held.pop(0)
                slot = next(iter(flow.store.read().text_slots(seq) or {"reason": True}))
                flow.erase_text(seq, slot, reason="asked", actor="ada")
        result = flow.verify()
        assert result.ok, result.problem
        present = [t for t in flow.store.text_rows() if t.text is not None]
        if tamper == "none" or not present:
            return
        target = present[-1]
        conn = sqlite_conn(flow)
        drop_triggers(conn)
        if tamper == "edit":
            conn.execute(
                "UPDATE texts SET text = text || '!' WHERE seq = ? AND slot = ?",
                (target.seq, target.slot),
            )
        elif tamper == "delete":
            conn.execute("DELETE FROM texts WHERE seq = ? AND slot = ?", (target.seq, target.slot))
        elif tamper == "clear":
            conn.execute(
                "UPDATE texts SET salt = NULL, text = NULL WHERE seq = ? AND slot = ?",
                (target.seq, target.slot),
            )
        else:
            conn.execute(
                "INSERT INTO texts VALUES (?, 'override.reason', '00', 'forged')", (target.seq,)
            )
        caught = flow.verify()
        assert not caught.ok and caught.bad_seq == target.seq, caught


# --- the CLI ------------------------------------------------------------------------------------


def test_the_cli_erases_a_text_and_verify_says_erased(tmp_path: Path) -> None:
    from helpers import staffed_db
    from test_cli import CLI, ok, refused

    db = staffed_db(tmp_path / "caseload.db")
    with se_flow.open(db, actor="sam") as flow:
        case = flow.refer("Alex", source="GP").case
        seq = flow.record(case.id, "note", {"text": NOTE}).record.seq
    run = CLI(db)
    refused(run("audit", "erase-text", str(seq), "record.text", "--reason", "x"), 7, "admin")
    refused(run("audit", "erase-text", "999", "reason", "--reason", "x", actor="ada"), 4)
    said = ok(run("audit", "erase-text", str(seq), "record.text", "--reason", "x", actor="ada"))
    assert f"erased the text record.text of event {seq}" in said
    refused(
        run("audit", "erase-text", str(seq), "record.text", "--reason", "x", actor="ada"),
        5,
        "already erased",
    )
    assert "1 erased" in ok(run("audit", "verify"))
    ok(run("audit", "grant-texts", "ava", "--reason", "annual audit", actor="ada"))
    refused(run("audit", "grant-texts", "ava", "--reason", "again", actor="ada"), 5, "already")
    ok(run("audit", "grant-texts", "ava", "--revoke", "--reason", "done", actor="ada"))
