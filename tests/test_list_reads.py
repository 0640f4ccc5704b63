"""Lists read what their page shows, however many cases there are, in every order.

`cases` with a sort, `stuck_days` and `after` used to read every case and sort them in
Python (a million cases: seconds, hundreds of megabytes), and paged a sorted list by case
number, so its second page skipped cases. Now each order is the store's query (`_rows.
case_runs`): the pages of every order give every case once, and a page costs as many of
SQLite's virtual machine steps (counted, not timed) on a caseload ten times the size.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import Clock, sqlite_conn
from hypothesis import given
from hypothesis import strategies as st
from pg import pg_server, pg_url
from test_query_plans import _steps

import se_flow
from se_flow import Status
from se_flow._histories import review_query
from se_flow._rows import case_queries, case_runs, run_key
from se_flow.ports import CASE_SORTS, CaseFilter

__all__ = ["pg_server", "pg_url"]  # fixtures

SMALL, BIG = 40, 400


def _cases(
    path: Path, n: int, coaches: list[str], coach_of: Callable[[int], str | None], days: int
) -> se_flow.SEFlow:
    """`n` cases, case `i` held by `coach_of(i)`, referred a day apart over `days` days (each
    contacted on its own day), a third engaged, a fifth paused and a fifth closed (lists of
    each status have pages of their own); read 120 days later."""
    clock = Clock(dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC))
    flow = se_flow.open(path, clock=clock, actor="ada")
    flow.add_staff("ada", "Ada Admin", "admin")
    for coach in coaches:
        flow.add_staff(coach, coach.title(), "coach")
    with flow.batch():
        for i in range(n):
            at = clock.now - dt.timedelta(days=(i * 37) % days)
            case = flow.refer(f"P {i}", source="GP", coach=coach_of(i), effective_at=at).case
            if i % 3 == 0:
                flow.advance(case.id, "engage", effective_at=at)
            if i % 5 == 1:
                back = clock.now.date() + dt.timedelta(days=1 + i % 60)
                flow.pause(case.id, reason="in hospital", review_date=back, effective_at=at)
            elif i % 5 == 2:
                flow.withdraw(case.id, reason="moved away", effective_at=at)
    clock.now += dt.timedelta(days=120)
    return flow


def _caseload(path: Path, n: int) -> se_flow.SEFlow:
    """`n` cases for sam and kim (a few with no coach) over `n` days: a caseload that grows
    by each coach's cases."""
    pair = ("sam", "kim")
    return _cases(path, n, list(pair), lambda i: None if i % 7 == 0 else pair[i % 2], n)


@pytest.fixture(scope="module")
def flows(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[int, se_flow.SEFlow]]:
    folder = tmp_path_factory.mktemp("lists")
    with contextlib.ExitStack() as stack:
        yield {n: stack.enter_context(_caseload(folder / f"{n}.db", n)) for n in (SMALL, BIG)}


# Each list a coach or team leader asks for, by the API call the CLI makes (`cases`).
LISTS: dict[str, dict[str, Any]] = {
    **{f"sort {s}": {"sort": s} for s in CASE_SORTS},
    **{f"sort {s}, one coach": {"sort": s, "coach": "sam"} for s in ("days", "seen", "stage")},
    "stuck": {"stuck_days": 90},
    "stuck, by days": {"stuck_days": 90, "sort": "days"},
    "overdue, by stage": {"overdue": True, "sort": "stage"},
    "by number": {},
}


@pytest.mark.parametrize("name", list(LISTS))
def test_every_order_pages_through_every_case_once(
    flows: dict[int, se_flow.SEFlow], name: str
) -> None:
    flow = flows[SMALL]
    whole = [c.id for c in flow.cases(actor="ada", status="open", **LISTS[name])]
    assert len(whole) > 10, whole
    for size in (3, 7):
        paged: list[str] = []
        after = None
        while page := flow.cases(
            actor="ada", status="open", limit=size, after=after, **LISTS[name]
        ):
            paged += [c.id for c in page]
            after = page[-1].id
        assert paged == whole, size


def test_a_sorted_list_is_in_its_order(flows: dict[int, se_flow.SEFlow]) -> None:
    flow = flows[SMALL]
    days = flow.cases(sort="days", status="open", actor="ada")
    assert [c.stage_entered_at for c in days] == sorted(c.stage_entered_at for c in days)
    coaches = [c.coach for c in flow.cases(sort="coach", status="open", actor="ada")]
    assert coaches[0] == "kim" and coaches[-1] is None
    assert coaches == sorted(coaches, key=lambda c: (c is None, c or ""))
    stages = [c.state for c in flow.cases(sort="stage", status="open", actor="ada")]
    assert stages == sorted(stages, key=["referred", "customer_engagement"].index)
    today = flow.now().date()
    stuck = flow.cases(stuck_days=150, actor="ada")
    assert stuck and all((today - c.stage_entered_at.date()).days > 150 for c in stuck)
    every = flow.cases(status="open", actor="ada")
    assert len(stuck) == sum((today - c.stage_entered_at.date()).days > 150 for c in every)


