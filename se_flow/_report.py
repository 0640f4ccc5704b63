"""Returns and KPIs that show their calculation: every figure a `KPI`, with its method.

A KPI is a value and how it was reached: its numerator and denominator, the case ids behind
each (one entry per thing counted: a case `C-1`, a job `C-1/J2`, a record `C-1#14`, a
standard's occurrence `C-1#2`), the method in one plain sentence, the definition (and version)
it rests on and whether it counts what happened **during** the period or stands **as at** a
day. So a total always equals the length of its list, and anyone can check it case by case.

Pure: case views in (`case_view`, built from a case and its events), KPIs out. No I/O, no
clock: the caller says which day the evidence stands on (`on`: the period's end, or today if
that is earlier).

Conventions (our choice where the sources are silent), said once:
- periods are calendar quarters (`2026-Q3` = July to September) or months (`2026-11`), or
  `since`..`until`, both days inclusive;
- a case's referral date is the day its referral took effect (IPS Grow: the day the
  specialist accepted it); engagement (entry) is its first `engage` move;
- job starts and sustainment are the `ips_grow` definition's milestones, evaluated by the one
  evaluator (`_outcomes.evaluate`) as the evidence stands on `on`; provisional ones
  (estimated from contracted hours) count, and the method says so;
- a case counts towards the coach who held it on each day (its referral's coach, then each
  reassignment from its own day on; the coach at a day's end holds that day); a job outcome
  counts for the coach who held the case on the job's start day;
- a contact is a record of a kind marked `contact`; its location is its `location` field when
  that is `community`, `office`, `phone` or `video`;
- an employer contact is face to face only when its `face_to_face` field says so, and is the
  work of the staff member in its `by` field, else of whoever recorded it.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from attrs import frozen

from ._limits import EARLIEST_DATE, LATEST_DATE
from ._model import Case, EventKind
from ._outcomes import CaseFacts, Milestone, Programme, evaluate
from ._spells import (
    OUTCOME_RECORD_KINDS,
    START_TRIGGER,
    Employment,
    Spell,
    build_employment,
    current_records,
)
from ._standards import (
    MET,
    MISSED,
    OVERDUE,
    CaseHistory,
    Happening,
    StandardResult,
    pause_triggers,
)
from ._texts import ERASED, WITHHELD, record_slot
from ._workflow import ADULT_BAND, Workflow
from .errors import InvalidInput
from .ports import CaseReading

__all__ = [
    "CASELOAD_LIMIT",
    "KPI",
    "LOCATIONS",
    "REPORTS",
    "CaseView",
    "Period",
    "Report",
    "case_view",
    "caseload_score",
    "coaches",
    "fidelity",
    "ips_grow",
    "kinds_read",
    "parse_period",
    "period_between",
    "sample",
    "standards_met",
]

REPORTS = ("ips-grow", "coaches", "fidelity", "standards", "seqf")
LOCATIONS = ("community", "office", "phone", "video")
# IPS-25 item 1: at most 20 active clients per employment specialist.
CASELOAD_LIMIT = 20
# IPS Grow: an active client has had a contact in the last 4 weeks.
ACTIVE_DAYS = 28
SUSTAIN_DAYS = 91
IN_WORK = ("retention", "new_job")
DURING, AS_AT = "during", "as_at"
_DAY = dt.timedelta(days=1)


# Which report holds each figure (a service standard's id is the standards report's).
FIGURES: Mapping[str, tuple[str, ...]] = {
    "ips-grow": (
        "referrals_accepted",
        "referrals_in_work",
        "profiles_started",
        "clients_into_work",
        "total_job_starts",
        "sustained_13w",
        "employment_rate_cohort",
        "employment_rate_caseload",
        "carried_over",
        "discharges",
    ),
    "coaches": ("caseload_max", "caseload_score", "access", "job_outcomes", "sustained"),
    "fidelity": (
        "rapid_job_search",
        "rapid_job_search_mean",
        "rapid_job_search_median",
        "job_development",
        "diversity_employer",
        "diversity_role",
        "competitive_jobs",
        "follow_along_3_days",
        "follow_along_weekly",
        "follow_along_monthly",
        "community_contact",
    ),
}


def report_for(key: str, standards: Iterable[str]) -> str | None:
    """The report that holds figure `key` (`id` or `id:coach`), or None."""
    kid = key.partition(":")[0]
    for name, ids in FIGURES.items():
        if kid in ids:
            return name
    return "standards" if kid in set(standards) else None


# --- periods ---------------------------------------------------------------------------------


@frozen
class Period:
    """From `start` to `end`, both days inclusive; `label` as the user asked for it."""

    start: dt.date
    end: dt.date
    label: str

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def __contains__(self, day: object) -> bool:
        return isinstance(day, dt.date) and self.start <= day <= self.end

    def to_json(self) -> dict[str, str]:
        return {"label": self.label, "start": self.start.isoformat(), "end": self.end.isoformat()}


_QUARTER = re.compile(r"(\d{4})-[Qq](\d+)")
_MONTH = re.compile(r"(\d{4})-(\d{1,2})")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _in_range(day: dt.date, what: str) -> dt.date:
    if not EARLIEST_DATE <= day <= LATEST_DATE:
        raise InvalidInput(f"{what} {day} is outside {EARLIEST_DATE}..{LATEST_DATE}", field=what)
    return day


def _year(text: str, what: str) -> int:
    year = int(text)
    if not EARLIEST_DATE.year <= year <= LATEST_DATE.year:
        raise InvalidInput(
            f"{what}: year {year} is outside {EARLIEST_DATE.year}..{LATEST_DATE.year}", field=what
        )
    return year


def quarter(text: str, what: str = "quarter") -> Period:
    """`YYYY-QN` (N from 1 to 4): a calendar quarter."""
    found = _QUARTER.fullmatch(text.strip())
    if not found:
        raise InvalidInput(f"{what} {text!r} is not a quarter like 2026-Q3", field=what)
    year, q = _year(found[1], what), int(found[2])
    if not 1 <= q <= 4:
        raise InvalidInput(f"{what} {text!r}: a year has quarters Q1 to Q4", field=what)
    start = dt.date(year, 3 * q - 2, 1)
    end_month = 3 * q
    end = dt.date(year, end_month, calendar.monthrange(year, end_month)[1])
    return Period(start, end, f"{year}-Q{q}")


def month(text: str, what: str = "month") -> Period:
    """`YYYY-MM` (MM from 01 to 12)."""
    found = _MONTH.fullmatch(text.strip())
    if not found:
        raise InvalidInput(f"{what} {text!r} is not a month like 2026-11", field=what)
    year, m = _year(found[1], what), int(found[2])
    if not 1 <= m <= 12:
        raise InvalidInput(f"{what} {text!r}: months run from 01 to 12", field=what)
    end = dt.date(year, m, calendar.monthrange(year, m)[1])
    return Period(dt.date(year, m, 1), end, f"{year}-{m:02d}")


def _date(text: str | dt.date, what: str) -> dt.date:
    if isinstance(text, dt.date):
        return _in_range(text, what)
    if not _DATE.fullmatch(text.strip()):
        raise InvalidInput(f"{what} {text!r} is not a date like 2026-07-01", field=what)
    try:
        day = dt.date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(f"{what} {text!r} is not a day of the calendar", field=what) from None
    return _in_range(day, what)


def period_between(since: str | dt.date, until: str | dt.date) -> Period:
    """`since` to `until`, both inclusive; an empty period (until before since) is refused."""
    start, end = _date(since, "since"), _date(until, "until")
    if end < start:
        raise InvalidInput(
            f"the period is empty: --until {end} is before --since {start}", field="until"
        )
    return Period(start, end, f"{start}..{end}")


def parse_period(text: str) -> Period:
    """A period as text: `2026-Q3`, `2026-11` or `2026-07-01..2026-09-30`."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("the period is empty: give e.g. 2026-Q3 or 2026-11", field="period")
    text = text.strip()
    if ".." in text:
        since, _, until = text.partition("..")
        return period_between(since, until)
    if _QUARTER.fullmatch(text):
        return quarter(text, "period")
    if _MONTH.fullmatch(text):
        return month(text, "period")
    raise InvalidInput(
        f"period {text!r} does not parse: give a quarter (2026-Q3), a month (2026-11) or "
        "SINCE..UNTIL (2026-07-01..2026-09-30)",
        field="period",
    )


