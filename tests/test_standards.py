"""Service standards and follow-along schedules: what is due, met and missed, in working days,
computed from the log and a fixed clock (issue 12)."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from helpers import LEAST_EVIDENCE, START, Clock, Steps
from hypothesis import given, settings
from hypothesis import strategies as st
from pg import pg_server, pg_url
from typer.testing import CliRunner

import se_flow
from se_flow import Fault
from se_flow._standards import (
    CaseHistory,
    Happening,
    StandardResult,
    evaluate,
    project,
    verdicts_at,
)
from se_flow.cli import app

__all__ = ["pg_server", "pg_url"]  # fixtures

D = dt.date
# Friday 22 May 2026; Monday 25 May is the Spring bank holiday (England and Wales).
FRIDAY = D(2026, 5, 22)


def at(day: D) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(9), tzinfo=dt.UTC)


def by_id(results: tuple[StandardResult, ...], standard: str) -> list[StandardResult]:
    return [r for r in results if r.standard == standard]


def one(flow: se_flow.SEFlow, case_id: str, standard: str, on: D) -> StandardResult:
    found = by_id(flow.standards(case_id, as_of=on).results, standard)
    assert len(found) == 1, found
    return found[0]


@pytest.fixture
def referred(flow: se_flow.SEFlow, clock: Clock) -> str:
    clock.now = at(FRIDAY)
    return flow.refer("Alex Doe", source="GP", effective_at=FRIDAY).case.id


# --- working days ----------------------------------------------------------------------------


def test_working_days_skip_the_weekend_and_the_bank_holiday() -> None:
    cal = se_flow.load_workflow().calendar
    assert cal is not None and cal.id == "england-and-wales"
    assert not cal.is_working_day(D(2026, 5, 25))
    # The Friday itself is not counted: Tuesday 26 is the first working day after it.
    assert cal.add(FRIDAY, 1) == D(2026, 5, 26)
    assert cal.add(FRIDAY, 2) == D(2026, 5, 27)
    assert cal.add(FRIDAY, 15) == D(2026, 6, 15)
    assert cal.between(FRIDAY, D(2026, 5, 27)) == 2
    # Christmas 2026: Friday 25, Boxing Day's substitute Monday 28.
    assert cal.add(D(2026, 12, 24), 1) == D(2026, 12, 29)


def test_referral_on_a_friday_before_a_bank_holiday(flow: se_flow.SEFlow, referred: str) -> None:
    ack = one(flow, referred, "ipes_acknowledge_referral", FRIDAY)
    assert (ack.status, ack.anchor_on, ack.due_on) == ("due", FRIDAY, D(2026, 5, 27))
    meeting = one(flow, referred, "ipes_first_meeting", FRIDAY)
    assert meeting.due_on == D(2026, 6, 15) and meeting.unit == "working days"
    assert one(flow, referred, "ipes_acknowledge_referral", D(2026, 5, 28)).status == "overdue"


@pytest.mark.parametrize(
    ("day", "status", "took"), [(D(2026, 6, 15), "met", 15), (D(2026, 6, 16), "missed", 16)]
)
def test_first_meeting_on_the_last_allowed_day_and_one_day_later(
    flow: se_flow.SEFlow, clock: Clock, referred: str, day: D, status: str, took: int
) -> None:
    clock.now = at(day)
    flow.advance(referred, "engage", effective_at=FRIDAY)
    flow.record(referred, "first_meeting", {"location": "library"}, effective_at=day)
    meeting = one(flow, referred, "ipes_first_meeting", day)
    assert (meeting.status, meeting.met_on, meeting.took) == (status, day, took)
    # Met late or not, it stays on the case's record.
    assert one(flow, referred, "ipes_first_meeting", D(2027, 1, 4)).status == status
    items = flow.due_items(as_of=day, within_days=30)
    assert not [i for i in items if i.name == "ipes_first_meeting"]


def test_overdue_standard_is_in_the_one_due_list(flow: se_flow.SEFlow, referred: str) -> None:
    found = flow.due_items(as_of=D(2026, 6, 16))
    meeting = [i for i in found if i.name == "ipes_first_meeting"]
    assert len(meeting) == 1 and meeting[0].overdue and meeting[0].due_on == D(2026, 6, 15)
    assert meeting[0].commands == (f"se-flow record {referred} first_meeting",)
    assert [i.due_on for i in found] == sorted(i.due_on for i in found)
    assert {i.what for i in found} == {"review", "standard"}
    # --overdue keeps only what is past its date; reading wrote nothing.
    assert all(
        i.due_on < D(2026, 6, 16) for i in flow.due_items(as_of=D(2026, 6, 16), overdue=True)
    )
    assert flow.case(referred).version == 1


# --- pauses ---------------------------------------------------------------------------------


def test_a_pause_across_a_deadline_moves_it_by_the_paused_working_days(
    flow: se_flow.SEFlow, clock: Clock, referred: str
) -> None:
    flow.advance(referred, "engage", effective_at=FRIDAY)
    # Paused Wednesday 10 June, resumed Wednesday 17 June: 5 working days stopped (10, 11,
    # 12, 15, 16), counted again from the 17th.
    clock.now = at(D(2026, 6, 10))
    flow.pause(
        referred, reason="in hospital", review_date=D(2026, 6, 17), effective_at=D(2026, 6, 10)
    )
    paused = one(flow, referred, "ipes_first_meeting", D(2026, 6, 12))
    assert (paused.status, paused.due_on) == ("paused", None)
    assert not [i for i in flow.due_items(as_of=D(2026, 6, 16)) if i.name == "ipes_first_meeting"]
    clock.now = at(D(2026, 6, 17))
    flow.resume(referred, effective_at=D(2026, 6, 17))
    # 11 working days ran before the pause (26 May - 9 June); 4 more from the 17th.
    resumed = one(flow, referred, "ipes_first_meeting", D(2026, 6, 17))
    assert (resumed.status, resumed.due_on) == ("due", D(2026, 6, 22))
    clock.now = at(D(2026, 6, 22))
    flow.record(referred, "first_meeting", {"location": "library"}, effective_at=D(2026, 6, 22))
    met = one(flow, referred, "ipes_first_meeting", D(2026, 6, 22))
    assert (met.status, met.took) == ("met", 15)


# --- follow-along ----------------------------------------------------------------------------


def test_weekly_then_monthly_follow_along_with_one_visit_missed(
    flow: se_flow.SEFlow, clock: Clock, steps: Steps
) -> None:
    case = steps.to("job_matching")
    start = D(2026, 6, 1)
    steps.record(case.id, LEAST_EVIDENCE["job_matching"][1] + LEAST_EVIDENCE["job_matching"][2])
    flow.advance(case.id, "start_job", effective_at=start)
    for day in (D(2026, 6, 5), D(2026, 6, 12), D(2026, 6, 26), D(2026, 7, 20)):
        clock.now = at(day)
        flow.record(case.id, "review", {"summary": "visit at work"}, effective_at=day)
    found = by_id(flow.standards(case.id, as_of=D(2026, 8, 10)).results, "ips_follow_along")
    seen = [(r.occurrence, r.due_on, r.status, r.met_on) for r in found]
    assert seen == [
        (1, D(2026, 6, 8), "met", D(2026, 6, 5)),
        (2, D(2026, 6, 15), "met", D(2026, 6, 12)),
        (3, D(2026, 6, 22), "missed", None),  # the week of 16-22 June had no visit
        (4, D(2026, 6, 29), "met", D(2026, 6, 26)),
        (5, D(2026, 7, 29), "met", D(2026, 7, 20)),
        (6, D(2026, 8, 28), "due", None),
    ]
    due = [i for i in flow.due_items(as_of=D(2026, 8, 10), within_days=30) if i.case_id == case.id]
    assert [(i.name, i.occurrence) for i in due if i.what == "standard"] == [
        ("ips_follow_along", 6)
    ]


def test_a_job_end_ends_the_schedule(flow: se_flow.SEFlow, clock: Clock, steps: Steps) -> None:
    case = steps.to("in_work_support")
    start = case.stage_entered_at.date()
    clock.advance(days=3)
    flow.record(case.id, "job_end", {"reason": "contract ended"})
    flow.advance(case.id, "end_job")
    later = start + dt.timedelta(days=60)
    found = by_id(flow.standards(case.id, as_of=later).results, "ips_follow_along")
    # The first week was cut short by the end of the job, unmet: owed no more.
    assert found == []


# --- order never matters -------------------------------------------------------------------

KINDS = ("first_meeting", "action_plan", "employer_contact", "review")


@settings(max_examples=60, deadline=None)
@given(
    records=st.lists(
        st.tuples(st.sampled_from(KINDS), st.integers(min_value=0, max_value=120)), max_size=12
    ),
    today=st.integers(min_value=0, max_value=200),
    data=st.data(),
)
def test_due_items_depend_on_effective_dates_not_entry_order(
    records: list[tuple[str, int]], today: int, data: st.DataObject
) -> None:
    wf = se_flow.load_workflow()
    base = D(2026, 3, 2)
    fixed = [
        Happening(base, 1, "referral", record="referral"),
        Happening(base + dt.timedelta(days=1), 2, "transition", trigger="engage"),
        Happening(base + dt.timedelta(days=40), 3, "transition", trigger="start_job"),
    ]
    order = data.draw(st.permutations(range(len(records))))

    def history(indices: list[int]) -> CaseHistory:
        entered = [
            Happening(
                base + dt.timedelta(days=records[i][1]), 10 + n, "record", record=records[i][0]
            )
            for n, i in enumerate(indices)
        ]
        return CaseHistory("C-1", "sam", tuple(fixed + entered))

    day = base + dt.timedelta(days=today)
    first = evaluate([history(list(range(len(records))))], wf.standards, wf.calendar, day)
    again = evaluate([history(list(order))], wf.standards, wf.calendar, day)
    assert first == again


EVENTS = (
    ("record", "referral"),
    ("record", "first_meeting"),
    ("record", "action_plan"),
    ("record", "employer_contact"),
    ("record", "review"),
    ("record", "final_review"),
    ("trigger", "engage"),
    ("trigger", "start_job"),
    ("trigger", "end_job"),
    ("trigger", "pause"),
    ("trigger", "resume"),
)


@settings(max_examples=150, deadline=None)
@given(
    happened=st.lists(
        st.tuples(st.sampled_from(EVENTS), st.integers(min_value=0, max_value=400)), max_size=16
    ),
    later=st.integers(min_value=0, max_value=500),
    closed=st.none() | st.integers(min_value=0, max_value=400),
)
def test_the_due_projection_read_on_any_later_day_is_the_evaluation(
    happened: list[tuple[tuple[str, str], int]], later: int, closed: int | None
) -> None:
    """What the due table keeps (`project`: no clock) read on a day (`verdicts_at`) is what
    evaluating the history on that day gives, for any day on or after the case's last
    happening: pauses, schedules, closures, several anchors and all."""
    wf = se_flow.load_workflow()
    base = D(2026, 3, 2)
    found = [
        Happening(
            base + dt.timedelta(days=day),
            n,
            what,
            trigger=name if what == "trigger" else None,
            record=name if what == "record" else None,
        )
        for n, ((what, name), day) in enumerate(happened, start=1)
    ]
    last = max((h.on for h in found), default=base)
    closed_on = None if closed is None else max(last, base + dt.timedelta(days=closed))
    history = CaseHistory("C-1", "sam", tuple(found), closed_on=closed_on)
    rows = project(history, wf.standards, wf.calendar)
    day = max(last, closed_on or last) + dt.timedelta(days=later)
    want = evaluate([history], wf.standards, wf.calendar, day)
    assert verdicts_at(rows, wf.standards, wf.calendar, day) == want
    open_only = evaluate([history], wf.standards, wf.calendar, day, open_only=True)
    got = verdicts_at(rows, wf.standards, wf.calendar, day, open_only=True)
    assert got.results == open_only.results


# --- calendar years ---------------------------------------------------------------------------


def test_a_year_the_calendar_lacks_is_said_once(flow: se_flow.SEFlow, clock: Clock) -> None:
    day = D(2028, 3, 1)
    clock.now = at(day)
    for name in ("Alex Doe", "Bea Doe"):
        flow.refer(name, source="GP", effective_at=day)
    found = flow.due_items(as_of=day, within_days=30)
    assert len(found.warnings) == 1 and "2028" in found.warnings[0]
    assert "2028" not in " ".join(flow.due_items(as_of=D(2026, 6, 1)).warnings)


def test_closure_days_of_the_service_are_not_working_days(tmp_path: Path) -> None:
    folder = tmp_path / "stages"
    shutil.copytree(se_flow.default_stages_dir(), folder, ignore=shutil.ignore_patterns("*.py*"))
    path = folder / "workflow.toml"
    text = path.read_text(encoding="utf-8")
    path.write_text(
        text.replace("closures = []", 'closures = [{ date = 2026-05-26, name = "Away day" }]'),
        encoding="utf-8",
    )
    cal = se_flow.load_workflow(folder).calendar
    assert cal is not None and cal.add(FRIDAY, 1) == D(2026, 5, 27)
    assert cal.closed[D(2026, 5, 26)] == "Away day"


# --- bad stage data ---------------------------------------------------------------------------

BAD = """
[[standards]]
id = "unknown_kind"
anchor = { record = "no_such_kind" }
met_by = { trigger = "no_such_trigger" }
within = 2

