"""The due projection (issues 11 and 12): per case, each standard's instances and schedule
occurrences with their deadlines, kept beside the log by the writes that can change them, so a
due list's first page is an index range and `show` reads a case's few rows.

It must always be its replay (`_standards.project` over the case's events): after any history,
on every store, and in a database that had none before its migration. Read on today or later
it answers exactly what evaluating every open case's history answers."""

from __future__ import annotations

import datetime as dt
import functools
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest
from helpers import LEAST_EVIDENCE, START, Clock, Steps, drop_triggers, staffed_db, where
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pg import create_database, drop_database, pg_server, pg_url
from test_query_plans import traced

import se_flow
from se_flow._due import by_cases, case_standards, due_list
from se_flow._memory import MemoryStore
from se_flow._model import EventKind
from se_flow._projections import apply
from se_flow._standards import (
    Anchored,
    CaseHistory,
    DueList,
    DueTouch,
    Signal,
    StandardSpec,
    case_history,
    project,
    signals_read,
)

__all__ = ["pg_server", "pg_url"]  # fixtures


def replayed(flow: se_flow.SEFlow, case_id: str) -> list[Any]:
    case = flow.store.case(case_id)
    closed = case.closed_at.date() if case.closed_at else None
    events = flow.store.events(case_id=case_id)
    history = case_history(case_id, case.coach, closed, events, flow.workflow)
    return list(project(history, flow.workflow.standards, flow.workflow.calendar))


def same_as_evaluated(flow: se_flow.SEFlow, **kw: Any) -> None:
    """The due list and every case's standards, from the table and evaluated from the log."""
    today = flow.now().date()
    for within in (0, 30, 400):
        args: dict[str, Any] = dict(
            today=today, coach=None, within_days=within, overdue_only=False, limit=None
        )
        args |= kw
        if "after" in args and within != args["within_days"]:
            continue
        table = due_list(flow.store, flow.workflow, live=True, **args)
        log = due_list(flow.store, flow.workflow, live=False, **args)
        assert table == log
    for case in flow.cases(status="all"):
        table_v = case_standards(flow.store, flow.workflow, case, today, live=True)
        log_v = case_standards(flow.store, flow.workflow, case, today, live=False)
        assert table_v == log_v, case.id


def test_a_day_in_the_past_is_evaluated_from_the_log(flow: se_flow.SEFlow, clock: Clock) -> None:
    """Asked about a day before today, what was dated after it had not happened yet: the
    table (which knows the whole history) is not what answers."""
    steps = Steps(flow)
    case = steps.refer()
    clock.advance(days=3)
    flow.advance(case.id, "engage")
    before = flow.standards(case.id, as_of=START.date() + dt.timedelta(days=1))
    found = {r.standard: r.status for r in before.results}
    assert found["ipes_acknowledge_referral"] == "due"
    now = {r.standard: r.status for r in flow.standards(case.id).results}
    assert now["ipes_acknowledge_referral"] == "missed"


OPS = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "refer",
                "first_meeting",
                "action_plan",
                "employer_contact",
                "review",
                "note",
                "correct",
                "forward",
                "pause",
                "resume",
                "withdraw",
                "assign",
            ]
        ),
        st.integers(min_value=0, max_value=3),  # which case
        st.integers(min_value=0, max_value=20),  # days back-dated
        st.integers(min_value=0, max_value=9),  # days the clock moves on first
    ),
    min_size=1,
    max_size=25,
)