# --- the value -------------------------------------------------------------------------------


@frozen
class KPI:
    """One figure and how it was counted.

    `numerator` is always `len(numerator_cases)` and `denominator` (when there is one)
    `len(denominator_cases)`; `value` is the figure shown: a percentage, a mean, a score, or
    the count itself. `unit`: count, percent, days, per_week, ratio or score. `basis`:
    `during` the period or `as_at` a day (`as_at`). `definition` is `id@version` with its
    `status`; anything but `verified` is said with every figure (`warning`)."""

    id: str
    title: str
    period: Period
    numerator: int
    denominator: int | None
    value: Decimal | None
    unit: str
    method: str
    definition: str
    definition_status: str
    basis: str
    numerator_cases: tuple[str, ...]
    denominator_cases: tuple[str, ...] = ()
    as_at: dt.date | None = None
    coach: str | None = None
    target: Decimal | None = None

    @property
    def key(self) -> str:
        """The id a user types to drill down: `job_outcomes` or `job_outcomes:sam`."""
        return f"{self.id}:{self.coach}" if self.coach else self.id

    @property
    def warning(self) -> str | None:
        if self.definition_status == "verified":
            return None
        return f"definition {self.definition} is {self.definition_status}, not verified"

    def shown(self) -> str:
        """The figure as a person reads it: `12`, `40.0%`, `3 of 8 (37.5%)`, `4.5 days`."""
        if self.value is None:
            return "n/a (nothing to count)"
        if self.unit == "percent":
            return f"{self.numerator} of {self.denominator} ({self.value}%)"
        if self.unit == "days":
            return f"{self.value} days"
        if self.unit == "per_week":
            return f"{self.value} a week"
        if self.unit == "ratio":
            return f"{self.value} ({self.numerator} of {self.denominator})"
        if self.unit == "score":
            return f"{self.value} of 5"
        return str(self.value)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "key": self.key,
            "title": self.title,
            "period": self.period.to_json(),
            "basis": self.basis,
            "as_at": self.as_at.isoformat() if self.as_at else None,
            "coach": self.coach,
            "numerator": self.numerator,
            "denominator": self.denominator,
            "value": None if self.value is None else str(self.value),
            "unit": self.unit,
            "target": None if self.target is None else str(self.target),
            "method": self.method,
            "definition": self.definition,
            "definition_status": self.definition_status,
            "warning": self.warning,
            "numerator_cases": list(self.numerator_cases),
            "denominator_cases": list(self.denominator_cases),
        }


@frozen
class Report:
    """A report: its KPIs, the day its evidence stands on, and what the HTML charts draw
    (`charts`: name to (label, number) pairs). `clients`, `sample` and `seed` are the SEQF
    pack's."""

    name: str
    title: str
    period: Period
    on: dt.date
    kpis: tuple[KPI, ...]
    charts: Mapping[str, tuple[tuple[str, int], ...]]
    notes: tuple[str, ...] = ()
    clients: tuple[Mapping[str, Any], ...] = ()
    sample: tuple[str, ...] = ()
    seed: int | None = None

    def kpi(self, key: str) -> KPI | None:
        return next((k for k in self.kpis if key in (k.key, k.id)), None)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "report": self.name,
            "title": self.title,
            "period": self.period.to_json(),
            "on": self.on.isoformat(),
            "notes": list(self.notes),
            "kpis": [k.to_json() for k in self.kpis],
            "charts": {name: [list(p) for p in pairs] for name, pairs in self.charts.items()},
        }
        if self.name == "seqf":
            out["seed"] = self.seed
            out["sample"] = list(self.sample)
            out["clients"] = [dict(c) for c in self.clients]
        return out


# --- what a report reads of a case ------------------------------------------------------------


@frozen
class Contact:
    on: dt.date
    seq: int
    kind: str
    location: str | None
    minutes: Decimal | None


@frozen
class EmployerContact:
    on: dt.date
    seq: int
    employer: str
    face_to_face: bool
    by: str


