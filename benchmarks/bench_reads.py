"""Reads on a big caseload: se-flow's API against the same SQL run raw.

On a population of n cases (see `_population.py`; about 30 cases per coach, spread through
the table; reviews due between 21 days ago and 6 days ahead):

* **caseload**: `flow.cases(coach=...)`, one coach's cases (~30).
* **due (coach)**: `flow.due(coach=...)`, one coach's reviews due today or overdue.
* **overdue (first 50)**: `flow.cases(overdue=True, limit=50)`, the top of the team's list.
* **by days / stage / coach, stuck (first 50)**: `flow.cases(sort=..., limit=50)` of the open
  caseload (stuck: `stuck_days=0`); **all by days / seen (first 50)**: the same of every
  status (`status="all"`), each status's range of the sort's index merged.
* **due (team)**: `flow.due()`, every open case whose review is due today: most of the
  population, so its time and memory grow with n by nature; measured in its own process.
* **timeline**: `flow.history(case_id)`, one case's events.
* **due list (first 50)**: `flow.due_items(within_days=7, limit=50)`, the first page of the
  one due list (reviews, standards, follow-along) for the whole team; **due list, overdue
  (first 50)** with `overdue=True`; **due list (coach)**: one coach's whole list. The raw
  baseline runs the same queries (reviews and the due projection's two index ranges).

The baseline is the SQL se-flow runs (taken from its store), executed with sqlite3 and
fetched as tuples, in the same process, interleaved. Each query's plan (EXPLAIN QUERY PLAN)
is kept in the results; a query over the 50 ms target gets its plan in the notes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import se_flow
from se_flow._histories import due_page_queries, review_query
from se_flow._rows import CASE_COLS as _CASE_COLS
from se_flow._rows import case_queries, status_arms
from se_flow.ports import CaseFilter

from . import _population as pop
from ._common import (
    T0,
    Row,
    bench_args,
    clock,
    data_dir,
    emit_rows,
    interleave,
    log,
    median,
    peak_rss_mb,
    print_table,
    quantile,
    run_child,
    size_key,
    size_label,
    tiny,
)

MODULE = "benchmarks.bench_reads"
FULL_SIZES = (100_000, 1_000_000)
QUICK_SIZES = (10_000,)
TINY_SIZES = (300,)
TARGET_MS = 50.0


# The SQL se-flow's SQLite store runs for each read (se_flow/_sqlite.py, `cases` and `events`),
# with its column list taken from the store itself so the baseline cannot drift from it.
def _due_sql(coach: str | None, limit: int | None = None) -> str:
    """What is due as the store reads it (`_rows.case_queries`): the team's, each open
    status a range of cases_sort_due, merged; a coach's, by the coach index."""
    (query,) = case_queries(CaseFilter(coach=coach, due_by=T0.date()), "?")
    return query(limit)[0]


# The team's due reads take their parameter once for each open status (`_rows.status_arms`).
_OPEN = len(status_arms(CaseFilter(due_by=T0.date())))
SQL = {
    "caseload": f"SELECT {_CASE_COLS} FROM cases WHERE coach = ? ORDER BY num",
    "due (coach)": _due_sql("coach"),
    "overdue (first 50)": _due_sql(None, 50),
    "due (team)": _due_sql(None),
    "timeline": "SELECT * FROM events WHERE seq > ? AND case_id = ? ORDER BY seq",
}
# The one due list's queries (`_histories`): reviews, then the due projection's deadlines and
# schedule windows, each an index range read up to the page's end.
_LIST = {
    "due list (first 50)": (None, 7, False, 50),
    "due list, overdue (first 50)": (None, 0, True, 50),
    "due list (coach)": ("coach", 7, False, None),
}
# Sorted and stuck first pages (`cases --sort ... --limit 50`), of the open caseload unless a
# status is given: the store's runs (`_rows.case_queries`), each read in turn until the page
# is full.
_SORTED: dict[str, dict[str, Any]] = {
    "by days (first 50)": {"sort": "days"},
    "by stage (first 50)": {"sort": "stage"},
    "by coach (first 50)": {"sort": "coach"},
    "stuck (first 50)": {"stuck_days": 0},
    # Every status (closed cases too): each status's own range of the sort's index, merged.
    "all by days (first 50)": {"sort": "days", "status": "all"},
    "all by seen (first 50)": {"sort": "seen", "status": "all"},
}
SMALL = (
    "caseload",
    *_SORTED,
    "due (coach)",
    "overdue (first 50)",
    "timeline",
    "due list (first 50)",
    "due list, overdue (first 50)",
    "due list (coach)",
)
BIG = ("due (team)",)


