"""Funder definitions (programmes) as data, and the one evaluator of their milestones.

A programme is a TOML table `[programme]` (id, version, title, source, status) and a list of
`[[milestones]]`, each naming one `test` and its parameters. `parse_programme` runs the named
checks and reports every fault at once (`ProgrammeInvalid`, naming file and key).
`evaluate` is pure: a case's employment (spells, work evidence, breaks), its records and a
programme in; milestones out.

Conventions (our choice where the sources are silent):
- a spell covers its start and end dates inclusive; an open spell runs to the evaluation date;
- a work period's hours and pay spread evenly over its days (exact fractions, no rounding);
- a day of a spell with no work evidence and no break is estimated from the contracted hours
  in force that day, spread evenly over the 7 days of the week (pay: those hours at the hourly
  pay); a milestone that counts any estimated day up to `achieved_on` is **provisional**;
- `achieved_on` is the day the threshold is first reached: the Dth covered day, the day the
  hours or earnings reach the threshold, the last day of the Nth qualifying week;
- the projected date is when the threshold would be reached if every open job went on at its
  current terms (the same evaluation, run on that estimate).

Tests (parameters in brackets):
- `events` [count; kinds, contacts, or_kind, or_field]: at least `count` current records of
  `kinds` (or of any contact kind, with `contacts = true`), or one `or_kind` record whose
  `or_field` is true. achieved_on: the date of the count-th record, or of that record.
- `paid_hours` [hours]: per job, hours from the job's start reach `hours`.
- `duration` [days; gap_tolerance_days, gap_counts_toward_duration]: per episode, days
  employed reach `days`. An episode chains spells that overlap or whose gap (days between one
  spell's last day and the next one's start) is at most `gap_tolerance_days`; gap days count
  only with `gap_counts_toward_duration`. Days of overlapping spells count once.
- `qualifying_weeks` [weeks, min_hours, within_weeks]: per job, `weeks` weeks of at least
  `min_hours` hours within some `within_weeks` consecutive weeks; weeks are 7-day blocks from
  the job's start, and only weeks whose last day has passed count.
- `cumulative_earnings` [threshold or threshold_hours; rate_band]: gross pay of every job in
  the window reaches `threshold` (pounds), or `threshold_hours` times the minimum wage for
  `rate_band` (default 21_over) in force on the anchor date.

Every milestone also takes: `anchor` (`job_start`, or `programme_start`: the case's referral
date) and `window_days` (only days from the anchor to anchor + window_days - 1 count);
`job_kinds` (kinds of job that count); `competitive_only` (every terms of the job pay at least
the minimum wage for its age band in force on their date; an apprenticeship at the apprentice
rate); `bands` (by mean weekly hours over the days counted up to achieved_on: `over`,
`at_least`, `under`, `at_most`), `require_band` (not achieved outside every band);
`once_per` (`job`, `case` or `participant`: at most one per job, case or person);
`exclusive_with` (milestones of which at most one is achieved: the earlier wins);
`exclude_in_work_at_referral` (not for a person already in work at referral);
`evidence` (the kinds of work evidence a claim accepts), `claim_within_days`, `notes`.
"""

from __future__ import annotations

import datetime as dt
import math
from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from attrs import evolve, frozen

from ._model import Record
from ._spells import Employment, Spell
from ._workflow import ADULT_BAND, WAGE_BANDS, WageRate
from .errors import Fault, ProgrammeInvalid

if TYPE_CHECKING:
    from ._milestones import Enrolment, Logged

__all__ = [
    "STATUSES",
    "TESTS",
    "Band",
    "CaseFacts",
    "Milestone",
    "MilestoneDef",
    "MilestoneState",
    "Needed",
    "Outcomes",
    "Programme",
    "evaluate",
    "parse_programme",
]

STATUSES = ("verified", "partial", "unverified")
ONCE_PER = ("job", "case", "participant")
ANCHORS = ("job_start", "programme_start")
JOB_KINDS = ("employee", "self_employed", "apprenticeship")
EVIDENCE = ("payslip", "employer_confirmation", "timesheet", "hmrc", "self_report")

# Each test's required and optional parameters, and their types ("int", "num", "bool",
# "str", "list").
TESTS: Mapping[str, tuple[Mapping[str, str], Mapping[str, str]]] = {
    "events": (
        {"count": "int"},
        {"kinds": "list", "contacts": "bool", "or_kind": "str", "or_field": "str"},
    ),
    "paid_hours": ({"hours": "num"}, {}),
    "duration": (
        {"days": "int"},
        {"gap_tolerance_days": "int", "gap_counts_toward_duration": "bool"},
    ),
    "qualifying_weeks": ({"weeks": "int", "min_hours": "num", "within_weeks": "int"}, {}),
    "cumulative_earnings": ({}, {"threshold": "num", "threshold_hours": "num", "rate_band": "str"}),
}
COMMON: Mapping[str, str] = {
    "anchor": "str",
    "window_days": "int",
    "job_kinds": "list",
    "competitive_only": "bool",
    "bands": "table",
    "require_band": "bool",
    "once_per": "str",
    "exclusive_with": "list",
    "exclude_in_work_at_referral": "bool",
    "evidence": "list",
    "claim_within_days": "int",
    "notes": "str",
}
_EDGES = ("over", "at_least", "under", "at_most")