@frozen
class JobStart:
    """A job whose `job_start` milestone was reached (`on`), and the job's own start day."""

    job: str
    started: dt.date
    on: dt.date
    employer: str
    role: str | None


@frozen
class CaseView:
    case: Case
    referred_on: dt.date
    closed_on: dt.date | None
    in_work_at_referral: str | None
    engaged_on: dt.date | None
    profiled_on: dt.date | None
    stages: tuple[tuple[dt.date, str], ...]
    contacts: tuple[Contact, ...]
    employer_contacts: tuple[EmployerContact, ...]
    spells: tuple[Spell, ...]
    starts: tuple[JobStart, ...]
    sustained_on: dt.date | None
    history: CaseHistory | None = None
    coaches: tuple[tuple[dt.date, str | None], ...] = ()
    """The case's coach from each day on (its referral's, then each reassignment's), in
    order: the coach at the end of a day holds it that day (`coach_on`)."""
    job_ends: Mapping[str, int] = {}
    """Each ended job's `job_end` record (seq): where its free-text reason is kept."""

    @property
    def id(self) -> str:
        return self.case.id

    @property
    def out_of_work(self) -> bool:
        return self.in_work_at_referral not in IN_WORK

    @property
    def first_start(self) -> JobStart | None:
        return min(self.starts, key=lambda s: (s.on, s.started)) if self.starts else None

    def coach_on(self, day: dt.date) -> str | None:
        """The coach who held the case at the end of `day` (its coach now if none was
        recorded)."""
        if not self.coaches:
            return self.case.coach
        return _coach_on(self.coaches, day)

    def open_on(self, day: dt.date) -> bool:
        return self.referred_on <= day and (self.closed_on is None or self.closed_on >= day)

    def open_during(self, p: Period) -> bool:
        return self.referred_on <= p.end and (self.closed_on is None or self.closed_on >= p.start)


def kinds_read(workflow: Workflow, programme: Programme) -> frozenset[str]:
    """The record kinds the reports read (`case_view`): the referral, contacts, employer
    contacts, vocational profiles, the job records and whatever `programme`'s `events`
    milestones count. A store need decode no other (the standards report reads all)."""
    kinds = {
        workflow.names.referral or "referral",
        "employer_contact",
        "vocational_profile",
        *OUTCOME_RECORD_KINDS,
        *(k.name for k in workflow.records.values() if k.contact),
    }
    for m in programme.milestones:
        kinds.update(str(k) for k in m.params.get("kinds") or ())
        if m.params.get("or_kind"):
            kinds.add(str(m.params["or_kind"]))
    return frozenset(kinds)


def _coach_on(coaches: Sequence[tuple[dt.date, str | None]], day: dt.date) -> str | None:
    """Who held the case at the end of `day`, from its coach changes (the first coach before
    its first day)."""
    held = coaches[0][1] if coaches else None
    for since, coach in coaches:
        if since > day:
            break
        held = coach
    return held


def case_view(
    reading: CaseReading,
    workflow: Workflow,
    programme: Programme,
    on: dt.date,
    *,
    with_history: bool = False,
) -> CaseView:
    """What the reports read of one case (`CaseReading`: the case, its events and records),
    with `programme`'s job starts and sustainment as the evidence stands on `on`; with
    `with_history`, its history as the service standards read it."""
    case, events = reading.case, reading.events
    current, _ = current_records(reading.records)
    starts_at = [
        e.seq for e in events if e.kind == EventKind.TRANSITION and e.trigger == START_TRIGGER
    ]
    employment: Employment = build_employment(current, starts_at)
    referral_kind = workflow.names.referral or "referral"
    referral = next((r for r in current if r.kind == referral_kind), None)
    in_work = referral.get("in_work_at_referral") if referral is not None else None
    contact_kinds = frozenset(k.name for k in workflow.records.values() if k.contact)
    milestones: tuple[Milestone, ...] = evaluate(
        programme,
        CaseFacts(
            employment=employment,
            programme_start=case.opened_at.date(),
            wages=workflow.minimum_wage,
            records=tuple(current),
            contact_kinds=contact_kinds,
            in_work_at_referral=in_work,
        ),
        on,
    )
    starts = []
    sustained_on = None
    for m in milestones:
        if not m.reached or m.achieved_on is None:
            continue
        if m.id == "job_start":
            for job in m.jobs:
                s = employment.spell(job)
                if s is not None:
                    starts.append(JobStart(job, s.start, m.achieved_on, s.employer, s.role))
        elif m.id == "sustained_13w":
            sustained_on = m.achieved_on
    contacts = []
    employer_contacts = []
    profiled = None
    ends: dict[int, str] = {}
    for r in current:
        day = r.effective_at.date()
        if r.kind in contact_kinds:
            where = r.get("location")
            minutes = r.get("minutes")
            contacts.append(
                Contact(
                    on=day,
                    seq=r.seq,
                    kind=r.kind,
                    location=where if where in LOCATIONS else None,
                    minutes=minutes if isinstance(minutes, Decimal) else None,
                )
            )
        if r.kind == "employer_contact":
            employer_contacts.append(
                EmployerContact(
                    on=day,
                    seq=r.seq,
                    employer=str(r.get("employer") or ""),
                    face_to_face=r.get("face_to_face") is True,
                    by=str(r.get("by") or r.actor),
                )
            )
        if r.kind == "job_end":
            ends[r.seq] = r.kind
        if r.kind == "vocational_profile" and profiled is None:
            profiled = day
    engaged = next(
        (
            e.effective_at.date()
            for e in events
            if e.kind == EventKind.TRANSITION and e.trigger == "engage"
        ),
        None,
    )
    stages = tuple(
        (e.effective_at.date(), str(e.to_state))
        for e in events
        if e.to_state is not None and e.kind in (EventKind.TRANSITION, EventKind.REFERRAL)
    )
    coaches = tuple(
        (e.effective_at.date(), e.coach)
        for e in events
        if e.kind in (EventKind.REFERRAL, EventKind.REOPEN, EventKind.ASSIGN)
    )
    return CaseView(
        case=case,
        referred_on=case.opened_at.date(),
        closed_on=case.closed_at.date() if case.closed_at else None,
        in_work_at_referral=in_work,
        engaged_on=engaged,
        profiled_on=profiled,
        stages=stages,
        contacts=tuple(sorted(contacts, key=lambda c: (c.on, c.seq))),
        employer_contacts=tuple(sorted(employer_contacts, key=lambda c: (c.on, c.seq))),
        spells=employment.spells,
        starts=tuple(sorted(starts, key=lambda s: (s.on, s.started, s.job))),
        sustained_on=sustained_on,
        history=_history(reading, workflow) if with_history else None,
        coaches=coaches or ((case.opened_at.date(), case.coach),),
        job_ends={s.job: seq for s in employment.spells for seq in s.seqs if seq in ends},
    )


