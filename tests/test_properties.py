"""Invariants under random use: every case stays valid, versions count events, the audit chain
verifies, and any tampering with the log is caught at the event that was touched."""

from __future__ import annotations

import datetime as dt
import sqlite3
from decimal import Decimal
from typing import Any

import hypothesis.strategies as st
from helpers import LEAST_EVIDENCE, drop_triggers, sqlite_conn, where
from hypothesis import HealthCheck, given, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import se_flow
from se_flow._audit import row_hash
from se_flow._workflow import FieldSpec, RecordKind

WORKFLOW = se_flow.load_workflow()
START = dt.datetime(2026, 6, 1, 9, 0, tzinfo=dt.UTC)
TRIGGERS = list(WORKFLOW.triggers)
KINDS = sorted(WORKFLOW.records)
words = st.text(alphabet="abcdefghij klm", min_size=1, max_size=12).filter(str.strip)
employers = st.sampled_from(["Corner Shop", "Town Library", "Bike Works"])


def _field(spec: FieldSpec, today: dt.date) -> st.SearchStrategy[Any]:
    if spec.name == "employer":
        return employers
    if spec.name == "hourly_pay":
        return st.sampled_from([Decimal("9.50"), Decimal("12.21"), Decimal("12.71"), Decimal("15")])
    return {
        "str": words,
        "text": words,
        "int": st.integers(0, 60),
        "decimal": st.decimals(min_value=0, max_value=60, places=2),
        "bool": st.booleans(),
        "date": st.dates(min_value=dt.date(2025, 1, 1), max_value=today),
        "choice": st.sampled_from(spec.options or ("x",)),
        "list": st.lists(words, min_size=1, max_size=3),
        "dated_steps": st.lists(
            st.dates(min_value=today, max_value=today + dt.timedelta(days=90)).map(
                lambda d: f"{d.isoformat()} fewer visits"
            ),
            min_size=1,
            max_size=3,
        ),
    }[spec.type]


def _values(kind: RecordKind, today: dt.date) -> st.SearchStrategy[dict[str, Any]]:
    required = {f.name: _field(f, today) for f in kind.fields if f.required}
    optional = {f.name: _field(f, today) for f in kind.fields if not f.required}
    return st.fixed_dictionaries(required, optional=optional)


FORWARD = [
    "engage",
    "start_profiling",
    "start_job_search",
    "propose_match",
    "start_job",
    "begin_career_development",
    "complete",
    "end_job",
    "decline_match",
    "revise_goals",
    "withdraw",
]


class CaseloadMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = START
        # Reads as the auditor: every write still names its actor, and none may fall back.
        self.flow = se_flow.open(":memory:", clock=lambda: self.now, synchronous="OFF", actor="ava")
        self.flow.add_staff("root", "Root", "admin", actor="setup")
        self.flow.add_staff("lee", "Lee", "team_leader", actor="root")
        self.flow.add_staff("sam", "Sam", "coach", actor="root")
        self.flow.add_staff("ava", "Ava", "auditor", actor="root")
        self.case_ids: list[str] = []
        self.refusals = 0
        self.reached: set[str] = set()

    def teardown(self) -> None:
        REACHED.update(self.reached)
        self.flow.disconnect()

    def _unchanged_after(self, case_id: str, action: Any) -> None:
        """Run an action that may be refused; a refusal must leave no trace."""
        before = (self.flow.case(case_id), self.flow.store.head())
        try:
            action()
        except se_flow.SEFlowError:
            self.refusals += 1
            assert (self.flow.case(case_id), self.flow.store.head()) == before

    @rule(hours=st.integers(1, 24 * 10))
    def time_passes(self, hours: int) -> None:
        self.now += dt.timedelta(hours=hours)

    @rule(back=st.integers(0, 30))
    def refer(self, back: int) -> None:
        case = self.flow.refer(
            "Person", source="GP", actor="sam", effective_at=self.now - dt.timedelta(days=back)
        ).case
        self.case_ids.append(case.id)
        self.reached.add(case.state)

    @precondition(lambda self: self.case_ids)
    @rule(data=st.data(), kind=st.sampled_from(KINDS), actor=st.sampled_from(["sam", "lee", "ava"]))
    def record(self, data: st.DataObject, kind: str, actor: str) -> None:
        case_id = data.draw(st.sampled_from(self.case_ids))
        values = data.draw(_values(WORKFLOW.records[kind], self.now.date()))
        back = data.draw(st.integers(0, 5))
        self._unchanged_after(
            case_id,
            lambda: (
                self.flow.record(
                    case_id,
                    kind,
                    values,
                    actor=actor,
                    effective_at=self.now - dt.timedelta(days=back),
                ).record
            ),
        )

    @precondition(lambda self: self.case_ids)
    @rule(
        data=st.data(),
        trigger=st.sampled_from(TRIGGERS),
        actor=st.sampled_from(["sam", "lee", "ava"]),
        reason=st.one_of(st.none(), words),
        override=st.one_of(st.none(), words),
        outcome=st.one_of(st.none(), st.sampled_from([*WORKFLOW.close_reasons, "bogus"])),
        review_in=st.one_of(st.none(), st.integers(-3, 30)),
    )
    def advance(
        self,
        data: st.DataObject,
        trigger: str,
        actor: str,
        reason: str | None,
        override: str | None,
        outcome: str | None,
        review_in: int | None,
    ) -> None:
        case_id = data.draw(st.sampled_from(self.case_ids))
        review = None if review_in is None else self.now.date() + dt.timedelta(days=review_in)
        self._unchanged_after(
            case_id,
            lambda: (
                self.flow.advance(
                    case_id,
                    trigger,
                    actor=actor,
                    reason=reason,
                    override=override,
                    outcome=outcome,
                    review_date=review,
                ).case
            ),
        )

    @precondition(lambda self: self.case_ids)
    @rule(data=st.data())
    def supply_evidence_and_move_on(self, data: st.DataObject) -> None:
        case_id = data.draw(st.sampled_from(self.case_ids))
        for _ in range(data.draw(st.integers(1, 8))):
            case = self.flow.case(case_id)
            if case.status is not se_flow.Status.ACTIVE:
                return
            # The least evidence for every guard, so random runs get deep into the workflow.
            forward = LEAST_EVIDENCE.get(where(case))
            for kind, values in forward.records if forward else ():
                self.flow.record(case_id, kind, values, actor="sam")
            if case.state == "in_work_support" and data.draw(st.booleans()):
                try:
                    self.flow.record(case_id, "job_end", reason="contract ended", actor="sam")
                except se_flow.InvalidRecord as refused:
                    # A job ends once: a second job end, with no job open, is refused.
                    assert list(refused.problems) == ["job"]
            allowed = [
                c.trigger
                for c in self.flow.available(case_id, actor="sam")
                if c.allowed and c.trigger in FORWARD
            ]
            if allowed:
                trigger = data.draw(st.sampled_from(allowed))
                self.flow.advance(case_id, trigger, actor="sam", reason="next step")
                self.reached.add(self.flow.case(case_id).state)

    @precondition(lambda self: self.case_ids)
    @rule(data=st.data())
    def reopen(self, data: st.DataObject) -> None:
        case_id = data.draw(st.sampled_from(self.case_ids))
        try:
            case = self.flow.reopen(case_id, source="self", actor="sam").case
        except se_flow.SEFlowError:
            self.refusals += 1
            return
        self.case_ids.append(case.id)

    @invariant()
    def every_case_is_valid(self) -> None:
        total = 0
        for case_id in self.case_ids:
            case = self.flow.case(case_id)
            stage = WORKFLOW.states[case.state]
            assert (case.status is se_flow.Status.CLOSED) == (case.state == WORKFLOW.final)
            assert case.phase in (stage.phases or (None,))
            assert (case.outcome is not None) == (case.status is se_flow.Status.CLOSED)
            assert (case.review_due is None) == (case.status is se_flow.Status.CLOSED)
            history = self.flow.history(case_id)
            assert case.version == len(history)
            total += len(history)
        assert self.flow.verify().ok
        assert self.flow.store.head()[0] == total + 4  # four staff events