[[standards]]
id = "unknown_field"
anchor = { record = "referral" }
met_by = { record = "consent", field = "no_such_field", equals = true }
within = 0

[[standards]]
id = "negative"
anchor = { record = "referral" }
met_by = { record = "first_meeting" }
within = -3
days = "working"

[[standards]]
id = "for_ever"
anchor = { trigger = "start_job" }
met_by = { record = "review" }
schedule = [{ every = 7 }]
"""


def test_bad_standards_and_calendar_are_named_faults_all_at_once(tmp_path: Path) -> None:
    folder = tmp_path / "stages"
    shutil.copytree(se_flow.default_stages_dir(), folder, ignore=shutil.ignore_patterns("*.py*"))
    (folder / "90_bad.toml").write_text(BAD, encoding="utf-8")
    path = folder / "workflow.toml"
    text = path.read_text(encoding="utf-8")
    path.write_text(
        text.replace(
            "closures = []",
            'closures = ["2026-13-01", { date = 2026-12-24 }, { date = 2026-12-24 }]',
        ),
        encoding="utf-8",
    )
    with pytest.raises(se_flow.WorkflowInvalid) as invalid:
        se_flow.load_workflow(folder)
    faults: tuple[Fault, ...] = invalid.value.faults

    def has(check: str, *words: str) -> bool:
        return any(f.check == check and all(w in f.message for w in words) for f in faults)

    assert has("standard_signals_known", "unknown_kind", "no_such_kind")
    assert has("standard_signals_known", "unknown_kind", "no_such_trigger")
    assert has("standard_signals_known", "unknown_field", "no_such_field")
    assert has("standard_deadlines_valid", "unknown_field", "got 0")
    assert has("standard_deadlines_valid", "negative", "got -3")
    assert has("standard_schedules_end", "for_ever", "never ends")
    assert has("calendar_dates_valid", "2026-13-01")
    assert has("calendar_dates_valid", "2026-12-24", "twice")


def test_an_unknown_calendar_region_is_a_fault(tmp_path: Path) -> None:
    folder = tmp_path / "stages"
    shutil.copytree(se_flow.default_stages_dir(), folder, ignore=shutil.ignore_patterns("*.py*"))
    path = folder / "workflow.toml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace('"england-and-wales"', '"wales-only"'), encoding="utf-8")
    with pytest.raises(se_flow.WorkflowInvalid) as invalid:
        se_flow.load_workflow(folder)
    assert any(
        f.check == "calendar_known" and "wales-only" in f.message and "scotland" in f.message
        for f in invalid.value.faults
    )


def test_the_shipped_calendars_load_and_differ() -> None:
    import tomllib

    from se_flow._calendar import parse_calendar
    from se_flow._loader import calendars_dir

    found = {}
    for name in ("england-and-wales", "scotland", "northern-ireland"):
        data = tomllib.loads((calendars_dir() / f"{name}.toml").read_text(encoding="utf-8"))
        cal, faults = parse_calendar(name, data, None, "")
        assert faults == [] and cal is not None and cal.years == {2024, 2025, 2026, 2027}
        found[name] = cal
    assert D(2026, 11, 30) in found["scotland"].closed  # St Andrew's Day
    assert D(2026, 4, 6) not in found["scotland"].closed  # no Easter Monday
    assert D(2026, 7, 13) in found["northern-ireland"].closed  # the Boyne, substitute day
    assert D(2026, 7, 13) not in found["england-and-wales"].closed


# --- the CLI ----------------------------------------------------------------------------------


def test_cli_due_and_show_list_standards_within_80_columns(tmp_path: Path) -> None:
    # The CLI reads the system clock: a referral 60 days ago has missed its first meeting.
    db = tmp_path / "c.db"
    referral = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=60)
    with se_flow.open(db, actor="ada") as f:
        f.add_staff("ada", "Ada Admin", "admin")
        f.add_staff("sam", "Sam Coach", "coach")
        case = f.refer(
            "Alex Doe", source="GP", coach="sam", effective_at=referral, actor="sam"
        ).case.id
    runner = CliRunner()
    env = {"COLUMNS": "80"}

    def run(*args: str) -> str:
        result = runner.invoke(app, ["--db", str(db), "--as", "sam", *args], env=env)
        assert result.exit_code == 0, result.output
        return result.stdout

    out = run("due", "--overdue")
    assert f"se-flow record {case} first_meeting" in out
    assert all(len(line) <= 80 for line in out.splitlines())
    items = json.loads(run("due", "--json", "--within", "0"))
    assert {i["name"] for i in items} >= {"ipes_first_meeting", "ipes_acknowledge_referral"}
    shown = run("show", case)
    assert "Service standards" in shown and "First meeting" in shown
    standards = json.loads(run("show", case, "--json"))["standards"]
    assert {s["standard"]: s["status"] for s in standards}["ipes_first_meeting"] == "overdue"
    # Met late is missed, and stays in the case's history view (with the day it was met).
    with se_flow.open(db, actor="sam") as f:
        f.record(case, "first_meeting", location="library")
    history = run("history", case)
    assert "Service standards" in history
    table = history[history.index("Service standards") :]
    late = next(line for line in table.splitlines() if "First meeting" in line)
    assert "missed" in late and dt.datetime.now(dt.UTC).date().isoformat() in late
    assert all(len(line) <= 80 for line in history.splitlines())


class _PortsOnly:
    """A SQLite store with its own due-list reads hidden: read case by case through the ports."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        if name in ("case_histories", "due_reviews"):
            raise AttributeError(name)
        return getattr(self._store, name)