# Each sorted list of another status, and of all of them: what a team leader reads to find
# the paused cases longest in their stage, or the closed ones by coach.
STATUS_LISTS: dict[str, dict[str, Any]] = {
    f"{status}, sort {s}": {"sort": s, "status": status}
    for status in ("all", "active", "paused", "closed")
    for s in CASE_SORTS
}


@pytest.mark.parametrize("name", list(STATUS_LISTS))
def test_every_status_s_sorted_list_pages_through_its_cases_once(
    flows: dict[int, se_flow.SEFlow], name: str
) -> None:
    flow = flows[SMALL]
    whole = [c.id for c in flow.cases(actor="ada", **STATUS_LISTS[name])]
    status = STATUS_LISTS[name]["status"]
    every = flow.cases(actor="ada", status=status)
    assert sorted(whole) == sorted(c.id for c in every) and len(whole) >= 8
    paged: list[str] = []
    after = None
    while page := flow.cases(actor="ada", limit=3, after=after, **STATUS_LISTS[name]):
        paged += [c.id for c in page]
        after = page[-1].id
    assert paged == whole


# One coach's list reads that coach's cases by the coach index (sorting them): the work of a
# caseload, about thirty cases, which here grows with the fixture's two coaches.
@pytest.mark.parametrize(
    "name",
    [*(n for n in LISTS if "one coach" not in n), *STATUS_LISTS],
)
def test_a_page_costs_the_same_on_a_caseload_ten_times_the_size(
    flows: dict[int, se_flow.SEFlow], name: str
) -> None:
    asked = {"status": "open", **LISTS.get(name, STATUS_LISTS.get(name, {}))}
    costs = {}
    for n, flow in flows.items():
        # A page deep in the list too: after the 5th case in its order.
        mark = flow.cases(actor="ada", limit=5, **asked)[-1].id
        conn = sqlite_conn(flow)
        costs[n] = [
            _steps(
                conn,
                lambda f=flow, a=after: f.cases(  # type: ignore[misc]
                    actor="ada", limit=3, after=a, **asked
                ),
            )
            for after in (None, mark)
        ]
    for small, big in zip(costs[SMALL], costs[BIG], strict=True):
        assert big <= small * 1.25, costs


def test_the_check_catches_a_list_that_reads_every_case(
    flows: dict[int, se_flow.SEFlow],
) -> None:
    """Without the index a sort reads its run by, its page reads every open case."""
    costs = {}
    for n, flow in flows.items():
        conn = sqlite_conn(flow)
        costs[n] = _steps(
            conn,
            lambda f=flow: f.cases(sort="seen", status="open", limit=10, actor="ada"),  # type: ignore[misc]
        )
    assert costs[BIG] <= costs[SMALL] * 1.25
    flow = flows[BIG]
    # A connection of its own: the store's cached statements are not re-planned.
    path = sqlite_conn(flow).execute("PRAGMA database_list").fetchone()[2]
    conn = sqlite3.connect(path)
    try:
        conn.execute("DROP INDEX cases_sort_seen")
        with se_flow.open(path, actor="ada") as dropped:
            scanned = _steps(
                sqlite_conn(dropped), lambda: dropped.cases(sort="seen", status="open", limit=10)
            )
        assert scanned > costs[SMALL] * 3, (scanned, costs)
    finally:
        conn.execute("CREATE INDEX cases_sort_seen ON cases (status, last_contact_at, num)")
        conn.commit()
        conn.close()


_WF = se_flow.load_workflow()
_STATES = [s for group in _WF.stage_groups for s in group]
_ROWS = st.fixed_dictionaries(
    {
        "num": st.integers(1, 50),
        "state": st.sampled_from([*_STATES, "retired_state"]),
        "phase": st.none() | st.sampled_from(["in_work_support", "career_development"]),
        "coach": st.none() | st.sampled_from(["kim", "sam", "sámi"]),
        "stage_entered_at": st.sampled_from(
            ["2026-01-01T09:00:00+00:00", "2026-02-01T00:00:00+00:00"]
        ),
        "last_contact_at": st.none()
        | st.sampled_from(["2026-01-03T10:00:00+00:00", "2026-03-01T10:00:00+00:00"]),
        "review_due": st.none() | st.sampled_from(["2026-01-09", "2026-04-30"]),
    }
)


