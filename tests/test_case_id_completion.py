"""Completing a case id reads a bounded number of cases however large the store: at most
`COMPLETIONS` ids, each read picked by the store by prefix and limited there (an index range on
SQLite, never a scan or a sort of every case); the reader's own open cases come first."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import Clock, sqlite_conn
from test_query_plans import traced

import se_flow
from se_flow import MemoryStore
from se_flow._api import COMPLETIONS
from se_flow.contract import WORKFLOW
from se_flow.ports import CaseFilter

CASES = 250


class CountingStore(MemoryStore):
    """A memory store that keeps each case filter it is asked for and how many cases it gave."""

    def __init__(self) -> None:
        super().__init__(WORKFLOW)
        self.filters: list[CaseFilter] = []
        self.given = 0

    def cases(self, where: CaseFilter) -> Iterator[se_flow.Case]:
        self.filters.append(where)
        for case in super().cases(where):
            self.given += 1
            yield case


def _caseload(flow: se_flow.SEFlow, n: int = CASES) -> list[str]:
    """`n` cases, every seventh (C-7, C-14, ...) held by sam, the rest by kim; C-14 closed."""
    flow.add_staff("ada", "Ada Admin", "admin", actor="ada")
    flow.add_staff("sam", "Sam Coach", "coach", actor="ada")
    flow.add_staff("kim", "Kim Coach", "coach", actor="ada")
    ids = []
    with flow.batch():
        for n_ in range(1, n + 1):
            coach = "sam" if n_ % 7 == 0 else "kim"
            ids.append(flow.refer(f"P {n_}", source="GP", coach=coach, actor=coach).case.id)
    flow.withdraw("C-14", reason="moved away", actor="sam")
    return ids


@pytest.fixture
def counted(clock: Clock) -> Iterator[tuple[se_flow.SEFlow, CountingStore]]:
    store = CountingStore()
    with se_flow.SEFlow(store, WORKFLOW, actor="sam", clock=clock) as flow:
        _caseload(flow)
        yield flow, store


def test_a_prefix_offers_exactly_the_ids_it_starts_and_own_open_cases_first(
    counted: tuple[se_flow.SEFlow, CountingStore],
) -> None:
    flow, _ = counted
    offered = flow.completions("case", "C-2", actor="sam")
    expected = {f"C-{n}" for n in range(1, CASES + 1) if str(n).startswith("2")}
    assert set(offered) == expected and len(offered) == len(expected) == 62
    own = [c for c in offered if int(c[2:]) % 7 == 0]
    # In id (text) order, as the store's index holds them.
    assert own == ["C-203", "C-21", "C-210", "C-217", "C-224", "C-231", "C-238", "C-245", "C-28"]
    assert list(offered[: len(own)]) == own  # sam's own open cases lead
    assert flow.completions("case", "C-14", actor="sam")[:1] == ("C-140",)  # C-14 is closed
    assert "C-14" in flow.completions("case", "C-14", actor="sam")
    assert flow.completions("case", "C-250", actor="kim") == ("C-250",)
    assert flow.completions("case", "C-2500", actor="kim") == ()
    assert flow.completions("case", "X", actor="kim") == ()
    assert flow.completions("case", "C-1%", actor="kim") == ()
    assert flow.completions("case", "C-1\x00", actor="kim") == ()
    assert flow.completions("case", "C-\udc80", actor="kim") == ()  # not UTF-8


def test_a_store_of_250_cases_offers_at_most_200_read_by_limited_filters(
    counted: tuple[se_flow.SEFlow, CountingStore],
) -> None:
    flow, store = counted
    for prefix in ("", "C", "C-", "C-1"):
        store.filters.clear()
        store.given = 0
        offered = flow.completions("case", prefix, actor="kim")
        assert len(offered) == len(set(offered)) <= COMPLETIONS, prefix
        assert all(c.startswith(prefix) for c in offered)
        if prefix != "C-1":
            assert len(offered) == COMPLETIONS, prefix
        # Every read is picked by prefix and limited by the store: never every case.
        assert store.filters and all(
            f.limit is not None and f.limit <= COMPLETIONS and f.id_prefix == prefix
            for f in store.filters
        ), store.filters
        assert store.given <= 2 * COMPLETIONS, prefix


def test_on_sqlite_the_read_is_a_range_of_the_id_index(tmp_path: Path, clock: Clock) -> None:
    with se_flow.open(tmp_path / "c.db", actor="sam", clock=clock) as flow:
        _caseload(flow, 60)
        conn = sqlite_conn(flow)
        with traced(conn) as seen:
            assert flow.completions("case", "C-5", actor="kim") == tuple(
                f"C-{n}" for n in (5, 50, 51, 52, 53, 54, 55, 57, 58, 59, 56)
            )
        reads = [sql for sql in seen if re.search(r"\bFROM cases\b", sql)]
        assert len(reads) == 2, seen
        for sql in reads:
            assert re.search(r"LIMIT \d+$", sql), sql
            plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql)]
            assert not any(step.startswith("SCAN") for step in plan), (sql, plan)
        # Anyone's cases: the primary key's index, in its order, no sort.
        (plan,) = (
            [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql)]
            for sql in reads
            if "coach = " not in sql
        )
        assert plan == ["SEARCH cases USING INDEX sqlite_autoindex_cases_1 (id>? AND id<?)"]


def test_sqlite_plan_is_bounded_however_many_cases(tmp_path: Path) -> None:
    """The plan itself, on the schema: a range read in id order stops at its limit."""
    with se_flow.open(tmp_path / "e.db", actor="ada") as flow:
        flow.add_staff("ada", "Ada Admin", "admin", actor="ada")
        conn: sqlite3.Connection = sqlite_conn(flow)
        plan = [
            row[3]
            for row in conn.execute(
                "EXPLAIN QUERY PLAN SELECT id FROM cases WHERE id >= ? AND id < ? ORDER BY id "
                "LIMIT 200",
                ("C-", "C-\U0010ffff"),
            )
        ]
        assert all("TEMP B-TREE" not in step and not step.startswith("SCAN") for step in plan)