def test_every_store_gives_the_same_due_list(tmp_path: Path, pg_url: str) -> None:
    """Both SQL stores answer the due list with their own few queries (`_histories`); any
    other store is read case by case through the ports. The results must be the same, for
    the team and for one coach, with pauses, a corrected record, closed cases and records
    dated after the day asked about."""
    from se_flow import MemoryStore

    workflow = se_flow.load_workflow()
    clocks = [Clock(), Clock(), Clock(), Clock()]
    flows = [
        se_flow.open(tmp_path / "due.db", clock=clocks[0], actor="sam"),
        se_flow.SEFlow(MemoryStore(workflow), workflow, clock=clocks[1], actor="sam"),
        se_flow.open(pg_url, clock=clocks[2], actor="sam"),
        se_flow.open(tmp_path / "ports.db", clock=clocks[3], actor="sam"),
    ]
    flows[3].store = _PortsOnly(flows[3].store)
    try:
        for flow, clock in zip(flows, clocks, strict=True):
            flow.add_staff("ada", "Ada Admin", "admin", actor="ada")
            flow.add_staff("sam", "Sam Coach", "coach", actor="ada")
            flow.add_staff("kim", "Kim Coach", "coach", actor="ada")
            steps = Steps(flow)
            met = steps.to("customer_engagement")
            steps.hard(met.id, "customer_engagement")
            paused = steps.to("customer_engagement")
            clock.advance(days=3)
            review = clock.now.date() + dt.timedelta(days=20)
            flow.pause(paused.id, reason="in hospital", review_date=review)
            in_work = steps.to("in_work_support")
            flow.record(in_work.id, "review", {"summary": "first week"})
            corrected = steps.to("customer_engagement")
            clock.advance(days=2)
            # The referral corrected to a later date: one instance, from the later anchor.
            referral = next(r for r in flow.records(corrected.id) if r.kind == "referral")
            flow.record(corrected.id, "referral", dict(referral.fields), supersedes=referral.seq)
            flow.assign(steps.to("customer_engagement").id, "kim", actor="ada")
            clock.advance(days=40)
            flow.withdraw(steps.to("vocational_profiling").id, reason="moved on")
        lists = [f.due_items(within_days=60).items for f in flows]
        assert {i.what for i in lists[0]} >= {"review", "standard"}, lists[0]
        firsts = [i for i in lists[0] if i.name == "ipes_first_meeting"]
        assert [i.case_id for i in firsts].count(corrected.id) == 1, lists[0]
        assert all(found == lists[0] for found in lists[1:])
        kims = [f.due_items(coach="kim", within_days=60).items for f in flows]
        assert kims[0] and {i.coach for i in kims[0]} == {"kim"}
        assert all(found == kims[0] for found in kims[1:])
        earlier = [f.due_items(as_of=START.date() + dt.timedelta(days=4)).items for f in flows]
        assert all(found == earlier[0] for found in earlier[1:])
        # One case's standards (show), closed ones too, read the slim way on the SQL stores.
        for case in flows[1].cases(status="all"):
            per_store = [f.standards(case.id) for f in flows]
            assert all(found == per_store[0] for found in per_store[1:]), case.id
        assert any(flows[0].standards(c.id).results for c in flows[0].cases(status="closed"))
    finally:
        for flow in flows:
            flow.disconnect()