def _apply(flow: se_flow.SEFlow, clock: Clock, steps: Steps, op: tuple[str, int, int, int]) -> None:
    what, which, back, wait = op
    clock.advance(days=wait)
    cases = [c.id for c in flow.cases(status="all")]
    if what == "refer" or not cases:
        steps.refer(effective_at=clock.now.date() - dt.timedelta(days=min(back, 3)))
        return
    cid = cases[which % len(cases)]
    case = flow.case(cid)
    when = clock.now.date() - dt.timedelta(days=back)
    try:
        if what == "forward":
            forward = LEAST_EVIDENCE.get(where(case))
            if forward is None:
                return
            steps.record(cid, forward.records)
            flow.advance(cid, forward.trigger)
        elif what == "pause":
            flow.pause(cid, reason="unwell", review_date=clock.now.date() + dt.timedelta(days=30))
        elif what == "resume":
            flow.resume(cid)
        elif what == "withdraw":
            flow.withdraw(cid, reason="moved on")
        elif what == "assign":
            flow.assign(cid, "kim", actor="ada")
        elif what == "correct":
            found = [r for r in flow.records(cid) if r.kind in ("referral", "review")]
            if found:
                r = found[-1]
                flow.record(cid, r.kind, dict(r.fields), supersedes=r.seq, effective_at=when)
        elif what == "note":
            flow.record(cid, "note", {"text": "called"}, effective_at=when)
        elif what == "review":
            flow.record(cid, "review", {"summary": "visit"}, effective_at=when)
        elif what == "first_meeting":
            flow.record(cid, "first_meeting", {"location": "library"}, effective_at=when)
        elif what == "action_plan":
            flow.record(cid, "action_plan", {"summary": "retail roles"}, effective_at=when)
        else:
            flow.record(cid, "employer_contact", {"employer": "Acme"}, effective_at=when)
    except se_flow.SEFlowError:
        pass  # refused (a closed or paused case, a date before the referral): nothing written


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=OPS)
def test_the_projection_is_its_replay_after_any_history(tmp_path: Path, ops: list[Any]) -> None:
    clock = Clock()
    with se_flow.open(":memory:", clock=clock, actor="sam") as flow:
        flow.add_staff("ada", "Ada Admin", "admin", actor="ada")
        flow.add_staff("sam", "Sam Coach", "coach", actor="ada")
        flow.add_staff("kim", "Kim Coach", "coach", actor="ada")
        steps = Steps(flow)
        for op in ops:
            _apply(flow, clock, steps, op)
        for case in flow.cases(status="all"):
            assert flow.store.due_rows(case.id) == replayed(flow, case.id), case.id
        assert flow.verify().ok
        same_as_evaluated(flow)
        same_as_evaluated(flow, coach="kim")
        same_as_evaluated(flow, limit=2)
        listed = flow.due_items(within_days=30).items
        if listed:
            same_as_evaluated(flow, limit=1, after=listed[0].case_id, within_days=30)
        clock.advance(days=45)  # the table keeps no day: read later, it still agrees
        same_as_evaluated(flow)


def test_a_page_is_the_first_of_the_whole_list(flow: se_flow.SEFlow, clock: Clock) -> None:
    steps = Steps(flow)
    for n in range(12):
        case = steps.to("employer_engagement") if n % 3 else steps.refer()
        if n % 4 == 0:
            flow.record(case.id, "review", {"summary": "visit"})
        clock.advance(days=1)
    clock.advance(days=20)
    whole = flow.due_items(within_days=60).items
    assert len(whole) > 10
    cases = list(dict.fromkeys(i.case_id for i in whole))
    for limit in (1, 2, 5, 10):
        first = flow.due_items(within_days=60, limit=limit).items
        assert first == by_cases(DueList(whole), limit, None).items
        assert list(dict.fromkeys(i.case_id for i in first)) == cases[:limit]
        # Page after page, each starting after the last case of the one before.
        pages: list[Any] = []
        after = None
        while True:
            page = flow.due_items(within_days=60, limit=limit, after=after).items
            if not page:
                break
            pages += page
            after = list(dict.fromkeys(i.case_id for i in page))[-1]
        assert sorted(map(repr, pages)) == sorted(map(repr, whole))
    mine = flow.due_for(coach="sam", within_days=60, limit=3).items.items
    last = list(dict.fromkeys(i.case_id for i in mine))[-1]
    later = flow.due_for(coach="sam", within_days=60, limit=3, after=last)
    want = by_cases(flow.due_items(coach="sam", within_days=60), 3, last)
    assert later.items.items == want.items
    with pytest.raises(se_flow.NotFound):
        flow.due_items(after=Steps(flow).refer().id, overdue=True)
    # On C-9 and C-10 due the same day, C-9 comes first (by number, as every list).
    numbers = [(i.due_on, int(i.case_id[2:])) for i in whole]
    assert numbers == sorted(numbers)
    overdue = flow.due_items(overdue=True).items
    assert overdue and all(i.overdue for i in overdue)