def _history(reading: CaseReading, workflow: Workflow) -> CaseHistory:
    """The case's history as the service standards read it (`_standards.happenings`: every
    event in seq order, a record with its typed fields, corrected records left out), from
    its reading: a referral's or reopen's record joins its event."""
    pause, resume = pause_triggers(workflow)
    gone = {r.supersedes for r in reading.records if r.supersedes is not None}
    by_seq = {r.seq: r for r in reading.records}
    out: list[Happening] = []
    for e in reading.events:
        r = by_seq.pop(e.seq, None)
        out.append(
            Happening(
                e.effective_at.date(),
                e.seq,
                e.kind,
                e.trigger,
                r.kind if r is not None else None,
                r.fields if r is not None else None,
            )
        )
    for r in by_seq.values():
        out.append(Happening(r.effective_at.date(), r.seq, "record", None, r.kind, r.fields))
    out.sort(key=lambda h: h.seq)
    case = reading.case
    return CaseHistory(
        case_id=case.id,
        coach=case.coach,
        happenings=tuple(h for h in out if h.seq not in gone),
        closed_on=case.closed_at.date() if case.closed_at else None,
        pause_triggers=pause,
        resume_triggers=resume,
    )


# --- building KPIs ---------------------------------------------------------------------------


def _pct(n: int, d: int) -> Decimal | None:
    if d == 0:
        return None
    return (Decimal(n * 100) / Decimal(d)).quantize(Decimal("0.1"), ROUND_HALF_UP)


def _mean(values: Sequence[int]) -> Decimal:
    return Decimal(sum(values)) / len(values)


def _median(values: Sequence[int]) -> Decimal:
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return Decimal(ordered[mid])
    return Decimal(ordered[mid - 1] + ordered[mid]) / 2


def _round(value: float | Decimal, places: str = "0.1") -> Decimal:
    return Decimal(str(value)).quantize(Decimal(places), ROUND_HALF_UP)


@frozen
class _Basis:
    period: Period
    on: dt.date
    definition: str
    status: str


def _kpi(
    b: _Basis,
    id: str,
    title: str,
    method: str,
    num: Iterable[str],
    den: Iterable[str] | None = None,
    *,
    unit: str | None = None,
    value: Decimal | None = None,
    basis: str = DURING,
    as_at: dt.date | None = None,
    coach: str | None = None,
    target: Decimal | None = None,
) -> KPI:
    n = tuple(num)
    d = tuple(den) if den is not None else None
    unit = unit or ("percent" if d is not None else "count")
    if value is None:
        if unit == "percent" and d is not None:
            value = _pct(len(n), len(d))
        elif unit == "count":
            value = Decimal(len(n))
    return KPI(
        id=id,
        title=title,
        period=b.period,
        numerator=len(n),
        denominator=None if d is None else len(d),
        value=value,
        unit=unit,
        method=method,
        definition=b.definition,
        definition_status=b.status,
        basis=basis,
        numerator_cases=n,
        denominator_cases=d or (),
        as_at=as_at if as_at is not None else (b.on if basis == AS_AT else None),
        coach=coach,
        target=target,
    )


def _job(v: CaseView, job: str) -> str:
    return f"{v.id}/{job}"


def _sustain_cohort(views: Iterable[CaseView], p: Period) -> list[CaseView]:
    """Previously unemployed starters whose 13 weeks (91 days from their first job's start)
    ended in `p`."""
    out = []
    for v in views:
        first = v.first_start
        if first is None or not v.out_of_work:
            continue
        if first.started + dt.timedelta(days=SUSTAIN_DAYS - 1) in p:
            out.append(v)
    return out


def _sustained(v: CaseView, p: Period) -> bool:
    return v.sustained_on is not None and v.sustained_on <= p.end


def _started_by(v: CaseView, day: dt.date) -> bool:
    first = v.first_start
    return first is not None and first.on <= day


def _charts(
    views: Sequence[CaseView], workflow: Workflow, p: Period, on: dt.date
) -> dict[str, Any]:
    """The HTML report's charts: how many cases ever reached each stage (the funnel), job
    starts and sustained jobs by month (the twelve months to the period's end) and the active
    caseload per coach at the period's end (or `on`, if earlier)."""
    reached: Counter[str] = Counter()
    for v in views:
        for stage in {s for _, s in v.stages}:
            reached[stage] += 1
    funnel = tuple((s.title, reached[s.id]) for s in workflow.stages)
    months: list[tuple[int, int]] = []
    y, m = p.end.year, p.end.month
    for _ in range(12):
        months.append((y, m))
        y, m = (y, m - 1) if m > 1 else (y - 1, 12)
    months.reverse()
    starts: Counter[tuple[int, int]] = Counter()
    sustained: Counter[tuple[int, int]] = Counter()
    for v in views:
        for s in v.starts:
            if s.on <= p.end:
                starts[(s.on.year, s.on.month)] += 1
        if v.sustained_on is not None and v.sustained_on <= p.end:
            sustained[(v.sustained_on.year, v.sustained_on.month)] += 1
    load: Counter[str] = Counter()
    last = min(p.end, on)
    for v in views:
        held = v.coach_on(last)
        if held and _active_on(v, last):
            load[held] += 1
    return {
        "funnel": funnel,
        "job_starts": tuple((f"{y}-{m:02d}", starts[(y, m)]) for y, m in months),
        "sustained": tuple((f"{y}-{m:02d}", sustained[(y, m)]) for y, m in months),
        "caseload": tuple(sorted(load.items())),
    }