@frozen
class Band:
    """A range of mean weekly hours: above `over` or from `at_least`, below `under` or up to
    `at_most` (each optional)."""

    id: str
    over: Decimal | None = None
    at_least: Decimal | None = None
    under: Decimal | None = None
    at_most: Decimal | None = None

    def contains(self, hours: Fraction) -> bool:
        return not (
            (self.over is not None and hours <= Fraction(self.over))
            or (self.at_least is not None and hours < Fraction(self.at_least))
            or (self.under is not None and hours >= Fraction(self.under))
            or (self.at_most is not None and hours > Fraction(self.at_most))
        )

    def overlaps(self, other: Band) -> bool:
        lo = max(_low(self), _low(other))
        hi = min(_high(self), _high(other))
        if lo[0] < hi[0]:
            return True
        return lo[0] == hi[0] and lo[1] and hi[1]

    def words(self) -> str:
        parts = []
        if self.over is not None:
            parts.append(f"over {self.over}")
        if self.at_least is not None:
            parts.append(f"{self.at_least} or more")
        if self.under is not None:
            parts.append(f"under {self.under}")
        if self.at_most is not None:
            parts.append(f"at most {self.at_most}")
        return " and ".join(parts) + " hours a week"


_INF = Decimal("Infinity")


def _low(b: Band) -> tuple[Decimal, bool]:
    """The lower edge and whether it is included."""
    if b.over is not None:
        return (b.over, False)
    if b.at_least is not None:
        return (b.at_least, True)
    return (-_INF, False)


def _high(b: Band) -> tuple[Decimal, bool]:
    if b.under is not None:
        return (b.under, False)
    if b.at_most is not None:
        return (b.at_most, True)
    return (_INF, False)


@frozen
class MilestoneDef:
    id: str
    title: str
    test: str
    params: Mapping[str, Any]
    anchor: str = "job_start"
    window_days: int | None = None
    job_kinds: tuple[str, ...] = JOB_KINDS
    competitive_only: bool = False
    bands: tuple[Band, ...] = ()
    require_band: bool = False
    once_per: str = "case"
    exclusive_with: tuple[str, ...] = ()
    exclude_in_work_at_referral: bool = False
    evidence: tuple[str, ...] = EVIDENCE
    claim_within_days: int | None = None
    notes: str = ""


@frozen
class Programme:
    """A funder definition, one version of it, from `file`."""

    id: str
    version: str
    title: str
    source: str
    status: str
    milestones: tuple[MilestoneDef, ...]
    file: str = ""
    notes: str = ""

    @property
    def ref(self) -> str:
        return f"{self.id}@{self.version}"

    def milestone(self, mid: str) -> MilestoneDef | None:
        return next((m for m in self.milestones if m.id == mid), None)


# --- parsing and the named checks ----------------------------------------------------------


def _typed(kind: str, value: Any) -> bool:
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 100_000
    if kind == "num":
        return (
            isinstance(value, int | float | str)
            and not isinstance(value, bool)
            and _num(value) is not None
        )
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str) and bool(value.strip())
    if kind == "list":
        return isinstance(value, list) and all(isinstance(v, str) and v for v in value)
    return isinstance(value, dict)


def _num(value: Any) -> Decimal | None:
    try:
        d = Decimal(str(value))
    except ArithmeticError:
        return None
    return d if d.is_finite() and d >= 0 else None


def parse_programme(source: str, data: Mapping[str, Any]) -> Programme:
    """The programme `data` (parsed TOML from `source`) defines; raises `ProgrammeInvalid`
    listing every fault: `programme_described` (id, version, title, source), `status_known`,
    `tests_known`, `params_present`, `params_known`, `params_typed`, `values_known`,
    `band_edges_valid`, `milestones_unique`, `milestones_exist`."""
    faults: list[Fault] = []

    def fault(check: str, key: str, message: str) -> None:
        faults.append(Fault(check, f"{source}: {key}: {message}"))

    head = data.get("programme")
    if not isinstance(head, dict):
        fault("programme_described", "programme", "no [programme] table")
        head = {}
    for key in ("id", "version", "title", "source"):
        if not _typed("str", head.get(key)):
            fault("programme_described", f"programme.{key}", "missing or empty")
    status = head.get("status")
    if status not in STATUSES:
        fault("status_known", "programme.status", f"{status!r} is not one of {', '.join(STATUSES)}")
    milestones: list[MilestoneDef] = []
    raw_list = data.get("milestones")
    if not isinstance(raw_list, list) or not raw_list:
        fault("params_present", "milestones", "no [[milestones]]")
        raw_list = []
    for i, raw in enumerate(raw_list):
        parsed = _parse_milestone(raw, f"milestones[{i}]", fault)
        if parsed is not None:
            milestones.append(parsed)
    ids = [m.id for m in milestones]
    for mid in sorted({m for m in ids if ids.count(m) > 1}):
        fault("milestones_unique", f"milestones.{mid}", "declared more than once")
    for m in milestones:
        for other in m.exclusive_with:
            if other not in ids or other == m.id:
                fault(
                    "milestones_exist",
                    f"milestones.{m.id}.exclusive_with",
                    f"{other!r} is not another milestone of this programme "
                    f"(milestones: {', '.join(ids)})",
                )
    if faults:
        raise ProgrammeInvalid(source, faults)
    return Programme(
        id=str(head["id"]),
        version=str(head["version"]),
        title=str(head["title"]),
        source=str(head["source"]),
        status=str(status),
        milestones=tuple(milestones),
        file=source,
        notes=str(head.get("notes", "")),
    )


