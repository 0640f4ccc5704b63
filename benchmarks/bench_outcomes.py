"""Outcomes: the evaluator's CPU per case, and what logging milestones adds to `record`.

* **evaluate (per case)**: the pure evaluator (`se_flow._outcomes.evaluate`) on one case's
  facts, pure CPU, no store: a sample of cases with one to three jobs over the past year, some
  weeks evidenced by timesheets, the rest estimated, under each shipped definition in turn.
  Contenders: the write path's evaluation (`project=False`: only what is reached) and the
  read's (`outcomes CASE`: also when each milestone not yet reached would be, at the current
  hours). Evaluating every open case at 100k cases is 100,000 times the per-case median (the
  evaluator is per case and reads nothing else): the table says what that comes to.
* **record + milestones**: `flow.record(...)` of a review on a case in work enrolled on MHEP
  (whose engagement counts reviews, so the check evaluates: the write, then the case's records
  and history read again, evaluated, and any milestone event appended in the same
  transaction) against the same record with the check turned off
  (`flow.milestone_check = False`), interleaved, on one SQLite file (WAL, synchronous FULL).
  Also a note on the same case (a kind MHEP does not read: the check is the enrolment's seek)
  and a review on a case on no programme.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import se_flow
from se_flow._evidence import LEAST_EVIDENCE, ORDER
from se_flow._loader import load_programmes, load_workflow
from se_flow._outcomes import CaseFacts, Programme, evaluate
from se_flow._spells import Employment, Spell, Terms, WorkPeriod
from se_flow._workflow import WageRate

from ._common import (
    T0,
    Row,
    bench_args,
    data_dir,
    interleave,
    log,
    median,
    print_table,
    remove_db,
    time_each,
    tiny,
)

ON = dt.date(2026, 6, 1)


def _facts(rnd: random.Random, wages: Sequence[WageRate]) -> CaseFacts:
    spells = []
    work = []
    day = ON - dt.timedelta(days=rnd.randint(30, 365))
    for j in range(rnd.randint(1, 3)):
        start = day
        length = rnd.randint(20, 200)
        end = start + dt.timedelta(days=length) if rnd.random() < 0.5 else None
        hours = Decimal(rnd.choice(["8", "12", "16", "20", "30"]))
        spells.append(
            Spell(
                job=f"J{j}",
                employer="Employer",
                start=start,
                end=end if end is None or end < ON else None,
                terms=(Terms(start, hours, Decimal("12.80"), 1),),
            )
        )
        for w in range(rnd.randint(0, 20)):
            first = start + dt.timedelta(days=7 * w)
            if first >= ON:
                break
            work.append(
                WorkPeriod(
                    job=f"J{j}",
                    start=first,
                    end=first + dt.timedelta(days=6),
                    hours=hours,
                    gross_pay=hours * Decimal("12.80"),
                    evidence="timesheet",
                    seq=100 * j + w,
                )
            )
        day = (end or ON) + dt.timedelta(days=rnd.randint(1, 30))
        if day >= ON:
            break
    return CaseFacts(
        employment=Employment(spells=tuple(spells), work=tuple(work)),
        programme_start=min(s.start for s in spells) - dt.timedelta(days=30),
        wages=tuple(wages),
    )


def _evaluate_rows(samples: int, rounds: int) -> list[Row]:
    programmes = load_programmes()
    wages = load_workflow().minimum_wage
    rnd = random.Random(13)
    cases = [_facts(rnd, wages) for _ in range(samples)]

    def run(project: bool) -> list[float]:
        out: list[float] = []
        for p in programmes:

            def one(i: int, p: Programme = p) -> object:
                return evaluate(p, cases[i], ON, project=project)

            out += time_each(one, samples)
        return out

    found = interleave(
        {"write path": lambda _r: run(False), "read (with projections)": lambda _r: run(True)},
        rounds,
    )
    base = median(found["write path"])
    rows = []
    for name, values in found.items():
        per = median(values)
        rows.append(
            Row(
                bench="outcomes/evaluate",
                size="1 case",
                contender=name,
                median=per * 1e6,
                unit="µs",
                ratio=base / per,
                vs="this/write path",
                n=len(values),
                note=f"100k open cases: {per * 100_000:.0f} s of CPU ({name})",
            )
        )
    return rows


def _walk(flow: se_flow.SEFlow, case: se_flow.Case) -> se_flow.Case:
    place = "referred"
    while place != "in_work_support":
        forward = LEAST_EVIDENCE[place]
        for kind, values in forward.records:
            flow.record(case.id, kind, dict(values))
        case = flow.advance(case.id, forward.trigger).case
        place = ORDER[ORDER.index(place) + 1]
    return case


def _record_rows(folder: Path, per_round: int, rounds: int) -> list[Row]:
    db = folder / "outcomes-bench.db"
    remove_db(db)
    now = [T0]
    flow = se_flow.open(db, clock=lambda: now[0], actor="sam")
    flow.add_staff("ada", "Ada", "admin", actor="ada")
    flow.add_staff("sam", "Sam", "coach", actor="ada")
    enrolled = _walk(flow, flow.refer("Enrolled", source="GP", programme="mhep").case)
    plain = _walk(flow, flow.refer("Plain", source="GP").case)
    for _ in range(20):  # a case with some history: payslips weekly
        flow.record(enrolled.id, "review", summary="in work")

    def records(case_id: str, check: bool) -> list[float]:
        flow.milestone_check = check
        try:
            return time_each(
                lambda _i: flow.record(case_id, "review", summary="weekly visit"), per_round
            )
        finally:
            flow.milestone_check = True

    def notes(case_id: str, check: bool) -> list[float]:
        flow.milestone_check = check
        try:
            return time_each(lambda _i: flow.record(case_id, "note", text="called"), per_round)
        finally:
            flow.milestone_check = True

    found = interleave(
        {
            "enrolled, check on": lambda _r: records(enrolled.id, True),
            "enrolled, check off": lambda _r: records(enrolled.id, False),
            "enrolled note, check on": lambda _r: notes(enrolled.id, True),
            "enrolled note, check off": lambda _r: notes(enrolled.id, False),
            "no programme, check on": lambda _r: records(plain.id, True),
            "no programme, check off": lambda _r: records(plain.id, False),
        },
        rounds,
    )
    flow.disconnect()
    remove_db(db)
    rows = []
    for case_kind in ("enrolled", "enrolled note", "no programme"):
        off = median(found[f"{case_kind}, check off"])
        on = median(found[f"{case_kind}, check on"])
        target = "≥ 0.5" if case_kind == "enrolled" else "≥ 0.8"
        rows.append(
            Row(
                bench="outcomes/record + milestones",
                size=case_kind,
                contender="check on",
                median=on * 1e3,
                unit="ms",
                ratio=off / on,
                vs="check/no check",
                target=target,
                met=off / on >= float(target.split()[1]),
                n=len(found[f"{case_kind}, check on"]),
                note=f"record without the check: {off * 1e3:.2f} ms ({case_kind})",
            )
        )
    return rows


def main(argv: Sequence[str] | None = None) -> list[Row]:
    args = bench_args(__doc__ or "", argv).parse_args(argv)
    if tiny():
        samples, rounds, per_round = 5, 2, 3
    elif args.quick:
        samples, rounds, per_round = 100, 3, 20
    else:
        samples, rounds, per_round = 400, 5, 40
    log(f"outcomes: evaluating {samples} cases x 6 definitions, {rounds} rounds")
    rows = _evaluate_rows(samples, rounds)
    with data_dir(args.data_dir) as folder:
        log(f"outcomes: record with and without the milestone check, {rounds} x {per_round}")
        rows += _record_rows(folder, per_round, rounds)
    print_table(rows, "Outcomes")
    return rows


if __name__ == "__main__":
    main()
