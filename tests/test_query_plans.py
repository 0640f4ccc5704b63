"""No per-case command walks a case's whole history to do its work.

A case in work support for two years has hundreds of records; a command that reads them all
(or sorts them) costs more every week. Every SQL statement the per-case commands issue (as
SQLite traces them, bound values expanded) is explained with `EXPLAIN QUERY PLAN` on a case
with many records, and no plan may scan the records or events tables, sort their rows in a
temporary B-tree, or filter records by kind (or events by trigger) after reading them all
through an index that does not know the kind.

An index seek can still read a whole case's worth of rows (every contact, to find the last):
the same commands are counted in SQLite's virtual machine steps (not timed) on the long case
and on a shorter one, and may do at most a quarter more on the long one.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from helpers import LEAST_EVIDENCE, Steps, sqlite_conn

import se_flow

REVIEWS = 150
SUMMARY = "Weekly review: two applications sent"

# The chain head (`... FROM events ORDER BY seq DESC LIMIT 1`, no WHERE) is read by walking
# the rowid backwards one step: SQLite calls that a SCAN, but it reads one row.
_HEAD = re.compile(r"FROM events ORDER BY seq DESC LIMIT 1$")
_LOG_TABLES = re.compile(r"\b(records|events)\b")


@contextmanager
def traced(conn: sqlite3.Connection) -> Iterator[list[str]]:
    seen: list[str] = []

    def keep(sql: str) -> None:
        text = " ".join(sql.split())
        # Trigger programs are traced as comments; their statements are not ours to explain.
        if not text.startswith("--"):
            seen.append(text)

    conn.set_trace_callback(keep)
    try:
        yield seen
    finally:
        conn.set_trace_callback(None)


def problems(conn: sqlite3.Connection, statements: list[str]) -> list[str]:
    """Each statement on the log's tables whose plan walks more than the case needs."""
    found = []
    for sql in dict.fromkeys(statements):
        if not _LOG_TABLES.search(sql) or sql.split()[0].upper() not in {"SELECT", "UPDATE"}:
            continue
        plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql)]
        for step in plan:
            # A table may be read under an alias (`records r`, a subquery's `records s`).
            if re.match(r"SCAN (records|events|r|s|e)\b", step) and not _HEAD.search(sql):
                found.append(f"{sql}\n    scans: {step}")
            if "USE TEMP B-TREE" in step:
                found.append(f"{sql}\n    sorts: {step}")
        # A table may be read under an alias (`records r`): the plan then names the alias.
        if re.search(r"FROM records\b.*\bkind (IN|=)", sql) and not any(
            re.search(r"\b(records|r) USING .*\bkind=", step) for step in plan
        ):
            found.append(f"{sql}\n    reads every record of the case to pick kinds: {plan}")
        if re.search(r"FROM events\b.*\btrigger (IN|=)", sql) and not any(
            re.search(r"\b(events|e) USING .*\btrigger[=>]", step) for step in plan
        ):
            found.append(f"{sql}\n    reads every event of the case to pick triggers: {plan}")
    return found


PROFILES: dict[str, int] = {}
"""The vocational profile's seq on each case the fixtures make (what a correction names)."""


def _profiled(flow: se_flow.SEFlow, case_id: str) -> None:
    found = (r.seq for r in flow.records(case_id) if r.kind == "vocational_profile")
    PROFILES[case_id] = next(found)


def _evidenced(flow: se_flow.SEFlow, steps: Steps, reviews: int) -> se_flow.Case:
    case = steps.to("vocational_profiling")
    # What start_job_search's guards read, and a history of reviews they do not.
    steps.record(case.id, LEAST_EVIDENCE["vocational_profiling"].records)
    flow.record(case.id, "outreach_attempt", channel="phone")
    with flow.batch():
        for _ in range(reviews):
            flow.record(case.id, "review", summary=SUMMARY)
    _profiled(flow, case.id)
    return flow.case(case.id)


