"""Reports on a big caseload: each of se-flow's reports against the same counts in hand-written
SQL, in the same run, time and peak memory each in a process of its own.

On the rich population of n cases (`_population.rich_population`, for 2026-Q2): a quarter of
the cases as the plain template (in employer engagement), a quarter in work since January
with a second job in April (13 weeks sustained in the quarter), a quarter referred in March or
April, into work in April, reassigned to the next coach in May and whose job then ended, and
a quarter in work at referral and discharged; reviews in the community, the office, by phone
and video; employer contacts face to face and not. About 17 audit events a case (100k cases:
1.7M events).

* **se-flow**: `flow.report(name, quarter="2026-Q2")` for `ips-grow`, `coaches`, `fidelity` and
  `standards`: every KPI with the case ids behind it, from the store's ordered scans
  (`case_readings`), each case's job starts from the outcome evaluator, and the report's own
  audit event.
* **sql** (the limit): the same figures in plain SQL over the same file: referrals, in work
  at referral, profiles, clients into work and total job starts (the 4th paid hour at
  contracted hours), sustained 13 weeks, both employment rates, carried over, discharges
  (ips-grow); the active caseload per coach on the last day under the coach who held each
  case that day (coaches); employer contacts per coach, community contact, rapid job search
  and follow-along within 3 days (fidelity); the 30-day first employer contact standard
  (standards). Counts only: no case lists, no methods, no audit event; and only as this
  population needs (no gap bridging, no evidence hours, no working days).

The benchmark fails unless the SQL's counts equal se-flow's for every figure, so the ratio
compares the same work. No target in the table: the brief's aim was 0.3x of the SQL.
"""

from __future__ import annotations

import argparse
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import se_flow

from . import _population as pop
from ._common import (
    Row,
    bench_args,
    clock,
    data_dir,
    emit_rows,
    log,
    median,
    peak_rss_mb,
    print_table,
    run_child,
    size_label,
    tiny,
)

MODULE = "benchmarks.bench_reports"
FULL_SIZES = (100_000,)
QUICK_SIZES = (10_000,)
TINY_SIZES = (200,)
REPORTS = ("ips-grow", "coaches", "fidelity", "standards")
QUARTER = "2026-Q2"
START, END = "2026-04-01", "2026-06-30"
# The benchmarks' clock (T0): a deadline later than today is still due, and not counted.
TODAY = clock().date().isoformat()
LIVE = "seq NOT IN (SELECT supersedes FROM records WHERE supersedes IS NOT NULL)"


# Jobs, as this population has them: a job offer (every one here was started) or a further job
# start record, current ones only; the day its 4th paid hour falls on at its contracted hours
# (a 7-day week: ceil(28 / hours) days from its start), as se-flow's evaluator counts it.
_JOBS = f"""
live AS (SELECT * FROM records WHERE {LIVE}),
starts AS (
    SELECT case_id, seq, started,
        date(started, '+' || (CAST(28.0 / hours AS INT)
            + (28.0 / hours > CAST(28.0 / hours AS INT)) - 1) || ' days') AS reached
    FROM (SELECT case_id, seq, date(json_extract(fields, '$.start_date')) AS started,
            CAST(json_extract(fields, '$.hours_per_week') AS REAL) AS hours
          FROM live WHERE kind IN ('job_offer', 'job_start'))
),
firsts AS (
    SELECT case_id, min(reached) AS reached, min(started) AS started FROM starts
    WHERE reached <= :on GROUP BY case_id
),
unemployed AS (
    SELECT c.id, c.opened_at, c.closed_at FROM cases c JOIN live r ON r.case_id = c.id
    AND r.kind = 'referral' WHERE coalesce(json_extract(r.fields, '$.in_work_at_referral'),
    'no') NOT IN ('retention', 'new_job')
)"""
# The coach who held a case on day :on: its last reassignment by then, else its referral's.
_COACH_ON = """coalesce(
    (SELECT json_extract(a.payload, '$.to_coach') FROM events a WHERE a.case_id = c.id
     AND a.kind = 'assign' AND date(a.effective_at) <= :on ORDER BY a.seq DESC LIMIT 1),
    (SELECT json_extract(f.payload, '$.coach') FROM events f WHERE f.case_id = c.id
     AND f.kind = 'referral'))"""