# --- IPS Grow quarterly return ----------------------------------------------------------------


def ips_grow(
    views: Sequence[CaseView], p: Period, on: dt.date, programme: Programme, workflow: Workflow
) -> Report:
    """The IPS Grow quarterly return for `p` (see the module doc for the conventions)."""
    b = _Basis(p, on, programme.ref, programme.status)
    referred = [v for v in views if v.referred_on in p]
    ref_ids = [v.id for v in referred]
    out_of_work = [v for v in referred if v.out_of_work]
    active = [v for v in views if v.open_during(p) and v.out_of_work]
    cohort = _sustain_cohort(views, p)
    prov = "provisional starts (from contracted hours) included"
    kpis = [
        _kpi(
            b,
            "referrals_accepted",
            "Referrals accepted",
            "Cases whose referral took effect in the period.",
            ref_ids,
        ),
        _kpi(
            b,
            "referrals_in_work",
            "Referrals already in work",
            "Of the cases referred in the period, those in work at referral (retention or "
            "seeking a new job).",
            [v.id for v in referred if not v.out_of_work],
            ref_ids,
        ),
        _kpi(
            b,
            "profiles_started",
            "Vocational profiles started (engaged)",
            "Cases whose first vocational profile record is dated in the period.",
            [v.id for v in views if v.profiled_on is not None and v.profiled_on in p],
        ),
        _kpi(
            b,
            "clients_into_work",
            "Clients into work (first job starts)",
            "Cases whose first job reached 4 paid hours in the period (a client's first job "
            f"start only; {prov}).",
            [v.id for v in views if v.first_start is not None and v.first_start.on in p],
        ),
        _kpi(
            b,
            "total_job_starts",
            "Total job starts",
            "Every job (2nd, 3rd and concurrent ones too) that reached 4 paid hours in the "
            f"period, one entry per job ({prov}).",
            [_job(v, s.job) for v in views for s in v.starts if s.on in p],
        ),
        _kpi(
            b,
            "sustained_13w",
            "Sustained beyond 13 weeks (% of starters)",
            "Of the clients out of work at referral whose first job's 13 weeks (91 days from "
            "its start) ended in the period, those sustained in work 13 weeks by its end "
            "(gaps of up to 14 days between jobs bridged, not counted).",
            [v.id for v in cohort if _sustained(v, p)],
            [v.id for v in cohort],
        ),
        _kpi(
            b,
            "employment_rate_cohort",
            "Employment rate: cohort (referred in the period)",
            "Of the clients referred in the period and out of work at referral, those with a "
            "first job start by the period's end (clients in work at referral left out).",
            [v.id for v in out_of_work if _started_by(v, p.end)],
            [v.id for v in out_of_work],
            target=Decimal(40),
        ),
        _kpi(
            b,
            "employment_rate_caseload",
            "Employment rate: caseload (active in the period)",
            "Of the clients out of work at referral whose case was open at some time in the "
            "period, those with a first job start by the period's end (clients in work at "
            "referral left out).",
            [v.id for v in active if _started_by(v, p.end)],
            [v.id for v in active],
            target=Decimal(40),
        ),
        _kpi(
            b,
            "carried_over",
            "Carried over from the last period",
            "Cases open on the period's first day that were referred before it.",
            [v.id for v in views if v.referred_on < p.start and v.open_on(p.start)],
            basis=AS_AT,
            as_at=p.start,
        ),
        _kpi(
            b,
            "discharges",
            "Discharges",
            "Cases closed in the period.",
            [v.id for v in views if v.closed_on is not None and v.closed_on in p],
        ),
    ]
    return Report(
        name="ips-grow",
        title=f"IPS Grow quarterly return, {p.label}",
        period=p,
        on=on,
        kpis=tuple(kpis),
        charts=_charts(views, workflow, p, on),
        notes=_notes(b),
    )


def _notes(b: _Basis) -> tuple[str, ...]:
    out = [f"Evidence as it stands on {b.on}."]
    if b.status != "verified":
        out.append(
            f"Every figure rests on definition {b.definition}, which is {b.status}, not verified."
        )
    return tuple(out)


# --- per coach ---------------------------------------------------------------------------------


def caseload_score(active: int) -> int:
    """IPS-25 item 1, UK anchors: ≤ 20 → 5, 21–25 → 4, 26–30 → 3, 31–40 → 2, ≥ 41 → 1."""
    for limit, score in ((20, 5), (25, 4), (30, 3), (40, 2)):
        if active <= limit:
            return score
    return 1


def _active_on(v: CaseView, day: dt.date) -> bool:
    if not v.open_on(day):
        return False
    since = day - dt.timedelta(days=ACTIVE_DAYS - 1)
    return any(since <= c.on <= day for c in v.contacts)


def _active_spans(v: CaseView, p: Period) -> list[tuple[dt.date, dt.date]]:
    """The stretches of `p` (first and last day) on which the case was active: open, with a
    contact in the 28 days ending that day. Merged, in order."""
    lo = max(p.start, v.referred_on)
    hi = p.end if v.closed_on is None else min(p.end, v.closed_on)
    spans: list[tuple[dt.date, dt.date]] = []
    for c in v.contacts:
        first = max(c.on, lo)
        last = min(c.on + dt.timedelta(days=ACTIVE_DAYS - 1), hi)
        if first > last:
            continue
        if spans and first <= spans[-1][1] + _DAY:
            spans[-1] = (spans[-1][0], max(spans[-1][1], last))
        else:
            spans.append((first, last))
    return spans


def _holdings(v: CaseView, p: Period) -> list[tuple[str | None, dt.date, dt.date]]:
    """Who held the case over `p`: (coach, first day, last day), in order. A day belongs to
    the coach who held the case at its end, so a reassignment counts from its own day."""
    changes = list(v.coaches) or [(p.start, v.case.coach)]
    out: list[tuple[str | None, dt.date, dt.date]] = []
    for i, (since, coach) in enumerate(changes):
        first = p.start if i == 0 else max(since, p.start)
        end = changes[i + 1][0] - _DAY if i + 1 < len(changes) else p.end
        end = min(end, p.end)
        if first <= end:
            out.append((coach, first, end))
    return out