@pytest.fixture
def long_case(flow: se_flow.SEFlow, steps: Steps) -> se_flow.Case:
    case = steps.to("vocational_profiling")
    # What start_job_search's guards read, and a long history of reviews they do not.
    steps.record(case.id, LEAST_EVIDENCE["vocational_profiling"].records)
    with flow.batch():
        for _ in range(REVIEWS):
            flow.record(case.id, "review", summary=SUMMARY)
    # Another case around it, so a scan of the whole table would not be the case's alone.
    steps.to("vocational_profiling")
    _profiled(flow, case.id)
    return flow.case(case.id)


COMMANDS: dict[str, Callable[[se_flow.SEFlow, str], object]] = {
    "advance": lambda f, c: f.advance(c, "start_job_search"),
    "advance twice": lambda f, c: (
        f.advance(c, "start_job_search"),
        f.advance(c, "revise_goals", reason="Wants warehouse work too"),
    ),
    "record": lambda f, c: f.record(c, "review", summary=SUMMARY),
    "check": lambda f, c: f.check(c, "start_job_search"),
    # The outreach guard: the last contact (150 reviews are contacts) and the attempts since.
    "check close_disengaged": lambda f, c: f.check(c, "close_disengaged"),
    "correct a record": lambda f, c: f.record(
        c, "vocational_profile", job_goals=["warehouse"], supersedes=PROFILES[c]
    ),
    "next": lambda f, c: f.next_steps(c),
    "show": lambda f, c: f.case_view(c),
    "show --corrected": lambda f, c: f.case_view(c, include_superseded=True),
    "history": lambda f, c: f.history_page(c),
    "history, an earlier page": lambda f, c: f.history_page(c, before_seq=f.case(c).version),
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_per_case_command_reads_only_what_it_needs_of_a_long_history(
    flow: se_flow.SEFlow, long_case: se_flow.Case, command: str
) -> None:
    conn = sqlite_conn(flow)
    with traced(conn) as statements:
        COMMANDS[command](flow, long_case.id)
    assert any(_LOG_TABLES.search(s) for s in statements), statements
    assert problems(conn, statements) == []


# Reads whose work grows with the case by nature (every record, every event), and `show`,
# whose service standards read every record of the kinds they count (a projection's work).
_GROWS = {"show", "show --corrected", "history, an earlier page"}


def _steps(conn: sqlite3.Connection, run: Callable[[], object]) -> int:
    count = [0]

    def step() -> int:
        count[0] += 1
        return 0

    conn.set_progress_handler(step, 10)
    try:
        run()
    finally:
        conn.set_progress_handler(None, 10)
    return count[0] * 10


@pytest.mark.parametrize("command", [c for c in COMMANDS if c not in _GROWS])
def test_a_per_case_command_does_as_much_on_a_long_case_as_on_a_short_one(
    flow: se_flow.SEFlow, steps: Steps, command: str
) -> None:
    # The short case has a page of reviews too, so the first pages read the same rows.
    long, short = _evidenced(flow, steps, REVIEWS), _evidenced(flow, steps, 25)
    conn = sqlite_conn(flow)
    on_long = _steps(conn, lambda: COMMANDS[command](flow, long.id))
    on_short = _steps(conn, lambda: COMMANDS[command](flow, short.id))
    assert on_long <= on_short * 1.25, (on_long, on_short)


def test_the_check_catches_a_read_that_walks_the_case(
    flow: se_flow.SEFlow, long_case: se_flow.Case
) -> None:
    # A connection of its own: a cached EXPLAIN statement is not re-planned after DROP INDEX.
    conn = sqlite3.connect(sqlite_conn(flow).execute("PRAGMA database_list").fetchone()[2])
    try:
        walk = f"SELECT seq FROM records WHERE case_id = '{long_case.id}' AND kind IN ('review')"
        assert problems(conn, [walk]) == []
        # Without the (case_id, kind, seq) index, picking kinds reads every record of the case
        # (records_kind, by kind then case, would serve it as well).
        conn.execute("DROP INDEX records_case_kind")
        conn.execute("DROP INDEX records_case_kind_at")
        conn.execute("DROP INDEX records_kind")
        assert len(problems(conn, [walk + " "])) == 1
        sort = f"SELECT seq FROM records WHERE case_id = '{long_case.id}' ORDER BY effective_at"
        assert len(problems(conn, [sort])) == 1
        scan = "SELECT seq FROM events WHERE reason = 'x'"
        assert len(problems(conn, [scan])) == 1
    finally:
        conn.close()