@given(rows=st.lists(_ROWS, max_size=12), sort=st.sampled_from(sorted(CASE_SORTS)))
def test_the_runs_read_cases_in_the_order_each_sort_says(
    rows: list[dict[str, Any]], sort: str
) -> None:
    """`CASE_SORTS`' words, as a key over rows as the stores keep them (NULLs and states the
    workflow does not have included), against the order the runs read them in."""
    for i, row in enumerate(rows):
        row["id"] = f"C-{row['num']}-{i}"  # ids unique, numbers not: ties stay by number
    rank = {s: i for i, group in enumerate(_WF.stage_groups) for s in group}
    spoken: dict[str, Callable[[dict[str, Any]], Any]] = {
        "days": lambda r: (r["stage_entered_at"], r["num"]),
        "due": lambda r: (r["review_due"] is None, r["review_due"] or "", r["num"]),
        "seen": lambda r: (r["last_contact_at"] is not None, r["last_contact_at"] or "", r["num"]),
        "coach": lambda r: (r["coach"] is None, r["coach"] or "", r["num"]),
        "stage": lambda r: (
            rank.get(r["state"], len(rank)),
            r["phase"] is not None,
            r["phase"] or "",
            r["num"],
        ),
    }
    runs = case_runs(CaseFilter(sort=sort), _WF.stage_groups)
    assert [spoken[sort](r) for r in sorted(rows, key=lambda r: run_key(runs, r))] == sorted(
        spoken[sort](r) for r in rows
    )


# --- a whole list, a page at a time ---------------------------------------------------------


@pytest.mark.parametrize("name", ["by number", "sort stage", "sort coach", "stuck"])
def test_caseload_pages_give_the_whole_caseload_a_page_at_a_time(
    flows: dict[int, se_flow.SEFlow], name: str
) -> None:
    flow = flows[SMALL]
    whole = flow.caseload(actor="ada", **LISTS[name])
    pages = list(flow.caseload_pages(page_size=6, actor="ada", **LISTS[name]))
    assert all(0 < len(p.cases) <= 6 for p in pages)
    assert [c for p in pages for c in p.cases] == list(whole.cases)
    assert {p.today for p in pages} == {whole.today}


def test_caseload_pages_read_one_moment_of_the_store(tmp_path: Path) -> None:
    """A case referred while the pages are read (another writer) is not among them: the
    pages are one snapshot, so none is skipped or repeated as the list moves."""
    path = tmp_path / "c.db"
    with _caseload(path, 12) as flow, se_flow.open(path, actor="ada") as other:
        pages = flow.caseload_pages(page_size=5, sort="days")
        first = next(pages)
        other.refer("Late Comer", source="GP", coach="sam")
        rest = [c for p in pages for c in p.cases]
        assert len(first.cases) + len(rest) == 10  # 12 cases, two withdrawn (closed)
        assert len(flow.cases(status="open")) == 11


def test_caseload_pages_refuse_a_page_size_that_is_no_size(
    flows: dict[int, se_flow.SEFlow],
) -> None:
    flow = flows[SMALL]
    for size in (0, -3):
        with pytest.raises(se_flow.InvalidInput, match="page_size"):
            next(flow.caseload_pages(page_size=size, actor="ada"))
    with pytest.raises(se_flow.InvalidInput, match="unknown sort"):
        next(flow.caseload_pages(sort="name", actor="ada"))
    # A coach nobody knows is a typo, not an empty caseload.
    with pytest.raises(se_flow.StaffNotFound, match="so no cases of theirs"):
        next(flow.caseload_pages(coach="nobody", actor="ada"))