def coaches(
    views: Sequence[CaseView],
    p: Period,
    on: dt.date,
    programme: Programme,
    workflow: Workflow,
    staff: Sequence[str],
) -> Report:
    """Per coach (employment specialist): the active caseload's peak against 20 and its
    IPS-25 score, access, job outcomes and sustained jobs. `staff`: the coaches to report on."""
    b = _Basis(p, on, programme.ref, programme.status)
    last = min(p.end, on)
    window = Period(p.start, max(p.start, last), p.label)
    # Each case's active stretches, cut where its coach changed: (coach, first, last day).
    held: dict[str, list[tuple[CaseView, list[tuple[dt.date, dt.date]]]]] = defaultdict(list)
    for v in views:
        spans = _active_spans(v, window)
        for coach, first, end in _holdings(v, window):
            if coach is None:
                continue
            mine = [(max(a, first), min(z, end)) for a, z in spans if a <= end and z >= first]
            held[coach].append((v, mine))
    # A first job counts for the coach who held the case on its start day.
    started_with: dict[str, list[CaseView]] = defaultdict(list)
    for v in views:
        starter = v.first_start
        if starter is not None:
            at_start = v.coach_on(starter.started)
            if at_start:
                started_with[at_start].append(v)
    kpis: list[KPI] = []
    for coach in staff:
        # A case under several coaches in the period is one case to each: its stretches joined.
        cut: dict[str, list[tuple[dt.date, dt.date]]] = {}
        case_of: dict[str, CaseView] = {}
        for v, stretches in held.get(coach, []):
            cut.setdefault(v.id, []).extend(stretches)
            case_of[v.id] = v
        # How many cases were active each day: +1 where a stretch starts, -1 after it ends.
        change: Counter[dt.date] = Counter()
        for stretches in cut.values():
            for first, end in stretches:
                change[first] += 1
                change[end + _DAY] -= 1
        peak_day, most, running = p.start, 0, 0
        for day in sorted(change):
            running += change[day]
            if running > most:
                peak_day, most = day, running
        peak = (
            [cid for cid, stretches in cut.items() if any(a <= peak_day <= z for a, z in stretches)]
            if most
            else []
        )
        access = [case_of[cid] for cid, stretches in cut.items() if stretches]
        access = [v for v in access if v.out_of_work]
        access.sort(key=lambda v: _case_number(v.id))
        peak.sort(key=_case_number)
        cohort = _sustain_cohort(started_with.get(coach, []), p)
        anchors = "≤ 20 → 5, 21–25 → 4, 26–30 → 3, 31–40 → 2, ≥ 41 → 1"
        kpis += [
            _kpi(
                b,
                "caseload_max",
                f"Peak active caseload ({coach})",
                f"The most cases active on one day of the period while {coach} held them (open, "
                "with a contact in the 28 days to that day; a reassigned case counts for the "
                "coach who held it at the end of each day), against the IPS limit of 20; the "
                f"peak was on {peak_day}.",
                peak,
                basis=AS_AT,
                as_at=peak_day,
                coach=coach,
                target=Decimal(CASELOAD_LIMIT),
            ),
            _kpi(
                b,
                "caseload_score",
                f"IPS-25 caseload score ({coach})",
                f"IPS-25 item 1 from the peak active caseload ({len(peak)}), UK anchors: "
                f"{anchors}.",
                peak,
                unit="score",
                value=Decimal(caseload_score(len(peak))),
                basis=AS_AT,
                as_at=peak_day,
                coach=coach,
            ),
            _kpi(
                b,
                "access",
                f"Access: unemployed clients worked with ({coach})",
                f"Cases out of work at referral that were active on some day of the period "
                f"while {coach} held them (IPS Grow: at least 35 a year in year 1, 40 in "
                "year 2).",
                [v.id for v in access],
                coach=coach,
            ),
            _kpi(
                b,
                "job_outcomes",
                f"Job outcomes ({coach})",
                f"Of the clients out of work at referral active in the period while {coach} "
                "held their case, those with a first job start by the period's end that began "
                f"while {coach} held it (a job counts for the coach at its start day; target "
                "at least 40%).",
                [
                    v.id
                    for v in access
                    if _started_by(v, p.end)
                    and v.first_start is not None
                    and v.coach_on(v.first_start.started) == coach
                ],
                [v.id for v in access],
                coach=coach,
                target=Decimal(40),
            ),
            _kpi(
                b,
                "sustained",
                f"Sustained 13 weeks ({coach})",
                f"Of the previously unemployed starters whose first job began while {coach} "
                "held their case (the coach at its start day) and whose 13 weeks ended in the "
                "period, those sustained by its end (target at least 65%).",
                [v.id for v in cohort if _sustained(v, p)],
                [v.id for v in cohort],
                coach=coach,
                target=Decimal(65),
            ),
        ]
    return Report(
        name="coaches",
        title=f"Coaches' caseloads, {p.label}",
        period=p,
        on=on,
        kpis=tuple(kpis),
        charts=_charts(views, workflow, p, on),
        notes=_notes(b),
    )


# --- fidelity evidence --------------------------------------------------------------------------


def _competitive(spell: Spell, workflow: Workflow) -> bool:
    """Every terms of the job pay at least the minimum wage for its band in force on their
    date (an apprenticeship at the apprentice rate); self-employment is judged on its terms
    too."""
    band = "apprentice" if spell.kind == "apprenticeship" else (spell.age_band or ADULT_BAND)
    for t in spell.terms:
        rates = [
            w for w in workflow.minimum_wage if w.band == band and w.effective_from <= t.from_date
        ]
        if not rates:
            continue
        rate = max(rates, key=lambda w: w.effective_from)
        if t.hourly_pay < rate.hourly:
            return False
    return True


def _has_contact(v: CaseView, first: dt.date, last: dt.date) -> bool:
    return any(first <= c.on <= last for c in v.contacts)


