"""Employment spells: one per job, derived from a case's records and its `start_job` events.

A job is a `job_offer` that a `start_job` transition took up (the first job of an in-work
episode), or a `job_start` record (a further job while in in-work support). Its id is the
record's `job` field, else `J<seq>` of the first record of its correction chain. A `job_end`
names its job (else it ends the open job that started last) and its last day worked
(`end_date`, else the record's date). `job_terms` change hours or pay from a date; the terms
before stay as history. `work_evidence` is a period worked and its evidence; `work_break` a
break. Spells may overlap: a second job while in work is a spell of its own.

Conventions (stated once, relied on by the evaluator): a spell covers its start and end dates
inclusive; an open spell runs to the evaluation date. No I/O.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from attrs import frozen

from ._model import Record

__all__ = [
    "JOB_RECORD_KINDS",
    "OUTCOME_RECORD_KINDS",
    "START_TRIGGER",
    "Break",
    "Employment",
    "Spell",
    "Terms",
    "WorkPeriod",
    "build_employment",
    "current_records",
    "record_problems",
]

JOB_RECORD_KINDS = ("job_offer", "job_start")
START_TRIGGER = "start_job"
OUTCOME_RECORD_KINDS = frozenset(
    {*JOB_RECORD_KINDS, "job_end", "job_terms", "work_evidence", "work_break"}
)
"""The record kinds spells and work evidence are made from (what a write of one of them reads
to check it fits the case's jobs)."""


@frozen
class Terms:
    """A job's hours and pay from `from_date` until the next terms."""

    from_date: dt.date
    hours_per_week: Decimal
    hourly_pay: Decimal
    seq: int


@frozen
class Spell:
    """One job: `start` to `end` (the last day worked) inclusive; `end` None while open.
    `seqs` are the records it rests on."""

    job: str
    employer: str
    start: dt.date
    terms: tuple[Terms, ...]
    end: dt.date | None = None
    end_reason: str | None = None
    role: str | None = None
    kind: str = "employee"
    permanent: bool | None = None
    age_band: str | None = None
    seqs: tuple[int, ...] = ()

    def last_day(self, on: dt.date) -> dt.date:
        """The last day the spell covers as seen on `on` (an open spell runs to `on`)."""
        return on if self.end is None else min(self.end, on)

    def terms_on(self, day: dt.date) -> Terms:
        found = self.terms[0]
        for t in self.terms:
            if t.from_date <= day:
                found = t
        return found


@frozen
class WorkPeriod:
    """A period worked: its hours and gross pay spread evenly over its days (inclusive)."""

    job: str
    start: dt.date
    end: dt.date
    hours: Decimal
    gross_pay: Decimal
    evidence: str
    seq: int
    reference: str | None = None
    verified_by: str | None = None
    verified_on: dt.date | None = None

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


@frozen
class Break:
    job: str | None
    reason: str
    start: dt.date
    end: dt.date | None
    seq: int


@frozen
class Employment:
    spells: tuple[Spell, ...] = ()
    work: tuple[WorkPeriod, ...] = ()
    breaks: tuple[Break, ...] = ()

    def spell(self, job: str) -> Spell | None:
        return next((s for s in self.spells if s.job == job), None)


def current_records(records: Iterable[Record]) -> tuple[list[Record], dict[int, int]]:
    """The records no later record supersedes, in seq order, and each record's chain root
    (the seq of the first record it corrects, transitively)."""
    ordered = sorted(records, key=lambda r: r.seq)
    root: dict[int, int] = {}
    for r in ordered:
        root[r.seq] = root.get(r.supersedes, r.supersedes) if r.supersedes is not None else r.seq
    gone = {r.supersedes for r in ordered if r.supersedes is not None}
    return [r for r in ordered if r.seq not in gone], root


def _job_id(record: Record, root: Mapping[int, int]) -> str:
    named = record.get("job")
    return str(named) if named else f"J{root.get(record.seq, record.seq)}"


def _dec(value: Any, default: Decimal = Decimal(0)) -> Decimal:
    return value if isinstance(value, Decimal) else default


def _day(value: Any, default: dt.date) -> dt.date:
    return value if isinstance(value, dt.date) else default


def _jobs(
    current: Sequence[Record], root: Mapping[int, int], starts: Sequence[int] | None
) -> list[tuple[Record, int]]:
    """The job records taken up, each with the seq that opened it. `starts` are the seqs of
    `start_job` events: each takes up the latest offer before it not taken already; None
    takes every offer before the last (how a write sees the case)."""
    offers = [r for r in current if r.kind == "job_offer"]
    jobs: list[tuple[Record, int]] = []
    taken: set[int] = set()
    for s in starts or ():
        before = [o for o in offers if root[o.seq] < s and root[o.seq] not in taken]
        if before:
            pick = max(before, key=lambda o: root[o.seq])
            taken.add(root[pick.seq])
            jobs.append((pick, s))
    jobs += [(r, root[r.seq]) for r in current if r.kind == "job_start"]
    return jobs


def build_employment(records: Iterable[Record], starts: Sequence[int] | None = None) -> Employment:
    """The case's spells, work periods and breaks from its records (superseded ones dropped)
    and the seqs of its `start_job` events (`starts`). A record that names no job it fits
    is left out: writes refuse those (`record_problems`)."""
    current, root = current_records(records)
    opened: dict[str, dict[str, Any]] = {}
    for rec, opened_at in _jobs(current, root, starts):
        job = _job_id(rec, root)
        start = _day(rec.get("start_date"), rec.effective_at.date())
        opened[job] = {
            "job": job,
            "employer": str(rec.get("employer") or ""),
            "role": rec.get("role"),
            "start": start,
            "kind": str(rec.get("kind") or "employee"),
            "permanent": rec.get("permanent"),
            "age_band": rec.get("age_band"),
            "terms": [
                Terms(start, _dec(rec.get("hours_per_week")), _dec(rec.get("hourly_pay")), rec.seq)
            ],
            "seqs": [rec.seq],
            "opened_at": opened_at,
            "end": None,
            "end_reason": None,
        }
    for rec in current:
        if rec.kind == "job_end":
            ended = _which_job(rec, opened, open_only=True)
            if ended is not None:
                job = ended
                opened[job]["end"] = _day(rec.get("end_date"), rec.effective_at.date())
                opened[job]["end_reason"] = rec.get("reason")
                opened[job]["seqs"].append(rec.seq)
        elif rec.kind == "job_terms":
            changed = _which_job(rec, opened)
            if changed is not None:
                job = changed
                before = opened[job]["terms"][-1]
                opened[job]["terms"].append(
                    Terms(
                        _day(rec.get("from_date"), rec.effective_at.date()),
                        _dec(rec.get("hours_per_week"), before.hours_per_week),
                        _dec(rec.get("hourly_pay"), before.hourly_pay),
                        rec.seq,
                    )
                )
                opened[job]["seqs"].append(rec.seq)
    spells = []
    for o in sorted(opened.values(), key=lambda o: (o["start"], o["opened_at"])):
        terms = sorted(o["terms"], key=lambda t: (t.from_date, t.seq))
        spells.append(
            Spell(
                job=o["job"],
                employer=o["employer"],
                role=o["role"],
                start=o["start"],
                end=o["end"],
                end_reason=o["end_reason"],
                kind=o["kind"],
                permanent=o["permanent"],
                age_band=o["age_band"],
                terms=tuple(terms),
                seqs=tuple(sorted(o["seqs"])),
            )
        )
    work, breaks = [], []
    for rec in current:
        if rec.kind == "work_evidence":
            worked = _which_job(rec, opened)
            if worked is None:
                continue
            job = worked
            start = _day(rec.get("period_start"), rec.effective_at.date())
            work.append(
                WorkPeriod(
                    job=job,
                    start=start,
                    end=_day(rec.get("period_end"), start),
                    hours=_dec(rec.get("hours")),
                    gross_pay=_dec(rec.get("gross_pay")),
                    evidence=str(rec.get("evidence") or ""),
                    reference=rec.get("reference"),
                    verified_by=rec.get("verified_by"),
                    verified_on=rec.get("verified_on"),
                    seq=rec.seq,
                )
            )
        elif rec.kind == "work_break":
            start = _day(rec.get("start_date"), rec.effective_at.date())
            breaks.append(
                Break(
                    job=_which_job(rec, opened),
                    reason=str(rec.get("reason") or "other"),
                    start=start,
                    end=rec.get("end_date"),
                    seq=rec.seq,
                )
            )
    return Employment(spells=tuple(spells), work=tuple(work), breaks=tuple(breaks))


def _which_job(
    rec: Record, opened: Mapping[str, Mapping[str, Any]], *, open_only: bool = False
) -> str | None:
    """The job a record names, else the job started last before it (open, for a job end)."""
    named = rec.get("job")
    if named:
        return str(named) if str(named) in opened else None
    candidates = [
        o
        for o in opened.values()
        if o["opened_at"] < rec.seq and not (open_only and o["end"] is not None)
    ]
    if not candidates:
        return None
    return str(max(candidates, key=lambda o: (o["start"], o["opened_at"]))["job"])


def record_problems(
    kind: str,
    fields: Mapping[str, Any],
    records: Iterable[Record],
    *,
    last_start: int | None,
    supersedes: int | None = None,
    seq: int,
) -> dict[str, str]:
    """What is wrong with a new record of `kind` (typed `fields`) among the case's records,
    by field name: a job end before its job's start, or of a job already ended; work evidence
    ending before it starts, before its job's start, or overlapping an earlier period of the
    same job that it does not supersede; terms before the job's start; a break ending before
    it starts; a job named that the case does not have. `last_start` is the seq of the last
    `start_job` event (offers after it are not jobs yet); `seq` places the new record after
    every record the case has."""
    if kind not in OUTCOME_RECORD_KINDS or kind in JOB_RECORD_KINDS:
        return {}
    existing = [r for r in records if r.seq != supersedes]
    starts = [last_start] if last_start is not None else []
    offers = [r for r in existing if r.kind == "job_offer"]
    # Earlier offers may have been taken up by earlier start_job events: one start per offer.
    starts = sorted({*starts, *(root for root in _offer_roots(offers, last_start))})
    employment = build_employment(existing, starts)
    probe = Record(
        seq=seq,
        case_id="",
        kind=kind,
        fields=fields,
        effective_at=dt.datetime.max.replace(tzinfo=dt.UTC),
        recorded_at=dt.datetime.max.replace(tzinfo=dt.UTC),
        actor="",
    )
    opened = {
        s.job: {"job": s.job, "start": s.start, "end": s.end, "opened_at": 0}
        for s in employment.spells
    }
    problems: dict[str, str] = {}
    named = fields.get("job")
    job = _which_job(probe, opened, open_only=kind == "job_end")
    if job is None:
        known = ", ".join(sorted(opened)) or "none"
        if named:
            problems["job"] = f"the case has no job {named!r} (jobs: {known})"
        elif kind != "work_break":
            what = "open job to end" if kind == "job_end" else "job"
            problems["job"] = f"the case has no {what} (jobs: {known})"
        return problems
    spell = employment.spell(job)
    assert spell is not None
    if kind == "job_end":
        if spell.end is not None:
            problems["job"] = f"job {job} already ended on {spell.end}"
        end = fields.get("end_date")
        if isinstance(end, dt.date) and end < spell.start:
            problems["end_date"] = f"{end} is before job {job} started ({spell.start})"
    elif kind == "job_terms":
        start = fields.get("from_date")
        if isinstance(start, dt.date) and start < spell.start:
            problems["from_date"] = f"{start} is before job {job} started ({spell.start})"
    elif kind == "work_evidence":
        start, end = fields.get("period_start"), fields.get("period_end")
        if isinstance(start, dt.date) and isinstance(end, dt.date):
            if end < start:
                problems["period_end"] = f"{end} is before the period starts ({start})"
            elif start < spell.start:
                problems["period_start"] = f"{start} is before job {job} started ({spell.start})"
            else:
                for w in employment.work:
                    if w.job == job and w.start <= end and start <= w.end:
                        problems["period_start"] = (
                            f"the period {start}..{end} overlaps record {w.seq} of job {job} "
                            f"({w.start}..{w.end}); to correct it, supersede record {w.seq}"
                        )
                        break
    elif kind == "work_break":
        start, end = fields.get("start_date"), fields.get("end_date")
        if isinstance(start, dt.date) and isinstance(end, dt.date) and end < start:
            problems["end_date"] = f"{end} is before the break starts ({start})"
    return problems


def _offer_roots(offers: Sequence[Record], last_start: int | None) -> list[int]:
    """Stand-in start seqs for a write, which knows only the last `start_job`: every offer
    before it counts as taken up (an offer declined earlier is never named by a later job
    end, which ends the job started last)."""
    if last_start is None:
        return []
    return [o.seq + 1 for o in offers if o.seq < last_start]