def _parse_milestone(
    raw: Any, where: str, fault: Callable[[str, str, str], None]
) -> MilestoneDef | None:
    if not isinstance(raw, dict):
        fault("params_typed", where, "a milestone is a table")
        return None
    mid = raw.get("id")
    if not _typed("str", mid):
        fault("params_present", f"{where}.id", "missing")
        return None
    key = f"milestones.{mid}"
    test = raw.get("test")
    if not isinstance(test, str) or test not in TESTS:
        fault("tests_known", f"{key}.test", f"unknown test {test!r} (tests: {', '.join(TESTS)})")
        return None
    required, optional = TESTS[test]
    bad = False
    for p in required:
        if p not in raw:
            fault("params_present", f"{key}.{p}", f"missing parameter (test {test} needs it)")
            bad = True
    if test == "cumulative_earnings" and ("threshold" in raw) == ("threshold_hours" in raw):
        fault("params_present", f"{key}.threshold", "give one of threshold or threshold_hours")
        bad = True
    if test == "cumulative_earnings" and "window_days" not in raw:
        fault("params_present", f"{key}.window_days", "missing parameter (earnings need a window)")
        bad = True
    allowed = {**required, **optional, **COMMON, "id": "str", "title": "str", "test": "str"}
    for p, value in raw.items():
        if p not in allowed:
            fault(
                "params_known",
                f"{key}.{p}",
                f"unknown parameter (test {test} takes: {', '.join(sorted(allowed))})",
            )
            bad = True
        elif not _typed(allowed[p], value):
            fault("params_typed", f"{key}.{p}", f"{value!r} is not a valid {allowed[p]}")
            bad = True
    named: tuple[tuple[str, tuple[str, ...]], ...] = (
        ("anchor", ANCHORS),
        ("once_per", ONCE_PER),
        ("rate_band", WAGE_BANDS),
    )
    for p, choices in named:
        if p in raw and raw[p] not in choices:
            fault("values_known", f"{key}.{p}", f"{raw[p]!r} is not one of {', '.join(choices)}")
            bad = True
    listed: tuple[tuple[str, tuple[str, ...]], ...] = (
        ("job_kinds", JOB_KINDS),
        ("evidence", EVIDENCE),
    )
    for p, choices in listed:
        for v in raw.get(p) or []:
            if v not in choices:
                fault("values_known", f"{key}.{p}", f"{v!r} is not one of {', '.join(choices)}")
                bad = True
    bands = _parse_bands(raw.get("bands"), key, fault)
    if bands is None or bad:
        return None
    params = {p: raw[p] for p in {**required, **optional} if p in raw}
    return MilestoneDef(
        id=str(mid),
        title=str(raw.get("title", mid)),
        test=str(test),
        params=params,
        anchor=str(raw.get("anchor", "job_start")),
        window_days=raw.get("window_days"),
        job_kinds=tuple(raw.get("job_kinds") or JOB_KINDS),
        competitive_only=bool(raw.get("competitive_only", False)),
        bands=bands,
        require_band=bool(raw.get("require_band", False)),
        once_per=str(raw.get("once_per", "case")),
        exclusive_with=tuple(raw.get("exclusive_with") or ()),
        exclude_in_work_at_referral=bool(raw.get("exclude_in_work_at_referral", False)),
        evidence=tuple(raw.get("evidence") or EVIDENCE),
        claim_within_days=raw.get("claim_within_days"),
        notes=str(raw.get("notes", "")),
    )


def _parse_bands(
    raw: Any, key: str, fault: Callable[[str, str, str], None]
) -> tuple[Band, ...] | None:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        return None
    bands: list[Band] = []
    ok = True
    for bid, edges in raw.items():
        where = f"{key}.bands.{bid}"
        if not isinstance(edges, dict) or not edges:
            fault("band_edges_valid", where, "a band is a table of edges (over, at_least, ...)")
            ok = False
            continue
        values: dict[str, Decimal] = {}
        for edge, value in edges.items():
            num = _num(value) if not isinstance(value, bool) else None
            if edge not in _EDGES or num is None:
                fault("band_edges_valid", f"{where}.{edge}", f"not an edge ({', '.join(_EDGES)})")
                ok = False
            else:
                values[edge] = num
        if ("over" in values and "at_least" in values) or (
            "under" in values and "at_most" in values
        ):
            fault("band_edges_valid", where, "give one lower and one upper edge at most")
            ok = False
            continue
        band = Band(id=str(bid), **values)
        lo, hi = _low(band), _high(band)
        if lo[0] > hi[0] or (lo[0] == hi[0] and not (lo[1] and hi[1])):
            fault("band_edges_valid", where, "its lower edge is not below its upper edge")
            ok = False
        for other in bands:
            if band.overlaps(other):
                fault("band_edges_valid", where, f"overlaps band {other.id!r}")
                ok = False
        bands.append(band)
    return tuple(bands) if ok else None


# --- the evaluator -------------------------------------------------------------------------


class MilestoneState(StrEnum):
    ACHIEVED = "achieved"
    """Reached on evidence of work."""
    PROVISIONAL = "provisional"
    """Reached, but counting days estimated from contracted hours."""
    NOT_YET = "not_yet"
    EXCLUDED = "excluded"
    """Cannot count: another milestone, job or case counted instead, or the job or person
    does not qualify (`reason` says which)."""