def _contacts() -> tuple[str, ...]:
    wf = se_flow.load_workflow()
    return tuple(k.name for k in wf.records.values() if k.contact)


def sql_counts(conn: sqlite3.Connection, name: str) -> dict[str, Any]:
    """The figures of report `name` that SQL can count, keyed as se-flow keys them."""
    period = {"start": START, "end": END, "on": TODAY}

    def one(sql: str, params: Any = period) -> Any:
        return conn.execute(sql, params).fetchone()[0]

    contacts = ", ".join(f"'{k}'" for k in _contacts())
    if name == "ips-grow":
        return {
            "referrals_accepted": one(
                "SELECT count(*) FROM cases WHERE date(opened_at) BETWEEN :start AND :end"
            ),
            "referrals_in_work": one(
                "SELECT count(*) FROM cases c JOIN records r ON r.case_id = c.id "
                f"AND r.kind = 'referral' AND r.{LIVE} WHERE date(c.opened_at) BETWEEN :start "
                "AND :end AND json_extract(r.fields, '$.in_work_at_referral') "
                "IN ('retention', 'new_job')"
            ),
            "profiles_started": one(
                "SELECT count(*) FROM (SELECT min(effective_at) AS first FROM records "
                f"WHERE kind = 'vocational_profile' AND {LIVE} GROUP BY case_id) "
                "WHERE date(first) BETWEEN :start AND :end"
            ),
            "clients_into_work": one(
                f"WITH {_JOBS} SELECT count(*) FROM firsts WHERE reached BETWEEN :start AND :end"
            ),
            "total_job_starts": one(
                f"WITH {_JOBS} SELECT count(*) FROM starts "
                "WHERE reached BETWEEN :start AND min(:end, :on)"
            ),
            # In work 91 days from the first job's start: no job ended before its 91st day.
            "sustained_13w": tuple(
                conn.execute(
                    f"WITH {_JOBS} SELECT coalesce(sum(date(f.started, '+90 days') <= :on "
                    "AND NOT EXISTS (SELECT 1 FROM live e WHERE e.case_id = f.case_id AND "
                    "e.kind = 'job_end' AND coalesce(json_extract(e.fields, '$.end_date'), "
                    "date(e.effective_at)) < date(f.started, '+90 days'))), 0), count(*) "
                    "FROM firsts f JOIN unemployed u ON u.id = f.case_id "
                    "WHERE date(f.started, '+90 days') BETWEEN :start AND :end",
                    period,
                ).fetchone()
            ),
            "employment_rate_cohort": tuple(
                conn.execute(
                    f"WITH {_JOBS} SELECT count(f.case_id), count(*) FROM unemployed u "
                    "LEFT JOIN firsts f ON f.case_id = u.id AND f.reached <= :end "
                    "WHERE date(u.opened_at) BETWEEN :start AND :end",
                    period,
                ).fetchone()
            ),
            "employment_rate_caseload": tuple(
                conn.execute(
                    f"WITH {_JOBS} SELECT count(f.case_id), count(*) FROM unemployed u "
                    "LEFT JOIN firsts f ON f.case_id = u.id AND f.reached <= :end "
                    "WHERE date(u.opened_at) <= :end "
                    "AND (u.closed_at IS NULL OR date(u.closed_at) >= :start)",
                    period,
                ).fetchone()
            ),
            "carried_over": one(
                "SELECT count(*) FROM cases WHERE date(opened_at) < :start "
                "AND (closed_at IS NULL OR date(closed_at) >= :start)"
            ),
            "discharges": one(
                "SELECT count(*) FROM cases WHERE date(closed_at) BETWEEN :start AND :end"
            ),
        }
    if name == "coaches":
        # Active on the last day (today): open, a contact in the 28 days to it; under the
        # coach who held the case that day.
        rows = conn.execute(
            f"SELECT {_COACH_ON} AS coach, count(*) FROM cases c "
            "WHERE date(c.opened_at) <= :on AND (c.closed_at IS NULL OR "
            "date(c.closed_at) >= :on) AND EXISTS (SELECT 1 FROM records r WHERE "
            f"r.case_id = c.id AND r.kind IN ({contacts}) AND r.{LIVE} AND "
            "date(r.effective_at) BETWEEN date(:on, '-27 days') AND :on) GROUP BY 1",
            period,
        ).fetchall()
        return {f"caseload@{coach}": n for coach, n in rows}
    if name == "fidelity":
        rows = conn.execute(
            "SELECT coalesce(json_extract(fields, '$.by'), actor), count(*) FROM records "
            f"WHERE kind = 'employer_contact' AND {LIVE} "
            "AND date(effective_at) BETWEEN :start AND :end GROUP BY 1",
            period,
        ).fetchall()
        out: dict[str, Any] = {f"job_development:{by}": n for by, n in rows}
        out["community_contact"] = tuple(
            conn.execute(
                "SELECT coalesce(sum(json_extract(fields, '$.location') = 'community'), 0), "
                f"count(*) FROM records WHERE kind IN ({contacts}) AND {LIVE} "
                "AND date(effective_at) BETWEEN :start AND :end AND "
                "json_extract(fields, '$.location') IN ('community', 'office', 'phone', 'video')",
                period,
            ).fetchone()
        )
        out["rapid_job_search"] = tuple(
            conn.execute(
                "SELECT coalesce(sum(EXISTS (SELECT 1 FROM records r WHERE r.case_id = "
                f"e.case_id AND r.kind = 'employer_contact' AND r.{LIVE} AND "
                "json_extract(r.fields, '$.face_to_face') = 1 AND date(r.effective_at) "
                "BETWEEN date(e.effective_at) AND date(e.effective_at, '+30 days'))), 0), "
                "count(*) FROM events e WHERE e.kind = 'transition' AND e.trigger = 'engage' "
                "AND date(e.effective_at) BETWEEN :start AND :end",
                period,
            ).fetchone()
        )
        out["follow_along_3_days"] = tuple(
            conn.execute(
                f"WITH {_JOBS} SELECT coalesce(sum(EXISTS (SELECT 1 FROM live r WHERE "
                f"r.case_id = s.case_id AND r.kind IN ({contacts}) AND date(r.effective_at) "
                "BETWEEN s.started AND date(s.started, '+3 days'))), 0), count(*) FROM starts s "
                "WHERE s.started BETWEEN :start AND :end",
                period,
            ).fetchone()
        )
        return out
    # A case closed before the deadline no longer owes it.
    row = conn.execute(
        "SELECT count(*), coalesce(sum(met), 0) FROM (SELECT date(e.effective_at, '+30 days') "
        "AS due, c.closed_at AS closed, EXISTS (SELECT 1 FROM records r WHERE r.case_id = "
        f"e.case_id AND r.kind = 'employer_contact' AND r.{LIVE} AND date(r.effective_at) "
        "BETWEEN date(e.effective_at) AND date(e.effective_at, '+30 days')) AS met "
        "FROM events e JOIN cases c ON c.id = e.case_id WHERE e.kind = 'transition' "
        "AND e.trigger = 'engage') WHERE due BETWEEN :start AND :end "
        "AND (due < :on OR (due = :on AND met)) AND (closed IS NULL OR date(closed) >= due)",
        period,
    ).fetchone()
    return {"ips_first_employer_contact": (row[1], row[0])}