def test_an_old_sqlite_database_gains_its_due_table_from_the_log(tmp_path: Path) -> None:
    db = staffed_db(tmp_path / "old.db")
    clock = Clock()
    with se_flow.open(db, clock=clock, actor="sam") as flow:
        steps = Steps(flow)
        steps.to("employer_engagement")
        paused = steps.refer()
        flow.pause(paused.id, reason="unwell", review_date=clock.now.date() + dt.timedelta(9))
        flow.withdraw(steps.refer().id, reason="moved on")
        before = flow.due_items(within_days=60)
        rows = {c.id: flow.store.due_rows(c.id) for c in flow.cases(status="all")}
    assert any(rows.values())
    # As a database from before migration 0011 holds it: no due table.
    conn = sqlite3.connect(db)
    drop_triggers(conn)
    conn.execute("DROP TABLE due_index")
    conn.execute("DELETE FROM _sqlite_migrations WHERE name = '0011_due_index'")
    conn.commit()
    conn.close()
    with se_flow.open(db, clock=clock, actor="sam") as flow:
        assert {c.id: flow.store.due_rows(c.id) for c in flow.cases(status="all")} == rows
        assert flow.due_items(within_days=60) == before
        assert flow.verify().ok


def test_an_old_postgres_database_gains_its_due_table_from_the_log(pg_url: str) -> None:
    clock = Clock()
    with se_flow.open(pg_url, clock=clock, actor="ada") as flow:
        flow.add_staff("ada", "Ada Admin", "admin")
        flow.add_staff("sam", "Sam Coach", "coach")
        flow.default_actor = "sam"
        steps = Steps(flow)
        steps.to("employer_engagement")
        flow.withdraw(steps.refer().id, reason="moved on")
        steps.refer()
        before = flow.due_items(within_days=60)
        rows = {c.id: flow.store.due_rows(c.id) for c in flow.cases(status="all")}
        store: Any = flow.store
        with store._pool.connection() as conn:
            # As a database from before 0007: that migration and the ones after it undone.
            conn.execute("DROP TABLE due_index")
            conn.execute("DROP INDEX records_case_kind_at, records_superseded, events_text_grants")
            conn.execute(
                "DROP INDEX cases_sort_entered, cases_sort_seen, cases_sort_coach, "
                "cases_sort_stage, cases_sort_due"
            )
            # 0011 dropped the open cases' review-date index: a database from before had it.
            conn.execute(
                "CREATE INDEX cases_open_due ON cases (review_due, num) WHERE status <> 'closed'"
            )
            conn.execute(
                "DELETE FROM se_flow_schema WHERE name IN ('0007_due_index', '0008_case_reads', "
                "'0009_case_sorts', '0010_status_sorts', '0011_due_by_status')"
            )
    assert any(rows.values())
    with se_flow.open(pg_url, clock=clock, actor="sam") as flow:
        assert {c.id: flow.store.due_rows(c.id) for c in flow.cases(status="all")} == rows
        assert flow.due_items(within_days=60) == before
        assert flow.verify().ok


def test_a_write_that_cannot_change_what_is_due_does_not_touch_the_table(
    flow: se_flow.SEFlow,
) -> None:
    case = Steps(flow).refer()
    conn: Any = flow.store.conn  # type: ignore[attr-defined]
    with traced(conn) as statements:
        flow.record(case.id, "note", {"text": "called"})
    assert not any("due_index" in s for s in statements), statements
    with traced(conn) as statements:
        flow.record(case.id, "first_meeting", {"location": "library"})
    assert any("due_index" in s for s in statements), statements