def test_a_due_item_prints_every_field_its_command_needs(tmp_path: Path) -> None:
    """`se-flow record C-1 review` alone is refused (its summary is required): the printed
    command names each required field, and with the placeholders filled in it is accepted."""
    db = tmp_path / "p.db"
    with se_flow.open(db, actor="ada") as f:
        f.add_staff("ada", "Ada Admin", "admin")
        f.add_staff("sam", "Sam Coach", "coach")
        old = dt.datetime.now(dt.UTC) - dt.timedelta(days=60)
        case = f.refer("Alex Doe", source="GP", coach="sam", effective_at=old, actor="sam").case.id
        items = f.due_items(within_days=60, actor="sam").items
    commands = {c for i in items if i.case_id == case for c in i.commands}
    records = sorted(c for c in commands if c.startswith("se-flow record"))
    assert f"se-flow record {case} review summary=TEXT" in records
    filled = {"TEXT": "done", "DATE": "today", "BOOL": "yes", "INT": "1", "DECIMAL": "1"}
    for command in records:
        words = command.split()[2:]
        args = [
            w.split("=")[0] + "=" + filled.get(w.split("=")[1], w.split("=")[1]) if "=" in w else w
            for w in words
        ]
        result = CliRunner().invoke(app, ["--db", str(db), "--as", "sam", "record", *args])
        assert result.exit_code == 0, (command, result.output)