PAIRS = {
    "ips-grow": (
        "sustained_13w",
        "employment_rate_cohort",
        "employment_rate_caseload",
    ),
    "fidelity": ("community_contact", "rapid_job_search", "follow_along_3_days"),
}
"""The figures compared as (numerator, denominator); the others by numerator."""


def flow_counts(report: Any, name: str) -> dict[str, Any]:
    """The same figures from se-flow's report."""
    kpis = {k.key: k for k in report.kpis}
    pairs = PAIRS.get(name, ())
    if name == "ips-grow":
        keys = (
            "referrals_accepted",
            "referrals_in_work",
            "profiles_started",
            "clients_into_work",
            "total_job_starts",
            "carried_over",
            "discharges",
        )
        out: dict[str, Any] = {k: kpis[k].numerator for k in keys}
        out.update({k: (kpis[k].numerator, kpis[k].denominator) for k in pairs})
        return out
    if name == "coaches":
        return {f"caseload@{coach}": n for coach, n in report.charts["caseload"]}
    if name == "fidelity":
        out = {k: v.numerator for k, v in kpis.items() if k.startswith("job_development:")}
        out.update({k: (kpis[k].numerator, kpis[k].denominator) for k in pairs})
        return out
    k = kpis["ips_first_employer_contact"]
    return {"ips_first_employer_contact": (k.numerator, k.denominator)}