def test_a_due_page_reads_by_index(flow: se_flow.SEFlow, clock: Clock) -> None:
    """The first page of the team's list and of one coach's: no scan of the due table or the
    cases, no sort of either."""
    steps = Steps(flow)
    for _ in range(5):
        steps.to("employer_engagement")
    conn: Any = flow.store.conn  # type: ignore[attr-defined]
    for coach in (None, "sam"):
        with traced(conn) as statements:
            flow.due_items(coach=coach, within_days=30, limit=10)
        due = [s for s in statements if "due_index" in s]
        assert due, statements
        for sql in due:
            plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql)]
            assert not any(p.startswith("SCAN d") or p.startswith("SCAN due_index") for p in plan)
            if coach is None:
                assert not any("TEMP B-TREE" in p for p in plan), (sql, plan)


@pytest.mark.parametrize("within", [0, 7])
def test_cli_due_reads_the_table(tmp_path: Path, within: int) -> None:
    from typer.testing import CliRunner

    from se_flow.cli import app

    db = staffed_db(tmp_path / "cli.db")
    with se_flow.open(db, actor="sam") as flow:
        Steps(flow).to("employer_engagement")
        want = [i.to_json() for i in flow.due_items(within_days=within, coach="sam").items]
    result = CliRunner().invoke(
        app, ["--db", str(db), "--as", "sam", "due", "--within", str(within), "--json"]
    )
    assert result.exit_code == 0, result.output
    import json

    assert json.loads(result.output) == want


# --- which writes can change a case's due rows (`_standards.DueTouch`) ------------------------

WORKFLOW = se_flow.load_workflow()
KINDS = sorted(WORKFLOW.records)
TRIGGERS = sorted(WORKFLOW.triggers)


def _fields(kind: str, today: dt.date) -> dict[str, Any]:
    """The fewest values each required field of `kind` accepts."""
    made = {
        "str": "Acme",
        "text": "visit",
        "bool": True,
        "int": 1,
        "decimal": Decimal("12.71"),
        "date": today,
        "list": ["retail"],
        "dated_steps": [f"{today.isoformat()} fewer visits"],
    }
    return {
        f.name: f.options[0] if f.type == "choice" else made[f.type]
        for f in WORKFLOW.records[kind].fields
        if f.required
    }


HISTORY = st.lists(
    st.tuples(
        st.sampled_from(
            [
                *["refer", "reopen", "correct", "forward", "trigger", "engage"],
                *["pause", "withdraw", "assign", "final_review"],
                *["record", "record", "review", "review", "to_work", "to_work"],
                *["end_job", "end_job", "resume", "resume"],
            ]
        ),
        st.integers(min_value=0, max_value=3),  # which case
        st.integers(min_value=0, max_value=12),  # days back-dated
        st.integers(min_value=0, max_value=9),  # days the clock moves on first
        st.integers(min_value=0, max_value=99),  # which record kind or trigger
    ),
    min_size=1,
    max_size=30,
)

# The cases each kind of write picks from when there are any (most writes on any other case
# are refused): so that random histories reach job starts, job ends, resumes and reopenings.
_FITS: dict[str, Any] = {
    "reopen": lambda c: c.status is se_flow.Status.CLOSED,
    "resume": lambda c: c.status is se_flow.Status.PAUSED,
    "end_job": lambda c: c.state == "in_work_support",
    "engage": lambda c: c.state == "referred",
    "to_work": lambda c: c.status is se_flow.Status.ACTIVE and c.state != "in_work_support",
}
_OPEN = {"record", "review", "final_review", "correct", "forward", "pause", "withdraw"}