@frozen
class Needed:
    """What is still needed to reach a milestone."""

    days: int | None = None
    hours: Decimal | None = None
    earnings: Decimal | None = None
    weeks: int | None = None
    records: int | None = None

    def words(self) -> str:
        parts = []
        if self.days:
            parts.append(f"{self.days} more day{'s' if self.days != 1 else ''}")
        if self.weeks:
            parts.append(f"{self.weeks} more qualifying week{'s' if self.weeks != 1 else ''}")
        if self.hours:
            parts.append(f"{self.hours} more hours")
        if self.earnings:
            parts.append(f"£{self.earnings:,} more earnings")
        if self.records:
            parts.append(f"{self.records} more record{'s' if self.records != 1 else ''}")
        return ", ".join(parts)


@frozen
class Milestone:
    """One milestone of a case. `jobs` are the jobs it counts; `evidence` the records (seqs)
    it rests on; `reason` says in plain words why it stands as it does."""

    id: str
    title: str
    state: MilestoneState
    reason: str
    achieved_on: dt.date | None = None
    band: str | None = None
    jobs: tuple[str, ...] = ()
    needed: Needed | None = None
    projected_on: dt.date | None = None
    evidence: tuple[int, ...] = ()
    mean_weekly_hours: Decimal | None = None

    @property
    def reached(self) -> bool:
        return self.state in (MilestoneState.ACHIEVED, MilestoneState.PROVISIONAL)


@frozen
class Outcomes:
    """A case's milestones under its programme, as the evidence stands on `on`. `programme`
    is None when the case is on none (`note` says so)."""

    case_id: str
    on: dt.date
    programme: Programme | None
    spells: tuple[Spell, ...]
    milestones: tuple[Milestone, ...]
    note: str = ""
    enrolment: Enrolment | None = None
    """The case's enrolment (programme, version, since when, by whom)."""
    logged: tuple[Logged, ...] = ()
    """The milestones its log holds as reached (with claims, and flags to resolve)."""


@frozen
class CaseFacts:
    """What the evaluator reads of a case. `records` are its current records (for `events`);
    `programme_start` its referral (or enrolment) date; `wages` the minimum-wage table;
    `contact_kinds` the record kinds that count as contact."""

    employment: Employment
    programme_start: dt.date
    wages: tuple[WageRate, ...] = ()
    records: tuple[Record, ...] = ()
    contact_kinds: frozenset[str] = frozenset()
    in_work_at_referral: str | None = None


def _rate(wages: Sequence[WageRate], day: dt.date, band: str) -> WageRate | None:
    found = [w for w in wages if w.band == band and w.effective_from <= day]
    return max(found, key=lambda w: w.effective_from) if found else None


# A run of days alike: day offsets `first` to `end - 1` from a job's start, each with these
# hours and pay, resting on an estimate (True) or on work evidence or a break (False).
_Run = tuple[int, int, Fraction, Fraction, bool]


@frozen
class _Days:
    """A job's days from its start (offsets 0 to `n - 1`) as runs of days alike (`_Run`),
    in order and without a gap: hours and pay change only where a work period, a break or
    terms start or end, so sums over days are sums over runs, exact, not day by day."""

    start: dt.date
    n: int
    runs: tuple[_Run, ...]
    evidence: tuple[int, ...]
    firsts: tuple[int, ...]
    """Each run's first offset (to find a day's run by bisection)."""
    before: tuple[Fraction, ...]
    """The hours of the days before each run."""

    def index(self, day: dt.date) -> int:
        return (day - self.start).days

    def _upto(self, i: int) -> Fraction:
        """Hours on offsets below `i` (0 <= i <= n)."""
        k = bisect_right(self.firsts, i) - 1
        if k < 0:
            return Fraction(0)
        first, _end, hours, _pay, _est = self.runs[k]
        return self.before[k] + hours * (i - first) if hours else self.before[k]

    def hours_in(self, first: int, last: int) -> Fraction:
        """Hours on offsets `first` to `last` inclusive (days outside the job's have none)."""
        lo, hi = max(first, 0), min(last, self.n - 1) + 1
        if lo >= hi:
            return Fraction(0)
        return self._upto(hi) - self._upto(lo)

    def estimated_in(self, first: int, last: int) -> bool:
        """Whether any day on offsets `first` to `last` inclusive rests on an estimate."""
        lo, hi = max(first, 0), min(last, self.n - 1)
        if lo > hi:
            return False
        for k in range(max(bisect_right(self.firsts, lo) - 1, 0), len(self.runs)):
            run_first, _end, _hours, _pay, est = self.runs[k]
            if run_first > hi:
                return False
            if est:
                return True
        return False