def fidelity(
    views: Sequence[CaseView], p: Period, on: dt.date, programme: Programme, workflow: Workflow
) -> Report:
    """IPS-25 evidence from the data (no score where the scale needs interviews)."""
    b = _Basis(p, on, "ips-25 (data items)", "partial")
    kpis: list[KPI] = []
    # Rapid job search.
    entered = [v for v in views if v.engaged_on is not None and v.engaged_on in p]
    waits: dict[str, int] = {}
    for v in entered:
        assert v.engaged_on is not None
        first = next(
            (c for c in v.employer_contacts if c.face_to_face and c.on >= v.engaged_on), None
        )
        if first is not None:
            waits[v.id] = (first.on - v.engaged_on).days
    entered_ids = [v.id for v in entered]
    with_contact = [v.id for v in entered if v.id in waits]
    kpis += [
        _kpi(
            b,
            "rapid_job_search",
            "Rapid job search: first face-to-face employer contact within 30 days",
            "Of the cases that entered (engage) in the period, those with a face-to-face "
            "employer contact within 30 days of entry.",
            [i for i in with_contact if waits[i] <= 30],
            entered_ids,
        ),
        _kpi(
            b,
            "rapid_job_search_mean",
            "Days from entry to the first face-to-face employer contact (mean)",
            "The mean of the days from entry to the first face-to-face employer contact, over "
            "the cases that entered in the period and have had one.",
            with_contact,
            entered_ids,
            unit="days",
            value=_round(_mean(list(waits.values()))) if waits else None,
        ),
        _kpi(
            b,
            "rapid_job_search_median",
            "Days from entry to the first face-to-face employer contact (median)",
            "The median of the same days, over the same cases.",
            with_contact,
            entered_ids,
            unit="days",
            value=_round(_median(list(waits.values()))) if waits else None,
        ),
    ]
    # Job development frequency: employer contacts per coach per week.
    weeks = Decimal(p.days) / 7
    per_coach: dict[str, list[str]] = defaultdict(list)
    for v in views:
        for c in v.employer_contacts:
            if c.on in p:
                per_coach[c.by].append(f"{v.id}#{c.seq}")
    for coach in sorted(per_coach):
        made = per_coach[coach]
        kpis.append(
            _kpi(
                b,
                "job_development",
                f"Employer contacts a week ({coach})",
                f"Employer contacts by {coach} in the period (face to face or not; its `by` "
                f"field, else who recorded it), divided by the period's {_round(weeks)} weeks "
                "(6 a week is the usual top anchor, unverified).",
                made,
                unit="per_week",
                value=_round(Decimal(len(made)) / weeks),
                coach=coach,
            )
        )
    # Diversity: distinct employers and job types over the 12 months to the period's end.
    year = Period(p.end - dt.timedelta(days=364), p.end, f"12 months to {p.end}")
    jobs = [(v, s) for v in views for s in v.spells if s.start in year]
    jobs.sort(key=lambda js: (js[1].start, js[0].id, js[1].job))
    for what, key in (("employers", "employer"), ("job types", "role")):
        seen: set[str] = set()
        firsts = []
        for v, s in jobs:
            name = (getattr(s, key) or "").strip().casefold() or "(none)"
            if name not in seen:
                seen.add(name)
                firsts.append(_job(v, s.job))
        n = len(firsts)
        kpis.append(
            _kpi(
                b,
                f"diversity_{key}",
                f"Diversity of {what}",
                f"Distinct {what} divided by jobs started in the 12 months to the period's end "
                f"({year.start}..{year.end}); the numerator lists the first job of each.",
                firsts,
                [_job(v, s.job) for v, s in jobs],
                unit="ratio",
                value=_round(Decimal(n) / len(jobs), "0.01") if jobs else None,
            )
        )
    started = [(v, s) for v in views for s in v.spells if s.start in p]
    kpis.append(
        _kpi(
            b,
            "competitive_jobs",
            "Competitive jobs",
            "Of the jobs started in the period (all are open-market: se-flow records no "
            "sheltered work), those paying at least the minimum wage for their age band on "
            "every change of terms (apprenticeships at the apprentice rate).",
            [_job(v, s.job) for v, s in started if _competitive(s, workflow)],
            [_job(v, s.job) for v, s in started],
        )
    )
    # Follow-along.
    kpis.append(
        _kpi(
            b,
            "follow_along_3_days",
            "Follow-along: contact within 3 days of a job start",
            "Of the jobs started in the period, those with a contact record from the start "
            "day to 3 days after.",
            [
                _job(v, s.job)
                for v, s in started
                if _has_contact(v, s.start, s.start + dt.timedelta(days=3))
            ],
            [_job(v, s.job) for v, s in started],
        )
    )
    weekly = [
        (v, s)
        for v, s in started
        if s.start + dt.timedelta(days=27) <= min(p.end, on)
        and (s.end is None or s.end >= s.start + dt.timedelta(days=27))
    ]
    kpis.append(
        _kpi(
            b,
            "follow_along_weekly",
            "Follow-along: weekly in the first 4 weeks",
            "Of the jobs started in the period whose first 4 weeks ended by its end (still "
            "held), those with a contact in each of the 4 weeks (7-day blocks from the start).",
            [
                _job(v, s.job)
                for v, s in weekly
                if all(
                    _has_contact(
                        v,
                        s.start + dt.timedelta(days=7 * w),
                        s.start + dt.timedelta(days=7 * w + 6),
                    )
                    for w in range(4)
                )
            ],
            [_job(v, s.job) for v, s in weekly],
        )
    )
    monthly_due: list[str] = []
    monthly_met: list[str] = []
    for v in views:
        for s in v.spells:
            last = min(s.end or p.end, p.end, on, s.start + dt.timedelta(days=364))
            windows = []
            begin = s.start + dt.timedelta(days=28)
            while begin + dt.timedelta(days=29) <= last:
                end = begin + dt.timedelta(days=29)
                if end in p:
                    windows.append((begin, end))
                begin = end + _DAY
            if windows:
                monthly_due.append(_job(v, s.job))
                if all(_has_contact(v, a, z) for a, z in windows):
                    monthly_met.append(_job(v, s.job))
    kpis.append(
        _kpi(
            b,
            "follow_along_monthly",
            "Follow-along: monthly after the first 4 weeks",
            "Of the jobs with a 30-day window (from day 29 of the job, for its first year) "
            "ending in the period, those with a contact in every such window.",
            monthly_met,
            monthly_due,
        )
    )
    placed = [(v, c) for v in views for c in v.contacts if c.on in p and c.location]
    kpis.append(
        _kpi(
            b,
            "community_contact",
            "Community-based contact",
            "Of the contacts in the period whose location was recorded (community, office, "
            "phone, video), those in the community (away from the office).",
            [f"{v.id}#{c.seq}" for v, c in placed if c.location == "community"],
            [f"{v.id}#{c.seq}" for v, c in placed],
        )
    )
    return Report(
        name="fidelity",
        title=f"IPS fidelity evidence from the data, {p.label}",
        period=p,
        on=on,
        kpis=tuple(kpis),
        charts=_charts(views, workflow, p, on),
        notes=(
            f"Evidence as it stands on {on}.",
            "Evidence for the IPS-25 items the data can show, not a fidelity score: the scale "
            "also needs interviews and observation.",
        ),
    )