def _list_sql(name: str, coach: str | None) -> list[tuple[str, list[Any]]]:
    who, within, overdue, limit = _LIST[name]
    today = T0.date()
    last = today - dt.timedelta(days=1) if overdue else today + dt.timedelta(days=within)
    mine = coach if who else None
    return [
        review_query(mine, last, "?", limit),
        *due_page_queries(mine, today, last, "?", limit),
    ]


def _list_calls(
    flow: se_flow.SEFlow, name: str, coaches: list[str]
) -> tuple[Callable[[int], int], Callable[[sqlite3.Connection, int], int]]:
    who, within, overdue, limit = _LIST[name]

    def se(i: int) -> int:
        coach = coaches[i % 64] if who else None
        return len(flow.due_items(coach=coach, within_days=within, overdue=overdue, limit=limit))

    def raw(conn: sqlite3.Connection, i: int) -> int:
        return sum(len(conn.execute(*q).fetchall()) for q in _list_sql(name, coaches[i % 64]))

    return se, raw


def _sorted_sql(
    flow: se_flow.SEFlow, name: str
) -> list[Callable[[int | None], tuple[str, list[Any]]]]:
    kw = _SORTED[name]
    stuck = kw.get("stuck_days")
    where = CaseFilter(
        open_only=kw.get("status", "open") == "open",
        sort=kw.get("sort", "days" if stuck is not None else None),
        entered_before=T0.date() - dt.timedelta(days=stuck) if stuck is not None else None,
    )
    return case_queries(where, "?", None, flow.workflow.stage_groups)


def _sorted_calls(
    flow: se_flow.SEFlow, name: str
) -> tuple[Callable[[int], int], Callable[[sqlite3.Connection, int], int]]:
    queries = _sorted_sql(flow, name)

    def se(i: int) -> int:
        return len(flow.cases(limit=50, **{"status": "open", **_SORTED[name]}))

    def raw(conn: sqlite3.Connection, i: int) -> int:
        got = 0
        for query in queries:
            got += len(conn.execute(*query(50 - got)).fetchall())
            if got >= 50:
                break
        return got

    return se, raw


def _queries(
    flow: se_flow.SEFlow, n: int
) -> dict[str, tuple[Callable[[int], int], Callable[[sqlite3.Connection, int], int]]]:
    """For each read: (se-flow call, raw call), each taking a sample number, returning rows."""
    today = T0.date()
    yesterday = (today - dt.timedelta(days=1)).isoformat()
    ncoach = pop.coaches_for(n)
    rng = random.Random(f"reads-{n}")
    coaches = [pop.coach_id(rng.randrange(ncoach)) for _ in range(64)]
    cases = [f"C-{rng.randrange(1, n + 1)}" for _ in range(64)]

    def raw(
        sql: str, params: Callable[[int], tuple[Any, ...]]
    ) -> Callable[[sqlite3.Connection, int], int]:
        return lambda conn, i: len(conn.execute(sql, params(i)).fetchall())

    return {
        "caseload": (
            lambda i: len(flow.cases(coach=coaches[i % 64])),
            raw(SQL["caseload"], lambda i: (coaches[i % 64],)),
        ),
        "due (coach)": (
            lambda i: len(flow.due(coach=coaches[i % 64])),
            raw(SQL["due (coach)"], lambda i: (coaches[i % 64], today.isoformat())),
        ),
        "overdue (first 50)": (
            lambda i: len(flow.cases(overdue=True, limit=50)),
            raw(SQL["overdue (first 50)"], lambda i: (yesterday,) * _OPEN),
        ),
        "due (team)": (
            lambda i: len(flow.due()),
            raw(SQL["due (team)"], lambda i: (today.isoformat(),) * _OPEN),
        ),
        "timeline": (
            lambda i: len(flow.history(cases[i % 64])),
            raw(SQL["timeline"], lambda i: (0, cases[i % 64])),
        ),
        **{name: _list_calls(flow, name, coaches) for name in _LIST},
        **{name: _sorted_calls(flow, name) for name in _SORTED},
    }