def test_the_cli_prints_a_whole_list_a_page_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`cases` and `due` with no --limit write page after page: one header, every case or
    item once, the total at the end; --json the same JSON as the whole list."""
    from test_cli import CLI, ok

    path = tmp_path / "c.db"
    with _caseload(path, 30):
        pass
    run = CLI(path)
    whole = run.json("cases", "--limit", "1000", actor="ada")
    monkeypatch.setattr(se_flow._api, "PAGE_SIZE", 4)
    assert run.json("cases", actor="ada") == whole
    text = ok(run("cases", actor="ada", env={"COLUMNS": "80"}))
    lines = text.splitlines()
    assert sum(line.startswith("Case ") for line in lines) == 1
    assert [line.split()[0] for line in lines[1:-1]] == [c["id"] for c in whole]
    assert lines[-1].startswith(f"{len(whole)} case(s), ")
    assert all(len(line) <= 80 for line in lines)
    due = run.json("due", "--all", "--within", "30", actor="ada")
    assert len(due) > 8
    monkeypatch.setattr(se_flow._api, "PAGE_SIZE", 1000)
    assert run.json("due", "--all", "--within", "30", actor="ada") == due
    monkeypatch.setattr(se_flow._api, "PAGE_SIZE", 3)
    printed = ok(
        run("due", "--all", "--within", "30", actor="ada", env={"COLUMNS": "80"})
    ).splitlines()
    assert sum(line.startswith("Due ") and "Case" in line for line in printed) == 1
    assert printed[-1].startswith(f"{len(due)} due, ")
    assert all(len(line) <= 80 for line in printed)


def _team(path: Path, n: int) -> se_flow.SEFlow:
    """`n` cases, twenty for each of `n // 20` coaches, over 200 days: a team that grows by
    its coaches."""
    coaches = [f"coach-{k}" for k in range(n // 20)]
    return _cases(path, n, coaches, lambda i: coaches[i % len(coaches)], 200)


@pytest.fixture(scope="module")
def teams(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[int, se_flow.SEFlow]]:
    folder = tmp_path_factory.mktemp("teams")
    with contextlib.ExitStack() as stack:
        yield {n: stack.enter_context(_team(folder / f"{n}.db", n)) for n in (SMALL, BIG)}


# What one coach reads of their own caseload, in every order: the same twenty cases however
# big the team, found by the coach index (a status's range of an order's index, read through
# the whole team to find one coach's cases, was a second at a million cases).
def _sorted(sort: str, status: str = "open") -> Callable[[se_flow.SEFlow], object]:
    return lambda f: f.cases(coach="coach-1", status=status, sort=sort, limit=10)


COACH_LISTS: dict[str, Callable[[se_flow.SEFlow], object]] = {
    **{f"cases, sort {s}": _sorted(s) for s in CASE_SORTS},
    **{f"all cases, sort {s}": _sorted(s, "all") for s in ("days", "stage")},
    "overdue": lambda f: f.cases(coach="coach-1", overdue=True),
    "due": lambda f: f.due(coach="coach-1"),
    "due list": lambda f: f.due_items(coach="coach-1", within_days=30),
}


@pytest.mark.parametrize("name", list(COACH_LISTS))
def test_one_coach_s_list_costs_the_same_in_a_team_ten_times_the_size(
    teams: dict[int, se_flow.SEFlow], name: str
) -> None:
    costs = {
        n: _steps(sqlite_conn(flow), lambda f=flow: COACH_LISTS[name](f))  # type: ignore[misc]
        for n, flow in teams.items()
    }
    assert costs[BIG] <= costs[SMALL] * 1.25, costs


def test_postgresql_reads_each_status_s_first_rows_by_its_index_and_merges_them(
    pg_url: str,
) -> None:
    """PostgreSQL plans a compound's ORDER BY as a sort of all its arms give: each status's
    arm is limited to the page inside, so the page is a Merge Append of index ranges, never
    a sort of a whole status (planned with sorts and scans of the table priced out, so a
    plan that needs one shows it at any size)."""
    clock = Clock(dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC))
    with se_flow.open(pg_url, clock=clock, actor="ada") as flow:
        flow.add_staff("ada", "Ada Admin", "admin")
        flow.add_staff("sam", "Sam", "coach")
        with flow.batch():
            for i in range(30):
                case = flow.refer(f"P {i}", source="GP", coach="sam").case
                if i % 3 == 1:
                    flow.withdraw(case.id, reason="moved away")
        day = clock.now.date()
        queries = [
            q(10)
            for where in (
                *(CaseFilter(sort=s) for s in ("days", "due", "seen", "coach")),
                CaseFilter(sort="days", open_only=True),
                CaseFilter(sort="seen", status=Status.CLOSED),
                CaseFilter(due_by=day),
            )
            for q in case_queries(where, "%s")
        ]
        queries.append(review_query(None, day, "%s", 10))
        store: Any = flow.store
        with store._pool.connection() as conn:
            for setting in ("enable_sort", "enable_seqscan", "enable_bitmapscan"):
                conn.execute(f"SET {setting} = off")
            for sql, params in queries:
                plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + sql, params))
                assert "Sort  (" not in plan and "Seq Scan" not in plan, plan
                assert "UNION ALL" not in sql or "Merge Append" in plan, plan