def _write(flow: se_flow.SEFlow, now: dt.datetime, op: tuple[str, int, int, int, int]) -> None:
    """One write of a random history (refused ones write nothing)."""
    what, which, back, _wait, pick = op
    cases = list(flow.cases(status="all"))
    when = now - dt.timedelta(days=back)
    if what == "refer" or not cases:
        flow.refer("Alex Doe", source="GP", effective_at=now - dt.timedelta(days=min(back, 3)))
        return
    fits = _FITS.get(what) or (
        (lambda c: c.status is not se_flow.Status.CLOSED) if what in _OPEN else None
    )
    fitting = [c for c in cases if fits(c)] if fits else []
    chosen = (fitting or cases)[which % len(fitting or cases)]
    cid = chosen.id
    # Back-dated, but not before the case opened (records) or entered its stage (moves).
    dated = max(when, chosen.opened_at)
    moved = max(when, chosen.stage_entered_at)
    try:
        if what == "reopen":
            flow.reopen(cid, source="self")
        elif what in ("record", "review", "final_review"):
            kind = KINDS[pick % len(KINDS)] if what == "record" else what
            flow.record(cid, kind, _fields(kind, dated.date()), effective_at=dated)
        elif what == "correct":
            found = flow.records(cid)
            if found:
                r = found[pick % len(found)]
                flow.record(cid, r.kind, dict(r.fields), supersedes=r.seq, effective_at=dated)
        elif what in ("forward", "to_work"):
            for _ in range(6 if what == "to_work" else 1):
                case = flow.case(cid)
                forward = LEAST_EVIDENCE.get(where(case))
                if forward is None or (case.state == "in_work_support" and what == "to_work"):
                    return
                for kind, values in forward.records:
                    flow.record(cid, kind, dict(values))
                flow.advance(cid, forward.trigger)
        elif what in ("trigger", "engage", "end_job"):
            trigger = TRIGGERS[pick % len(TRIGGERS)] if what == "trigger" else what
            if what == "end_job":
                if not any(r.kind == "job_start" for r in flow.records(cid)):
                    start = _fields("job_start", moved.date())
                    flow.record(cid, "job_start", start, effective_at=moved)
                flow.record(cid, "job_end", reason="contract ended", effective_at=moved)
            outcome = WORKFLOW.close_reasons[0] if WORKFLOW.close_reasons else None
            move = functools.partial(
                flow.advance,
                cid,
                trigger,
                reason="next",
                outcome=outcome,
                effective_at=moved,
                actor="ada",
            )
            try:
                move()
            except se_flow.GuardsFailed:
                # Overridden only where a guard blocks: an override of nothing is refused.
                move(override="team agreed")
        elif what == "pause":
            review = now.date() + dt.timedelta(days=30)
            flow.pause(cid, reason="unwell", review_date=review, effective_at=moved)
        elif what == "resume":
            flow.resume(cid, effective_at=moved)
        elif what == "withdraw":
            flow.withdraw(cid, reason="moved on", effective_at=moved)
        else:
            flow.assign(cid, "kim" if pick % 2 else "sam", actor="ada")
    except se_flow.SEFlowError:
        pass  # refused: nothing written


def _staffed(flow: se_flow.SEFlow) -> se_flow.SEFlow:
    flow.add_staff("ada", "Ada Admin", "admin", actor="ada")
    flow.add_staff("sam", "Sam Coach", "coach", actor="ada")
    flow.add_staff("kim", "Kim Coach", "coach", actor="ada")
    return flow


REACHED: set[str] = set()