def _plan(conn: sqlite3.Connection, name: str, n: int, flow: se_flow.SEFlow) -> str:
    if name in _SORTED:
        return " | ".join(
            "; ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql, params))
            for sql, params in (q(50) for q in _sorted_sql(flow, name)[:2])
        )
    if name in _LIST:
        return " | ".join(
            "; ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + q[0], q[1]))
            for q in _list_sql(name, "coach-00001")
        )
    params: dict[str, tuple[Any, ...]] = {
        "caseload": ("coach-00001",),
        "due (coach)": ("coach-00001", T0.date().isoformat()),
        "overdue (first 50)": (T0.date().isoformat(),) * _OPEN,
        "due (team)": (T0.date().isoformat(),) * _OPEN,
        "timeline": (0, "C-1"),
    }
    rows = conn.execute("EXPLAIN QUERY PLAN " + SQL[name], params[name]).fetchall()
    return "; ".join(r[3] for r in rows)


def child(path: Path, n: int, group: str, quick: bool) -> list[Row]:
    names = SMALL if group == "small" else BIG
    flow = se_flow.open(path, clock=clock, create=False, actor=pop.LEAD)
    conn = sqlite3.connect(path)
    queries = _queries(flow, n)
    if tiny():
        rounds, reps = 2, 2
    elif group == "big":
        rounds, reps = 3, 1
    else:
        rounds, reps = (5, 6) if quick else (7, 10)
    rows = []
    for name in names:
        se_call, raw_call = queries[name]
        counts: dict[str, int] = {}
        se_call(0)  # warm the page cache for both: the first read of a cold file is the disk's
        raw_call(conn, 0)

        def run_se(
            rnd: int, se_call: Callable[[int], int] = se_call, counts: dict[str, int] = counts
        ) -> list[float]:
            out = []
            for i in range(reps):
                t = time.perf_counter()
                counts["se-flow"] = se_call(rnd * reps + i)
                out.append(time.perf_counter() - t)
            return out

        def run_raw(
            rnd: int, raw_call: Any = raw_call, counts: dict[str, int] = counts
        ) -> list[float]:
            out = []
            for i in range(reps):
                t = time.perf_counter()
                counts["raw"] = raw_call(conn, rnd * reps + i)
                out.append(time.perf_counter() - t)
            return out

        got = interleave({"raw SQL": run_raw, "se-flow": run_se}, rounds)
        plan = _plan(conn, name, n, flow)
        raw_ms, se_ms = median(got["raw SQL"]) * 1e3, median(got["se-flow"]) * 1e3
        size = f"{size_label(n)} cases"
        extra = {"plan": plan, "rows": counts.get("se-flow", 0)}
        rows.append(
            Row(
                f"reads/{name}",
                size,
                "raw SQL",
                raw_ms,
                "ms",
                n=len(got["raw SQL"]),
                extra=dict(extra),
            )
        )
        se_row = Row(
            f"reads/{name}",
            size,
            "se-flow",
            se_ms,
            "ms",
            ratio=raw_ms / se_ms if se_ms else None,
            vs="se-flow/raw",
            target=f"< {TARGET_MS:.0f} ms",
            met=se_ms < TARGET_MS,
            n=len(got["se-flow"]),
            extra={**extra, "p90_ms": round(quantile(got["se-flow"], 0.9) * 1e3, 2)},
        )
        note = f"{counts.get('se-flow', 0)} rows"
        if se_ms >= TARGET_MS:
            note += f"; plan: {plan}"
        se_row.note = note
        rows.append(se_row)
    flow.disconnect()
    conn.close()
    peak = peak_rss_mb()
    for r in rows:
        r.peak_mb = peak
    return rows


def main(argv: Sequence[str] | None = None) -> list[Row]:
    parser = bench_args("Reads on a big caseload: se-flow vs the same SQL run raw.", argv)
    parser.add_argument("--sizes", help="comma-separated case counts (default by mode)")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--group", default="small", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        emit_rows(child(Path(args.db), args.child, args.group, args.quick))
        return []
    if args.sizes:
        sizes = [int(s) for s in args.sizes.split(",")]
    else:
        sizes = list(TINY_SIZES if tiny() else QUICK_SIZES if args.quick else FULL_SIZES)
    quick = ["--quick"] if args.quick else []
    rows: list[Row] = []
    with data_dir(args.data_dir) as folder:
        for n in sizes:
            path = pop.population(folder, n, pristine=False)
            for group in ("small", "big"):
                log(f"reads: {size_label(n)} cases, {group} reads")
                child_args = ["--child", str(n), "--db", str(path), "--group", group, *quick]
                rows.extend(run_child(MODULE, child_args))
    order = [*SMALL, *BIG]
    rows.sort(key=lambda r: (order.index(r.bench.split("/", 1)[1]), size_key(r.size)))
    print_table(rows, "Reads (each group of reads in its own process; peak RSS is that process's)")
    return rows


if __name__ == "__main__":
    main()
