"""Reports on a big caseload: each of se-flow's reports against the same counts in hand-written
SQL, in the same run, time and peak memory each in a process of its own.

On a population of n cases (`_population.py`: 11 audit events a case, so 100k cases is 1.1M
events, every case referred, engaged, profiled and in employer engagement), for 2026-Q2:

* **se-flow**: `flow.report(name, quarter="2026-Q2")` for `ips-grow`, `coaches`, `fidelity` and
  `standards`: every KPI with the case ids behind it, from one streamed pass over the log, each
  case's job starts from the outcome evaluator, and the report's own audit event.
* **sql** (the limit): the counts of that report that plain SQL can give, over the same file:
  referrals, in work at referral, profiles started, carried over and discharges (ips-grow);
  the active caseload per coach at the period's end (coaches); employer contacts per coach and
  contacts with a location (fidelity); the 30-day first employer contact standard (standards:
  calendar days, so SQL can do it; the working-day standards need the calendar). Counts only:
  no case lists, no methods, no evaluator (the SQL has no hours test), no audit event.

Each row says whether the SQL's counts equal se-flow's for the same figures (a cross-check of
both). No target: the ratio says what showing the calculation costs over bare counts.
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


def _contacts() -> tuple[str, ...]:
    wf = se_flow.load_workflow()
    return tuple(k.name for k in wf.records.values() if k.contact)


def sql_counts(conn: sqlite3.Connection, name: str) -> dict[str, Any]:
    """The figures of report `name` that SQL can count, keyed as se-flow keys them."""
    q = conn.execute
    if name == "ips-grow":
        return {
            "referrals_accepted": q(
                "SELECT count(*) FROM cases WHERE date(opened_at) BETWEEN ? AND ?", (START, END)
            ).fetchone()[0],
            "referrals_in_work": q(
                "SELECT count(*) FROM cases c JOIN records r ON r.case_id = c.id "
                f"AND r.kind = 'referral' AND r.{LIVE} WHERE date(c.opened_at) BETWEEN ? AND ? "
                "AND json_extract(r.fields, '$.in_work_at_referral') IN ('retention', 'new_job')",
                (START, END),
            ).fetchone()[0],
            "profiles_started": q(
                "SELECT count(*) FROM (SELECT min(effective_at) AS first FROM records "
                f"WHERE kind = 'vocational_profile' AND {LIVE} GROUP BY case_id) "
                "WHERE date(first) BETWEEN ? AND ?",
                (START, END),
            ).fetchone()[0],
            "carried_over": q(
                "SELECT count(*) FROM cases WHERE date(opened_at) < ? "
                "AND (closed_at IS NULL OR date(closed_at) >= ?)",
                (START, START),
            ).fetchone()[0],
            "discharges": q(
                "SELECT count(*) FROM cases WHERE date(closed_at) BETWEEN ? AND ?", (START, END)
            ).fetchone()[0],
        }
    if name == "coaches":
        marks = ", ".join("?" for _ in _contacts())
        rows = q(
            "SELECT c.coach, count(DISTINCT c.id) FROM cases c JOIN records r "
            f"ON r.case_id = c.id AND r.kind IN ({marks}) AND r.{LIVE} "
            "WHERE date(r.effective_at) BETWEEN date(?, '-27 days') AND ? "
            "AND date(c.opened_at) <= ? AND (c.closed_at IS NULL OR date(c.closed_at) >= ?) "
            "GROUP BY c.coach",
            (*_contacts(), TODAY, TODAY, TODAY, TODAY),
        ).fetchall()
        return {f"caseload@{coach}": n for coach, n in rows}
    if name == "fidelity":
        rows = q(
            "SELECT coalesce(json_extract(fields, '$.by'), actor), count(*) FROM records "
            f"WHERE kind = 'employer_contact' AND {LIVE} "
            "AND date(effective_at) BETWEEN ? AND ? GROUP BY 1",
            (START, END),
        ).fetchall()
        out: dict[str, Any] = {f"job_development:{by}": n for by, n in rows}
        marks = ", ".join("?" for _ in _contacts())
        out["community_contact(den)"] = q(
            f"SELECT count(*) FROM records WHERE kind IN ({marks}) AND {LIVE} "
            "AND date(effective_at) BETWEEN ? AND ? AND json_extract(fields, '$.location') "
            "IN ('community', 'office', 'phone', 'video')",
            (*_contacts(), START, END),
        ).fetchone()[0]
        return out
    row = q(
        "SELECT count(*), coalesce(sum(met), 0) FROM (SELECT date(e.effective_at, '+30 days') "
        "AS due, EXISTS (SELECT 1 FROM records r WHERE r.case_id = e.case_id AND r.kind = "
        f"'employer_contact' AND r.{LIVE} AND date(r.effective_at) BETWEEN date(e.effective_at) "
        "AND date(e.effective_at, '+30 days')) AS met FROM events e WHERE e.kind = 'transition' "
        "AND e.trigger = 'engage') WHERE due BETWEEN ? AND ? AND (due < ? OR (due = ? AND met))",
        (START, END, TODAY, TODAY),
    ).fetchone()
    return {"ips_first_employer_contact": (row[1], row[0])}


def flow_counts(report: Any, name: str) -> dict[str, Any]:
    """The same figures from se-flow's report."""
    kpis = {k.key: k for k in report.kpis}
    if name == "ips-grow":
        keys = ("referrals_accepted", "referrals_in_work", "profiles_started", "carried_over")
        return {k: kpis[k].numerator for k in (*keys, "discharges")}
    if name == "coaches":
        return {f"caseload@{coach}": n for coach, n in report.charts["caseload"]}
    if name == "fidelity":
        out: dict[str, Any] = {
            k: v.numerator for k, v in kpis.items() if k.startswith("job_development:")
        }
        out["community_contact(den)"] = kpis["community_contact"].denominator
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
    with data_dir(args.data_dir) as folder:
        for n in sizes:
            path = pop.population(folder, n, pristine=False)
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
    print_table(rows, "Reports: every figure with its method and cases, against bare SQL counts")
    return rows


if __name__ == "__main__":
    main()