def _days(spell: Spell, employment: Employment, on: dt.date) -> _Days:
    work = [w for w in employment.work if w.job == spell.job and w.start <= on]
    last = spell.last_day(on)
    for w in work:
        last = max(last, min(w.end, on))
    n = max((last - spell.start).days + 1, 0)
    periods: list[tuple[int, int, Fraction, Fraction]] = []
    # Periods alike (a timesheet a week) share their rates: Fractions are costly to make.
    rates: dict[tuple[Decimal, Decimal, int], tuple[Fraction, Fraction]] = {}
    for w in work:
        key = (w.hours, w.gross_pay, w.days)
        if key not in rates:
            rates[key] = (Fraction(w.hours) / w.days, Fraction(w.gross_pay) / w.days)
        h, p = rates[key]
        first, end = max((w.start - spell.start).days, 0), min((w.end - spell.start).days, n - 1)
        if first <= end:
            periods.append((first, end + 1, h, p))
    breaks = [b for b in employment.breaks if b.job in (None, spell.job)]
    spell_days = min(max((spell.last_day(on) - spell.start).days + 1, 0), n)
    # Hours and pay can change only at these offsets: between two, every day is alike.
    cuts = {0, n, spell_days}
    for first, end, _h, _p in periods:
        cuts.update((first, end))
    for b in breaks:
        cuts.add((b.start - spell.start).days)
        if b.end is not None:
            cuts.add((b.end - spell.start).days + 1)
    cuts.update((t.from_date - spell.start).days for t in spell.terms)
    bounds = sorted(c for c in cuts if 0 <= c <= n)
    by_first = sorted(range(len(periods)), key=lambda k: periods[k][0])
    by_end = sorted(range(len(periods)), key=lambda k: periods[k][1])
    opened = closed = 0
    active: dict[int, tuple[Fraction, Fraction]] = {}
    # Each terms' daily hours and pay, worked out once.
    daily: dict[int, tuple[Fraction, Fraction]] = {}
    runs: list[_Run] = []
    zero = Fraction(0)
    for first, end in pairwise(bounds):
        while opened < len(by_first) and periods[by_first[opened]][0] <= first:
            k = by_first[opened]
            active[k] = (periods[k][2], periods[k][3])
            opened += 1
        while closed < len(by_end) and periods[by_end[closed]][1] <= first:
            del active[by_end[closed]]
            closed += 1
        est = False
        if active:
            on_day = list(active.values())
            hours, pay = on_day[0]
            for h, p in on_day[1:]:
                hours, pay = hours + h, pay + p
        else:
            hours = pay = zero
            day = spell.start + dt.timedelta(days=first)
            if first < spell_days and not (
                breaks and any(b.start <= day and (b.end is None or day <= b.end) for b in breaks)
            ):
                terms = spell.terms_on(day)
                rate = daily.get(terms.seq)
                if rate is None:
                    per_day = Fraction(terms.hours_per_week) / 7
                    rate = daily[terms.seq] = (per_day, per_day * Fraction(terms.hourly_pay))
                hours, pay = rate
                est = True
        if runs and runs[-1][2:] == (hours, pay, est):
            runs[-1] = (runs[-1][0], end, hours, pay, est)
        else:
            runs.append((first, end, hours, pay, est))
    before: list[Fraction] = []
    total = zero
    for first, end, hours, _pay, _est in runs:
        before.append(total)
        if hours:
            total += hours * (end - first)
    return _Days(
        start=spell.start,
        n=n,
        runs=tuple(runs),
        evidence=tuple(sorted(w.seq for w in work)),
        firsts=tuple(r[0] for r in runs),
        before=tuple(before),
    )


def _money(value: Fraction) -> Decimal:
    return (Decimal(value.numerator) / Decimal(value.denominator)).quantize(Decimal("0.01"))


def _hours(value: Fraction) -> Decimal:
    return (Decimal(value.numerator) / Decimal(value.denominator)).quantize(Decimal("0.1"))


@frozen
class _Result:
    """One instance's outcome, before once_per and exclusive_with are applied."""

    achieved_on: dt.date | None
    provisional: bool
    jobs: tuple[str, ...]
    needed: Needed | None
    evidence: tuple[int, ...]
    mean: Fraction | None = None
    excluded: str | None = None
    first_day: dt.date | None = None


def _window(m: MilestoneDef, anchor: dt.date) -> tuple[dt.date, dt.date]:
    if m.window_days is None:
        return anchor, dt.date.max
    return anchor, anchor + dt.timedelta(days=max(m.window_days - 1, 0))


def _not_competitive(m: MilestoneDef, spell: Spell, wages: Sequence[WageRate]) -> str | None:
    if not m.competitive_only:
        return None
    band = "apprentice" if spell.kind == "apprenticeship" else (spell.age_band or ADULT_BAND)
    for t in spell.terms:
        rate = _rate(wages, t.from_date, band)
        if rate is None:
            return f"no minimum wage rate in force on {t.from_date} to check job {spell.job}"
        if t.hourly_pay < rate.hourly:
            return (
                f"job {spell.job} pays {t.hourly_pay}/hour from {t.from_date}, below the "
                f"minimum wage of {rate.hourly}"
            )
    return None


def _mean(days: Sequence[_Days], first: dt.date, last: dt.date) -> Fraction | None:
    if last < first:
        return None
    total = sum((d.hours_in(d.index(first), d.index(last)) for d in days), Fraction(0))
    return total * 7 / ((last - first).days + 1)


def _estimated(days: Sequence[_Days], first: dt.date, last: dt.date) -> bool:
    return any(d.estimated_in(d.index(first), d.index(last)) for d in days)


def _reach(total: Fraction, target: Fraction, per_day: Fraction, count: int) -> int | None:
    """The first of `count` days, each adding `per_day` to `total`, on which the sum reaches
    `target` (1 for the first day), or None."""
    need = target - total
    if per_day >= need:
        return 1
    if per_day <= 0 or per_day * count < need:
        return None
    return math.ceil(need / per_day)


