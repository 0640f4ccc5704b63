"""The stage spells projection on its own: events in, spells out, no store. The rules are the
ones `_projections` states; the export's stage_histories is these spells, row by row."""

from __future__ import annotations

import datetime as dt

from se_flow._projections import Spell, StageEvent, spell_row, spell_spans, spells

FINAL = "closed"


def at(day: int) -> str:
    return dt.datetime(2026, 3, day, tzinfo=dt.UTC).isoformat()


def event(
    seq: int, kind: str, trigger: str | None, stage: str | None, day: int, phase: str | None = None
) -> StageEvent:
    return StageEvent(seq, kind, trigger, stage, phase, at(day), "sam")


def test_pause_resume_phase_and_close_each_end_a_spell() -> None:
    events = [
        event(1, "referral", None, "referred", 1),
        event(2, "transition", "engage", "customer_engagement", 2),
        event(3, "record", None, "customer_engagement", 3),  # not a stage event: passed over
        event(4, "pause", "pause", "customer_engagement", 4),
        event(5, "resume", "resume", "customer_engagement", 6),
        event(6, "transition", "start_job", "in_work_support", 8, "in_work_support"),
        # A transition that leaves stage, phase and status as they are ends nothing.
        event(7, "transition", "review", "in_work_support", 9, "in_work_support"),
        event(8, "phase", "progress", "in_work_support", 12, "career_development"),
        event(9, "transition", "close", FINAL, 20),
    ]
    got = list(spells(events, FINAL))
    assert [(s.stage, s.phase, s.status, s.trigger_in, s.trigger_out) for s in got] == [
        ("referred", None, "active", None, "engage"),
        ("customer_engagement", None, "active", "engage", "pause"),
        ("customer_engagement", None, "paused", "pause", "resume"),
        ("customer_engagement", None, "active", "resume", "start_job"),
        ("in_work_support", "in_work_support", "active", "start_job", "progress"),
        ("in_work_support", "career_development", "active", "progress", "close"),
    ]
    assert [(s.number, s.seq_in, s.seq_out) for s in got] == [
        (1, 1, 2),
        (2, 2, 4),
        (3, 4, 5),
        (4, 5, 6),
        (5, 6, 8),
        (6, 8, 9),
    ]
    assert [(s.entered, s.left) for s in got] == [
        (at(a), at(b)) for a, b in ((1, 2), (2, 4), (4, 6), (6, 8), (8, 12), (12, 20))
    ]
    assert all(isinstance(s, Spell) and s.actor == "sam" for s in got)
    # The final state has no spell; every spell is closed, so days need no "today".
    assert [s.days(dt.date(2099, 1, 1)) for s in got] == [1, 2, 2, 2, 4, 8]


def test_a_reopened_case_starts_with_a_reopen_spell_left_open() -> None:
    events = [
        event(30, "reopen", "reopen", "customer_engagement", 10),
        event(31, "pause", "pause", "customer_engagement", 15),
    ]
    first, paused = spells(events, FINAL)
    assert (first.number, first.trigger_in, first.status, first.seq_out) == (
        1,
        "reopen",
        "active",
        31,
    )
    assert (paused.number, paused.status, paused.left, paused.trigger_out) == (
        2,
        "paused",
        None,
        None,
    )
    # An open spell counts its days to the day given.
    assert paused.days(dt.date(2026, 3, 25)) == 10


def test_a_pause_in_a_paused_spell_changes_nothing_and_no_events_no_spells() -> None:
    events = [
        event(1, "referral", None, "referred", 1),
        event(2, "pause", "pause", "referred", 2),
        event(3, "pause", "pause", "referred", 3),
    ]
    assert [(s.status, s.seq_in, s.seq_out) for s in spells(events, FINAL)] == [
        ("active", 1, 2),
        ("paused", 2, None),
    ]
    assert list(spells([], FINAL)) == []


def test_a_row_is_the_spell_with_its_case() -> None:
    # As the export reads them: the case's participant and episode, then its id and the event.
    (span,) = spell_spans([("P-1", 1, "C-7", *event(1, "referral", None, "referred", 1))], FINAL)
    row = spell_row(*span, dt.date(2026, 3, 4))
    assert row == (
        "C-7",
        "P-1",
        1,
        1,
        "referred",
        None,
        "active",
        at(1),
        None,
        3,
        None,
        None,
        "sam",
        1,
        None,
    )