def _kept_as_replayed(flows: list[se_flow.SEFlow], ops: list[Any], clock: Clock) -> None:
    """After each write of `ops` on every store, each case's due rows are their replay, and
    the stores agree; at the end `verify` (which replays the table) passes."""
    for op in ops:
        clock.advance(days=op[3])
        for flow in flows:
            _write(flow, clock.now, op)
        first = flows[0]
        ids = [c.id for c in first.cases(status="all")]
        for flow in flows:
            assert [c.id for c in flow.cases(status="all")] == ids
            for cid in ids:
                assert flow.store.due_rows(cid) == replayed(flow, cid), (cid, op)
                assert flow.store.due_rows(cid) == first.store.due_rows(cid), (cid, op)
    for flow in flows:
        assert flow.verify().ok
    for case in flows[0].cases(status="all"):
        for e in flows[0].store.events(case_id=case.id):
            record = e.payload.get("record")
            REACHED.add(f"{e.kind} {e.trigger or ''}")
            if record:
                REACHED.add(f"record {record['kind']}")
        REACHED.update(f"row {r.state}" for r in flows[0].store.due_rows(case.id))


def _on_sqlite_and_memory(ops: list[Any]) -> None:
    clock = Clock()
    flows = [
        _staffed(se_flow.open(":memory:", clock=clock, actor="sam")),
        _staffed(se_flow.SEFlow(MemoryStore(WORKFLOW), WORKFLOW, clock=clock, actor="sam")),
    ]
    try:
        _kept_as_replayed(flows, ops, clock)
    finally:
        for flow in flows:
            flow.disconnect()


test_every_store_keeps_its_due_rows_as_their_replay_after_any_write = settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)(given(ops=HISTORY)(_on_sqlite_and_memory))
test_every_store_keeps_its_due_rows_as_their_replay_after_any_write.__doc__ = """Records of
every kind (back-dated, corrected), every trigger (job starts and ends, pauses and resumes,
closing), reassignment and reopening, on SQLite and the memory store: the writes a store skips
(`DueTouch`) are exactly those that leave the rows as they were."""


def test_random_histories_reach_every_write_the_due_rows_read() -> None:
    """Guards the test above against histories that never start a job, end one, resume,
    reassign or close (a store skipping one of those wrongly would pass it)."""
    REACHED.clear()
    settings(
        max_examples=80,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow],
    )(given(ops=HISTORY)(_on_sqlite_and_memory))()
    wanted = {
        *(f"transition {t}" for t in ("engage", "start_job", "end_job", "withdraw")),
        *("pause pause", "resume resume", "assign ", "reopen reopen", "record referral"),
        *(f"record {k}" for k in ("first_meeting", "action_plan", "employer_contact")),
        *(f"record {k}" for k in ("review", "final_review", "note", "job_start")),
        *(f"row {s}" for s in ("met", "missed", "open", "paused", "window")),
    }
    assert wanted <= REACHED, sorted(wanted - REACHED)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=HISTORY)
def test_postgres_keeps_its_due_rows_as_their_replay_after_any_write(
    pg_server: str, ops: list[Any]
) -> None:
    clock = Clock()
    url = create_database(pg_server)
    flows = [
        _staffed(se_flow.open(url, clock=clock, actor="sam")),
        _staffed(se_flow.SEFlow(MemoryStore(WORKFLOW), WORKFLOW, clock=clock, actor="sam")),
    ]
    try:
        _kept_as_replayed(flows, ops, clock)
    finally:
        for flow in flows:
            flow.disconnect()
        drop_database(pg_server, url)


def test_every_signal_a_standard_holds_is_one_it_reads() -> None:
    """`signals_read` is the one list of what a standard reads of a history: `needs` (what
    a due list reads) and `DueTouch` (which writes the due table follows) are made from it.
    A field of signals added to `StandardSpec` must be added there, or writes of that signal
    would leave the table behind."""
    signals = {"anchor", "met_by", "until"}
    others = {"id", "title", "within", "working_days", "schedule", "source_file"}
    names = {f.name for f in attrs.fields(StandardSpec)}
    assert names == signals | others, "a new field of StandardSpec: is it a signal it reads?"
    spec = StandardSpec(
        id="s",
        title="S",
        anchor=Signal(record="a"),
        met_by=(Signal(record="m", field="f", equals=1), Signal(trigger="t")),
        until=("u",),
    )
    assert set(signals_read(spec)) == {
        spec.anchor,
        *spec.met_by,
        Signal(trigger="u"),
    }