def _paid_hours(m: MilestoneDef, spell: Spell, d: _Days, lo: dt.date, hi: dt.date) -> _Result:
    target = Fraction(_num(m.params["hours"]) or 0)
    total = Fraction(0)
    lo_i, hi_i = d.index(lo), d.index(hi)
    for first, end, hours, _pay, _est in d.runs:
        first, end = max(first, lo_i), min(end, hi_i + 1)
        if first >= end:
            continue
        j = _reach(total, target, hours, end - first)
        if j is not None:
            day = d.start + dt.timedelta(days=first + j - 1)
            return _Result(day, _estimated([d], d.start, day), (spell.job,), None, d.evidence)
        total += hours * (end - first)
    return _Result(None, False, (spell.job,), Needed(hours=_hours(target - total)), d.evidence)


def _qualifying_weeks(
    m: MilestoneDef, spell: Spell, d: _Days, on: dt.date, lo: dt.date, hi: dt.date
) -> _Result:
    need, within = int(m.params["weeks"]), int(m.params["within_weeks"])
    floor = Fraction(_num(m.params["min_hours"]) or 0)
    lo_i = d.index(lo)
    flags: list[bool] = []
    best = 0
    count = 0
    week = 0
    while True:
        first = d.start + dt.timedelta(days=7 * week)
        last = first + dt.timedelta(days=6)
        if last > on or last > hi:
            break
        if 7 * week >= d.n and floor > 0:
            # Past the job's last day no week has hours: none qualifies, and each window
            # holds fewer qualifying weeks than the one before.
            break
        flag = d.hours_in(max(7 * week, lo_i), 7 * week + 6) >= floor
        flags.append(flag)
        count += flag
        # As `sum(flags[-within:])`, which for `within = 0` is every week so far.
        if 0 < within < len(flags):
            count -= flags[-within - 1]
        best = max(best, count)
        if flag and count >= need:
            return _Result(last, _estimated([d], d.start, last), (spell.job,), None, d.evidence)
        week += 1
    return _Result(None, False, (spell.job,), Needed(weeks=need - best), d.evidence)


def _episodes(spells: Sequence[Spell], on: dt.date, tolerance: int) -> list[list[Spell]]:
    chains: list[list[Spell]] = []
    last: dt.date | None = None
    for s in sorted(spells, key=lambda s: (s.start, s.job)):
        if s.start > on:
            continue
        if chains and last is not None and (s.start - last).days - 1 <= tolerance:
            chains[-1].append(s)
        else:
            chains.append([s])
            last = None
        end = s.last_day(on)
        last = end if last is None else max(last, end)
    return chains


def _duration(
    m: MilestoneDef,
    chain: Sequence[Spell],
    days: Mapping[str, _Days],
    on: dt.date,
    lo: dt.date,
    hi: dt.date,
) -> _Result:
    target = int(m.params["days"])
    gaps_count = bool(m.params.get("gap_counts_toward_duration", False))
    # The days the spells cover, as ordinal ranges (inclusive) that neither overlap nor touch.
    covered: list[tuple[int, int]] = []
    for a, b in sorted(
        (max(s.start, lo).toordinal(), min(s.last_day(on), hi).toordinal()) for s in chain
    ):
        if a > b:
            continue
        if covered and a <= covered[-1][1] + 1:
            covered[-1] = (covered[-1][0], max(covered[-1][1], b))
        else:
            covered.append((a, b))
    jobs = tuple(s.job for s in chain)
    used = [days[j] for j in jobs]
    evidence = tuple(sorted({e for d in used for e in d.evidence}))
    if not covered:
        return _Result(None, False, jobs, Needed(days=target), evidence)
    first, last = covered[0][0], covered[-1][1]
    counted = [(first, last)] if gaps_count else covered
    n = 0
    for a, b in counted:
        if n + (b - a + 1) >= target:
            day = a + max(target - n, 1) - 1
            when = dt.date.fromordinal(day)
            return _Result(
                when,
                _estimated(used, dt.date.fromordinal(first), when),
                jobs,
                None,
                evidence,
                mean=_mean_counted(used, counted, day, gaps_count),
                first_day=dt.date.fromordinal(first),
            )
        n += b - a + 1
    return _Result(
        None,
        False,
        jobs,
        Needed(days=target - n),
        evidence,
        mean=_mean_counted(used, counted, last, gaps_count),
        first_day=dt.date.fromordinal(first),
    )


def _mean_counted(
    days: Sequence[_Days], counted: Sequence[tuple[int, int]], last: int, gaps_count: bool
) -> Fraction | None:
    """Mean weekly hours over the days a duration counted (ordinal ranges, inclusive) up to
    ordinal `last`: a bridged gap that does not count toward the duration does not dilute
    the band either."""
    if gaps_count:
        first = counted[0][0] if counted else last
        return _mean(days, dt.date.fromordinal(first), dt.date.fromordinal(last))
    ranges = [(a, min(b, last)) for a, b in counted if a <= last]
    if not ranges:
        return None
    total = Fraction(0)
    for d in days:
        base = d.start.toordinal()
        for a, b in ranges:
            total += d.hours_in(a - base, b - base)
    return total * 7 / sum(b - a + 1 for a, b in ranges)