def child(path: Path, n: int, name: str, contender: str, reps: int) -> list[Row]:
    times = []
    counts: dict[str, Any] = {}
    for _ in range(reps):
        if contender == "se-flow":
            with se_flow.open(path, clock=clock, create=False, actor=pop.LEAD) as flow:
                t = time.perf_counter()
                made = flow.report(name, quarter=QUARTER)
                times.append(time.perf_counter() - t)
            counts = flow_counts(made, name)
        else:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            t = time.perf_counter()
            counts = sql_counts(conn, name)
            times.append(time.perf_counter() - t)
            conn.close()
    return [
        Row(
            f"reports/{name}",
            f"{size_label(n)} cases",
            contender,
            median(times),
            "s",
            peak_mb=peak_rss_mb(),
            n=len(times),
            extra={
                "counts": {k: list(v) if isinstance(v, tuple) else v for k, v in counts.items()}
            },
        )
    ]


def main(argv: Sequence[str] | None = None) -> list[Row]:
    parser = bench_args("Each report against the same counts in hand-written SQL.", argv)
    parser.add_argument("--sizes", help="comma-separated case counts (default by mode)")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--report", help=argparse.SUPPRESS)
    parser.add_argument("--contender", help=argparse.SUPPRESS)
    parser.add_argument("--reps", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        emit_rows(child(Path(args.db), args.child, args.report, args.contender, args.reps))
        return []
    if args.sizes:
        sizes = [int(s) for s in args.sizes.split(",")]
    else:
        sizes = list(TINY_SIZES if tiny() else QUICK_SIZES if args.quick else FULL_SIZES)
    rows: list[Row] = []
    differ: list[str] = []
    with data_dir(args.data_dir) as folder:
        for n in sizes:
            path = pop.rich_population(folder, n)
            for name in REPORTS:
                log(f"reports: {name} on {size_label(n)} cases")
                got = {}
                # Alternate who goes first, each in a fresh process (its own peak memory).
                for contender in (
                    ("sql", "se-flow") if REPORTS.index(name) % 2 else ("se-flow", "sql")
                ):
                    reps = 1 if contender == "se-flow" and not tiny() else 3
                    (row,) = run_child(
                        MODULE,
                        [
                            "--child",
                            str(n),
                            "--db",
                            str(path),
                            "--report",
                            name,
                            "--contender",
                            contender,
                            "--reps",
                            str(reps),
                        ],
                    )
                    got[contender] = row
                base, mine = got["sql"], got["se-flow"]
                agree = base.extra["counts"] == mine.extra["counts"]
                mine.ratio = base.median / mine.median if mine.median else None
                mine.vs = "se-flow/sql"
                mine.note = f"counts {'agree' if agree else 'DIFFER'} with the SQL's"
                rows += [base, mine]
                if not agree:
                    differ.append(
                        f"{name} on {size_label(n)} cases: se-flow {mine.extra['counts']}, "
                        f"sql {base.extra['counts']}"
                    )
    print_table(rows, "Reports: every figure with its method and cases, against bare SQL counts")
    if differ:
        # The contenders must count the same things, or the ratio compares nothing.
        raise SystemExit("se-flow's counts differ from the SQL's: " + "; ".join(differ))
    return rows


if __name__ == "__main__":
    main()