CaseloadMachine.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestCaseload = CaseloadMachine.TestCase
REACHED: set[str] = set()


def test_random_runs_reach_every_state() -> None:
    """Guards the stateful test above against only ever exercising refusals."""
    REACHED.clear()
    run = settings(
        max_examples=25,
        stateful_step_count=60,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    from hypothesis.stateful import run_state_machine_as_test

    run_state_machine_as_test(CaseloadMachine, settings=run)
    assert set(WORKFLOW.states) <= REACHED, set(WORKFLOW.states) - REACHED


# --- tampering ------------------------------------------------------------------------------


def _build_log(flow: se_flow.SEFlow, cases: int) -> None:
    flow.add_staff("sam", "Sam", "coach", actor="setup")
    for n in range(cases):
        case = flow.refer(f"Person {n}", source="GP", actor="sam").case
        flow.advance(case.id, "engage", actor="sam")
        flow.record(case.id, "note", text=f"met {n}", actor="sam")


def _rows(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    cur = conn.execute("SELECT * FROM events ORDER BY seq")
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur]


@settings(max_examples=60, deadline=None)
@given(
    cases=st.integers(2, 5),
    how=st.sampled_from(["edit", "delete", "insert", "swap"]),
    data=st.data(),
)
def test_any_tampering_is_caught_at_the_event_touched(
    cases: int, how: str, data: st.DataObject
) -> None:
    flow = se_flow.open(":memory:", clock=lambda: START, actor="sam")
    _build_log(flow, cases)
    conn = sqlite_conn(flow)
    last = flow.store.head()[0]
    assert flow.verify().ok
    drop_triggers(conn)
    if how == "edit":
        seq = data.draw(st.integers(1, last))
        column = data.draw(
            st.sampled_from(["actor", "reason", "payload", "effective_at", "to_state"])
        )
        conn.execute(f"UPDATE events SET {column} = ? WHERE seq = ?", ("forged", seq))
        expected = seq
    elif how == "delete":
        seq = data.draw(st.integers(1, last - 1))  # the tail needs a checkpoint: see export tests
        conn.execute("DELETE FROM events WHERE seq = ?", (seq,))
        expected = seq + 1
    elif how == "insert":
        # A forged event slipped in at `seq`, correctly linked to its predecessor and hashed;
        # everything after it is renumbered to make room.
        seq = data.draw(st.integers(2, last))
        rows = _rows(conn)
        conn.execute("UPDATE events SET seq = seq + 1000000 WHERE seq >= ?", (seq,))
        conn.execute("UPDATE events SET seq = seq - 1000000 + 1 WHERE seq >= 1000000")
        forged = {**rows[seq - 1], "seq": seq, "reason": "forged approval"}
        forged["prev_hash"] = rows[seq - 2]["hash"]
        forged["hash"] = row_hash(forged)
        conn.execute(
            f"INSERT INTO events ({', '.join(forged)}) VALUES ({', '.join('?' for _ in forged)})",
            list(forged.values()),
        )
        expected = seq + 1
    else:
        i = data.draw(st.integers(1, last - 1))
        j = data.draw(st.integers(i + 1, last))
        conn.execute("UPDATE events SET seq = -1 WHERE seq = ?", (i,))
        conn.execute("UPDATE events SET seq = ? WHERE seq = ?", (i, j))
        conn.execute("UPDATE events SET seq = ? WHERE seq = -1", (j,))
        expected = i
    result = flow.verify()
    assert not result.ok
    assert result.bad_seq == expected, result
    assert result.problem
    flow.disconnect()