def _earnings(
    m: MilestoneDef,
    facts: CaseFacts,
    spells: Sequence[Spell],
    days: Mapping[str, _Days],
    lo: dt.date,
    hi: dt.date,
) -> _Result:
    if "threshold" in m.params:
        target = Fraction(_num(m.params["threshold"]) or 0)
    else:
        band = str(m.params.get("rate_band", ADULT_BAND))
        rate = _rate(facts.wages, lo, band)
        if rate is None:
            return _Result(None, False, (), None, (), excluded=f"no {band} minimum wage on {lo}")
        target = Fraction(_num(m.params["threshold_hours"]) or 0) * Fraction(rate.hourly)
    jobs = tuple(s.job for s in spells)
    used = [days[j] for j in jobs]
    evidence = tuple(sorted({e for d in used for e in d.evidence}))
    lo_n, hi_n = lo.toordinal(), hi.toordinal() + 1
    # Between two of these ordinals every job's pay a day is alike.
    cuts = {lo_n, hi_n}
    for d in used:
        base = d.start.toordinal()
        cuts.update(base + first for first in d.firsts)
        cuts.add(base + d.n)
    bounds = sorted(c for c in cuts if lo_n <= c <= hi_n)
    total = Fraction(0)
    for first, end in pairwise(bounds):
        paid: list[Fraction] = []
        for d in used:
            i = first - d.start.toordinal()
            if 0 <= i < d.n:
                paid.append(d.runs[bisect_right(d.firsts, i) - 1][3])
        if not paid:
            continue
        per_day = sum(paid[1:], paid[0])
        j = _reach(total, target, per_day, end - first)
        if j is not None:
            when = dt.date.fromordinal(first + j - 1)
            return _Result(when, _estimated(used, lo, when), jobs, None, evidence)
        total += per_day * (end - first)
    return _Result(None, False, jobs, Needed(earnings=_money(target - total)), evidence)


def _events(m: MilestoneDef, facts: CaseFacts, hi: dt.date) -> _Result:
    kinds = set(m.params.get("kinds") or ())
    if m.params.get("contacts"):
        kinds |= facts.contact_kinds
    target = int(m.params["count"])
    dates = sorted(
        (r.effective_at.date(), r.seq)
        for r in facts.records
        if r.kind in kinds and r.effective_at.date() <= hi
    )
    when = dates[target - 1] if len(dates) >= target else None
    or_kind, or_field = m.params.get("or_kind"), m.params.get("or_field")
    if or_kind:
        alt = sorted(
            (r.effective_at.date(), r.seq)
            for r in facts.records
            if r.kind == or_kind
            and (not or_field or r.get(or_field) is True)
            and r.effective_at.date() <= hi
        )
        if alt and (when is None or alt[0] < when):
            when = alt[0]
    if when is not None:
        seqs = tuple(s for d, s in dates[:target]) if when in dates else (when[1],)
        return _Result(when[0], False, (), None, seqs)
    return _Result(None, False, (), Needed(records=target - len(dates)), tuple(s for _, s in dates))


def _instances(
    m: MilestoneDef,
    facts: CaseFacts,
    on: dt.date,
    horizon: dt.date | None = None,
    memo: dict[tuple[str, dt.date], _Days] | None = None,
) -> list[_Result]:
    """Each instance of `m` (a job, an episode, or the case) as seen on `on`; with `horizon`,
    as it would stand then if every open job went on at its current terms. `memo` keeps each
    job's days for the milestones of one evaluation (they read the same days)."""
    until = horizon or on
    memo = {} if memo is None else memo
    spells_all = sorted(
        (s for s in facts.employment.spells if s.start <= until), key=lambda s: (s.start, s.job)
    )
    if m.test == "events":
        return [_events(m, facts, until)]
    excluded: dict[str, str] = {}
    spells: list[Spell] = []
    for s in spells_all:
        if s.kind not in m.job_kinds:
            excluded[s.job] = f"job {s.job} is {s.kind.replace('_', ' ')}, which does not count"
            continue
        why = _not_competitive(m, s, facts.wages)
        if why:
            excluded[s.job] = why
            continue
        spells.append(s)
    days: dict[str, _Days] = {}
    for s in spells:
        key = (s.job, until)
        if key not in memo:
            memo[key] = _days(s, facts.employment, until)
        days[s.job] = memo[key]
    out: list[_Result] = [
        _Result(None, False, (job,), None, (), excluded=why) for job, why in excluded.items()
    ]
    if m.test == "cumulative_earnings":
        lo, hi = _window(m, facts.programme_start)
        return [*out, _earnings(m, facts, spells, days, lo, hi)]
    if m.test == "duration":
        tolerance = int(m.params.get("gap_tolerance_days", 0))
        for chain in _episodes(spells, until, tolerance):
            anchor = facts.programme_start if m.anchor == "programme_start" else chain[0].start
            lo, hi = _window(m, anchor)
            out.append(_duration(m, chain, days, until, lo, hi))
        return out
    for s in spells:
        anchor = facts.programme_start if m.anchor == "programme_start" else s.start
        lo, hi = _window(m, anchor)
        if m.test == "paid_hours":
            out.append(_paid_hours(m, s, days[s.job], lo, hi))
        else:
            result = _qualifying_weeks(m, s, days[s.job], until, lo, hi)
            if result.achieved_on is not None:
                result = evolve(result, mean=_mean([days[s.job]], s.start, result.achieved_on))
            out.append(result)
    return out


def _band(m: MilestoneDef, mean: Fraction | None) -> Band | None:
    if mean is None:
        return None
    return next((b for b in m.bands if b.contains(mean)), None)