def test_a_write_touches_the_rows_only_through_what_the_history_holds() -> None:
    """A case's history as the standards read it is its coach, its closing day and its
    happenings (`DueTouch` follows each); only `assign` changes the coach, and no write
    opens a closed case again (a reopening is a new case)."""
    assert {f.name for f in attrs.fields(CaseHistory)} == {
        "case_id",
        "coach",
        "happenings",
        "closed_on",
        "pause_triggers",
        "resume_triggers",
    }
    at = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    case = se_flow.Case(
        id="C-1",
        participant_id="P-1",
        state="customer_engagement",
        phase=None,
        status=se_flow.Status.ACTIVE,
        version=3,
        opened_at=at,
        stage_entered_at=at,
        coach="sam",
    )
    closed = attrs.evolve(
        case, state=WORKFLOW.final, status=se_flow.Status.CLOSED, closed_at=at, outcome="x"
    )
    for kind in EventKind:
        if kind in (EventKind.REFERRAL, EventKind.REOPEN):
            continue  # a new case
        event = _Event(kind, at)
        after, after_closed = apply(WORKFLOW, case, event), apply(WORKFLOW, closed, event)
        assert after is not None and after_closed is not None
        assert (after.coach != "sam") == (kind == EventKind.ASSIGN), kind
        assert after_closed.closed_at == at, kind


@attrs.frozen
class _Event:
    kind: str
    effective_at: dt.datetime
    case_id: str = "C-1"
    to_state: str | None = "customer_engagement"
    to_phase: str | None = None
    payload: dict[str, Any] = attrs.field(factory=lambda: {"to_coach": "kim", "coach": "kim"})


def test_decided_from_the_standards() -> None:
    touch = DueTouch.of(WORKFLOW)
    # Not read by any standard: nothing to do.
    assert touch.touches(None, "note", closed=False) is False
    assert touch.touches("start_job_search", None, closed=False) is False
    # An anchor: a new instance.
    assert touch.touches("referral", "referral", closed=False) is True
    assert touch.touches("start_job", None, closed=False) is True
    # Read only where the standard is anchored: the follow-along visits, from a job start.
    assert touch.touches(None, "review", closed=False) == Anchored(
        frozenset({"start_job"}), frozenset()
    )
    assert touch.touches("end_job", None, closed=False) == Anchored(
        frozenset({"start_job"}), frozenset()
    )
    every = Anchored(frozenset({"engage", "start_job"}), frozenset({"referral"}))
    assert touch.touches(None, None, closed=False, kind="assign") == every
    assert touch.touches("pause", None, closed=False) == every
    assert touch.touches("withdraw", None, closed=True) == every
    assert (
        DueTouch.of(attrs.evolve(WORKFLOW, standards=())).touches(
            "referral", "referral", closed=False
        )
        is False
    )


def test_a_review_on_a_case_out_of_work_asks_one_question_of_the_due_rows(
    flow: se_flow.SEFlow,
) -> None:
    """The follow-along visits start at a job start: a review on a case with none cannot
    change its due rows, and the store asks only that; on a case in work it is worked out."""
    steps = Steps(flow)
    case = steps.to("customer_engagement")
    conn: Any = flow.store.conn  # type: ignore[attr-defined]
    with traced(conn) as statements:
        flow.record(case.id, "review", {"summary": "visit"})
    due = [s for s in statements if "due_index" in s or "EXISTS" in s]
    assert due == [
        f"SELECT EXISTS (SELECT 1 FROM events WHERE case_id = '{case.id}' "
        "AND trigger IN ('start_job'))"
    ], statements
    working = steps.to("in_work_support")
    with traced(conn) as statements:
        flow.record(working.id, "review", {"summary": "visit"})
    assert any("due_index" in s for s in statements), statements
    assert flow.store.due_rows(working.id) == replayed(flow, working.id)