# --- service standards -------------------------------------------------------------------------


def standards_met(
    views: Sequence[CaseView],
    results: Sequence[StandardResult],
    p: Period,
    on: dt.date,
    workflow: Workflow,
) -> Report:
    """% met per service standard: of the instances (and schedule occurrences) whose deadline
    fell in the period, those met by it. Still due is not counted; paused has no deadline."""
    b = _Basis(p, on, f"{workflow.name}@{workflow.version}", "verified")
    kpis = []
    by_id: dict[str, list[StandardResult]] = defaultdict(list)
    for r in results:
        by_id[r.standard].append(r)
    for spec in workflow.standards:
        counted = [
            r
            for r in by_id.get(spec.id, [])
            if r.due_on is not None and r.due_on in p and r.status in (MET, MISSED, OVERDUE)
        ]
        counted.sort(key=lambda r: (_case_number(r.case_id), r.anchor_on, r.occurrence))

        def item(r: StandardResult, scheduled: bool = bool(spec.schedule)) -> str:
            return f"{r.case_id}#{r.occurrence}" if scheduled else r.case_id

        kpis.append(
            _kpi(
                b,
                spec.id,
                spec.title,
                "Of the instances whose deadline fell in the period (each follow-along "
                "occurrence on its own), those met on time; late, missed and overdue ones "
                "are not met (the stage data's standard, computed from the log).",
                [item(r) for r in counted if r.status == MET],
                [item(r) for r in counted],
            )
        )
    return Report(
        name="standards",
        title=f"Service standards met, {p.label}",
        period=p,
        on=on,
        kpis=tuple(kpis),
        charts=_charts(views, workflow, p, on),
        notes=(f"Evidence as it stands on {on}.",),
    )


# --- SEQF -------------------------------------------------------------------------------------


def sample(case_ids: Sequence[str], n: int, seed: int) -> tuple[str, ...]:
    """`n` of `case_ids` at random, the same for the same seed and ids (whatever their order):
    an assessor's sample can be redrawn from the seed the pack records."""
    import random

    pool = sorted(set(case_ids), key=_case_number)
    picked = random.Random(seed).sample(pool, min(n, len(pool)))
    return tuple(sorted(picked, key=_case_number))


def _case_number(case_id: str) -> tuple[int, str]:
    digits = "".join(ch for ch in case_id if ch.isdigit())
    return (int(digits) if digits else 0, case_id)


def client_rows(
    views: Sequence[CaseView],
    workflow: Workflow,
    on: dt.date,
    *,
    texts: Mapping[int, Mapping[str, str | None]] | None = None,
    shown: bool = True,
    names: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """The SEQF client list: open cases, with their timeline, status and jobs (pseudonymous).

    A job that ended shows why, a free text kept apart from the log: `texts` are the texts of
    the cases' `job_end` records (`LogReads.texts_of`, by seq and slot, None once erased).
    An erased one reads `ERASED`; one the reader may not see (`shown` False) reads
    `WITHHELD`; in any other the participant's own name (`names`, by participant id) is
    replaced by their pseudonymous id, so the pack names nobody it knows of."""
    texts = texts or {}
    names = names or {}
    rows = []
    for v in views:
        if v.closed_on is not None and v.closed_on <= on:
            continue
        c = v.case

        def why(s: Spell, c: Case = c, v: CaseView = v) -> str:
            seq = v.job_ends.get(s.job)
            slots = texts.get(seq, {}) if seq is not None else {}
            if _REASON in slots and slots[_REASON] is None:
                return ERASED
            # From the text table, or kept inline (an event from before texts were apart).
            said = slots.get(_REASON) or s.end_reason
            if not said:
                return ""
            if not shown:
                return WITHHELD
            return _pseudonymous(str(said), names.get(c.participant_id), c.participant_id)

        state = workflow.states.get(c.state)
        rows.append(
            {
                "case_id": c.id,
                "participant": c.participant_id,
                "coach": c.coach,
                "referred_on": v.referred_on.isoformat(),
                "in_work_at_referral": v.in_work_at_referral or "no",
                "stage": state.title if state is not None else c.state,
                "phase": c.phase,
                "status": c.status.value,
                "timeline": "; ".join(f"{d} {s}" for d, s in v.stages),
                "jobs": "; ".join(
                    f"{s.job} {s.employer}"
                    + (f" ({s.role})" if s.role else "")
                    + f" from {s.start}"
                    + (f" to {s.end}" if s.end else "")
                    + f", {s.terms[-1].hours_per_week} h/week at £{s.terms[-1].hourly_pay}"
                    + (f", ended: {why(s)}" if s.end and why(s) else "")
                    for s in v.spells
                ),
                "first_job_start": v.first_start.on.isoformat() if v.first_start else None,
                "sustained_13w_on": v.sustained_on.isoformat() if v.sustained_on else None,
            }
        )
    return rows


_REASON = record_slot("reason")


def _pseudonymous(text: str, name: str | None, pseudonym: str) -> str:
    """`text` with the participant's name (whole, then each part of it of 3 letters or
    more), in any case, replaced by their pseudonymous id."""
    if not name or not name.strip():
        return text
    parts = [name.strip(), *(p for p in name.split() if len(p) >= 3)]
    for part in parts:
        text = re.sub(rf"\b{re.escape(part)}\b", pseudonym, text, flags=re.IGNORECASE)
    return text