def _milestone(m: MilestoneDef, r: _Result, projected: dt.date | None) -> Milestone:
    band = _band(m, r.mean)
    mean = _hours(r.mean) if r.mean is not None else None
    base = Milestone(
        id=m.id,
        title=m.title,
        state=MilestoneState.NOT_YET,
        reason="",
        jobs=r.jobs,
        evidence=r.evidence,
        mean_weekly_hours=mean,
        band=band.id if band else None,
    )
    if r.excluded:
        return evolve(base, state=MilestoneState.EXCLUDED, reason=r.excluded)
    if r.achieved_on is not None and m.require_band and band is None and m.bands:
        words = " or ".join(b.words() for b in m.bands)
        return evolve(
            base,
            reason=f"reached on {r.achieved_on} at a mean of {mean} hours a week; needs {words}",
        )
    if r.achieved_on is not None:
        state = MilestoneState.PROVISIONAL if r.provisional else MilestoneState.ACHIEVED
        why = (
            "estimated from contracted hours: work evidence is missing for some days"
            if r.provisional
            else "on work evidence"
        )
        return evolve(
            base,
            state=state,
            reason=f"reached on {r.achieved_on}, {why}",
            achieved_on=r.achieved_on,
        )
    needed = r.needed.words() if r.needed else ""
    when = f"; at the current hours, reached on {projected}" if projected else ""
    return evolve(
        base, reason=f"{needed or 'not reached'}{when}", needed=r.needed, projected_on=projected
    )


# How far ahead a projection looks: past it, "not at the current hours".
PROJECTION_DAYS = 3 * 366


def evaluate(
    programme: Programme,
    facts: CaseFacts,
    on: dt.date,
    *,
    prior: Mapping[str, str] | None = None,
    project: bool = True,
) -> tuple[Milestone, ...]:
    """Every milestone of `programme` for one case as the evidence stands on `on`, in the
    definition's order (a milestone counted per job or episode: one per job or episode).
    `prior` maps a milestone id to the case that already counted it for this participant
    (for `once_per = "participant"`). `project=False` skips the projected dates of milestones
    not yet reached (what the write path and `verify` need is only what is reached). Pure:
    the same facts give the same milestones."""
    out: list[Milestone] = []
    memo: dict[tuple[str, dt.date], _Days] = {}
    for m in programme.milestones:
        if m.exclude_in_work_at_referral and facts.in_work_at_referral in ("retention", "new_job"):
            out.append(
                Milestone(
                    id=m.id,
                    title=m.title,
                    state=MilestoneState.EXCLUDED,
                    reason=f"already in work at referral ({facts.in_work_at_referral})",
                )
            )
            continue
        if m.once_per == "participant" and prior and m.id in prior:
            out.append(
                Milestone(
                    id=m.id,
                    title=m.title,
                    state=MilestoneState.EXCLUDED,
                    reason=f"already counted for this participant on case {prior[m.id]}",
                )
            )
            continue
        now = _instances(m, facts, on, memo=memo)
        ahead: list[_Result] | None = None
        made: list[Milestone] = []
        for i, r in enumerate(now):
            projected = None
            if project and r.achieved_on is None and not r.excluded:
                if ahead is None:
                    ahead = _instances(m, facts, on, on + dt.timedelta(days=PROJECTION_DAYS), memo)
                projected = _projection(r, ahead, i)
            made.append(_milestone(m, r, projected))
        if all(x.state is MilestoneState.EXCLUDED for x in made):
            made.insert(
                0,
                Milestone(
                    id=m.id,
                    title=m.title,
                    state=MilestoneState.NOT_YET,
                    reason="no job that counts yet" if m.test != "events" else "no records yet",
                ),
            )
        if m.once_per != "job":
            made = _once(made)
        out.extend(made)
    return tuple(_exclusive(programme, out))


def _projection(r: _Result, ahead: Sequence[_Result], i: int) -> dt.date | None:
    """The date the same instance reaches its threshold ahead (matched by its jobs)."""
    for a in ahead:
        if a.achieved_on is not None and r.jobs and set(r.jobs) <= set(a.jobs):
            return a.achieved_on
    if not r.jobs and i < len(ahead) and ahead[i].achieved_on is not None:
        return ahead[i].achieved_on
    return None


def _once(made: list[Milestone]) -> list[Milestone]:
    """At most one of a milestone per case: the earliest reached, else the one nearest."""
    if len(made) <= 1:
        return made
    reached = sorted((m for m in made if m.reached), key=lambda m: m.achieved_on or dt.date.max)
    if reached:
        return [reached[0]]
    open_ = [m for m in made if m.state is MilestoneState.NOT_YET]
    if open_:
        return [min(open_, key=lambda m: (m.projected_on is None, m.projected_on or dt.date.max))]
    return made[-1:]


def _exclusive(programme: Programme, out: list[Milestone]) -> list[Milestone]:
    """Of milestones exclusive with each other, only the earliest reached stands."""
    result = list(out)
    for i, m in enumerate(result):
        if not m.reached:
            continue
        spec = programme.milestone(m.id)
        assert spec is not None
        for j, other in enumerate(result):
            if j == i or not other.reached:
                continue
            other_spec = programme.milestone(other.id)
            assert other_spec is not None
            if other.id not in spec.exclusive_with and m.id not in other_spec.exclusive_with:
                continue
            mine = (m.achieved_on or dt.date.max, i)
            theirs = (other.achieved_on or dt.date.max, j)
            if theirs < mine:
                result[i] = evolve(
                    m,
                    state=MilestoneState.EXCLUDED,
                    reason=f"{other.id} was reached first ({other.achieved_on}); only one counts",
                )
                break
    return result
