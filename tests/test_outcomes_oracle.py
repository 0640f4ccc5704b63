"""The outcome evaluator against its oracle: the day-by-day evaluator it replaced.

`evaluate` sums a job's hours and pay over runs of days alike (issue 14: it was most of a
report's time). The oracle below is the evaluator as it was before, copied unchanged except
for its names (`oracle_*`): each job's hours and pay a day, in exact fractions, stepped through
day by day. On random employment histories (overlapping jobs, terms changing before and after
a start, work periods overlapping each other and running past a job's end, breaks of one job
or of all) and random definitions of every test that reads spells, both give equal
milestones, field by field, and equal results before rounding (the exact mean hours)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from fractions import Fraction
from typing import Any

from attrs import evolve, frozen
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from se_flow._loader import load_programmes, load_workflow
from se_flow._outcomes import (
    PROJECTION_DAYS,
    TESTS,
    CaseFacts,
    Milestone,
    MilestoneDef,
    MilestoneState,
    Needed,
    Programme,
    _episodes,
    _events,
    _exclusive,
    _hours,
    _instances,
    _milestone,
    _money,
    _not_competitive,
    _num,
    _once,
    _projection,
    _rate,
    _Result,
    _window,
    evaluate,
    parse_programme,
)
from se_flow._spells import Break, Employment, Spell, Terms, WorkPeriod
from se_flow._workflow import ADULT_BAND

# --- the oracle: the evaluator before issue 14, day by day -------------------------------


@frozen
class _OracleDays:
    """A job's days from its start: hours and pay each day, and whether each rests on an
    estimate (True), on work evidence or a break (False)."""

    start: dt.date
    hours: tuple[Fraction, ...]
    pay: tuple[Fraction, ...]
    estimated: tuple[bool, ...]
    evidence: tuple[int, ...]

    def index(self, day: dt.date) -> int:
        return (day - self.start).days


def _oracle_days(spell: Spell, employment: Employment, on: dt.date) -> _OracleDays:
    work = [w for w in employment.work if w.job == spell.job and w.start <= on]
    last = spell.last_day(on)
    for w in work:
        last = max(last, min(w.end, on))
    n = max((last - spell.start).days + 1, 0)
    hours = [Fraction(0)] * n
    pay = [Fraction(0)] * n
    covered = [False] * n
    for w in work:
        h, p = Fraction(w.hours) / w.days, Fraction(w.gross_pay) / w.days
        for i in range(
            max((w.start - spell.start).days, 0), min((w.end - spell.start).days, n - 1) + 1
        ):
            # Fractions are costly to add: the first period on a day is taken as it is.
            if covered[i]:
                hours[i] += h
                pay[i] += p
            else:
                hours[i], pay[i], covered[i] = h, p, True
    breaks = [b for b in employment.breaks if b.job in (None, spell.job)]
    estimated = [False] * n
    spell_days = (spell.last_day(on) - spell.start).days + 1
    # Each terms' daily hours and pay, worked out once, not per day.
    daily: dict[int, tuple[Fraction, Fraction]] = {}
    for i in range(min(spell_days, n)):
        if covered[i]:
            continue
        day = spell.start + dt.timedelta(days=i)
        if breaks and any(b.start <= day and (b.end is None or day <= b.end) for b in breaks):
            covered[i] = True
            continue
        terms = spell.terms_on(day)
        rate = daily.get(terms.seq)
        if rate is None:
            per_day = Fraction(terms.hours_per_week) / 7
            rate = daily[terms.seq] = (per_day, per_day * Fraction(terms.hourly_pay))
        hours[i], pay[i] = rate
        estimated[i] = True
    return _OracleDays(
        start=spell.start,
        hours=tuple(hours),
        pay=tuple(pay),
        estimated=tuple(estimated),
        evidence=tuple(sorted(w.seq for w in work)),
    )


def _oracle_mean(days: Sequence[_OracleDays], first: dt.date, last: dt.date) -> Fraction | None:
    if last < first:
        return None
    total = Fraction(0)
    for d in days:
        for i in range(max(d.index(first), 0), min(d.index(last), len(d.hours) - 1) + 1):
            total += d.hours[i]
    return total * 7 / ((last - first).days + 1)


def _oracle_estimated(days: Sequence[_OracleDays], first: dt.date, last: dt.date) -> bool:
    return any(
        d.estimated[i]
        for d in days
        for i in range(max(d.index(first), 0), min(d.index(last), len(d.hours) - 1) + 1)
    )


def _oracle_paid_hours(
    m: MilestoneDef, spell: Spell, d: _OracleDays, lo: dt.date, hi: dt.date
) -> _Result:
    target = Fraction(_num(m.params["hours"]) or 0)
    total = Fraction(0)
    for i, h in enumerate(d.hours):
        day = d.start + dt.timedelta(days=i)
        if day < lo or day > hi:
            continue
        total += h
        if total >= target:
            return _Result(
                day, _oracle_estimated([d], d.start, day), (spell.job,), None, d.evidence
            )
    return _Result(None, False, (spell.job,), Needed(hours=_hours(target - total)), d.evidence)


def _oracle_qualifying_weeks(
    m: MilestoneDef, spell: Spell, d: _OracleDays, on: dt.date, lo: dt.date, hi: dt.date
) -> _Result:
    need, within = int(m.params["weeks"]), int(m.params["within_weeks"])
    floor = Fraction(_num(m.params["min_hours"]) or 0)
    flags: list[bool] = []
    best = 0
    week = 0
    while True:
        first = d.start + dt.timedelta(days=7 * week)
        last = first + dt.timedelta(days=6)
        if last > on or last > hi:
            break
        hours = sum(
            (
                d.hours[i]
                for i in range(7 * week, min(7 * week + 7, len(d.hours)))
                if d.start + dt.timedelta(days=i) >= lo
            ),
            Fraction(0),
        )
        flags.append(hours >= floor)
        count = sum(flags[-within:])
        best = max(best, count)
        if flags[-1] and count >= need:
            return _Result(
                last, _oracle_estimated([d], d.start, last), (spell.job,), None, d.evidence
            )
        week += 1
    return _Result(None, False, (spell.job,), Needed(weeks=need - best), d.evidence)


def _oracle_duration(
    m: MilestoneDef,
    chain: Sequence[Spell],
    days: Mapping[str, _OracleDays],
    on: dt.date,
    lo: dt.date,
    hi: dt.date,
) -> _Result:
    target = int(m.params["days"])
    gaps_count = bool(m.params.get("gap_counts_toward_duration", False))
    covered: set[int] = set()
    for s in chain:
        start, end = max(s.start, lo), min(s.last_day(on), hi)
        covered.update(range(start.toordinal(), end.toordinal() + 1))
    jobs = tuple(s.job for s in chain)
    used = [days[j] for j in jobs]
    evidence = tuple(sorted({e for d in used for e in d.evidence}))
    if not covered:
        return _Result(None, False, jobs, Needed(days=target), evidence)
    first, last = min(covered), max(covered)
    counted = range(first, last + 1) if gaps_count else sorted(covered)
    n = 0
    for day in counted:
        n += 1
        if n >= target:
            when = dt.date.fromordinal(day)
            return _Result(
                when,
                _oracle_estimated(used, dt.date.fromordinal(first), when),
                jobs,
                None,
                evidence,
                mean=_oracle_mean_counted(used, counted, day, gaps_count),
                first_day=dt.date.fromordinal(first),
            )
    return _Result(
        None,
        False,
        jobs,
        Needed(days=target - n),
        evidence,
        mean=_oracle_mean_counted(used, counted, last, gaps_count),
        first_day=dt.date.fromordinal(first),
    )


def _oracle_mean_counted(
    days: Sequence[_OracleDays], counted: Iterable[int], last: int, gaps_count: bool
) -> Fraction | None:
    """Mean weekly hours over the days a duration counted up to ordinal `last`: a bridged gap
    that does not count toward the duration does not dilute the band either."""
    if gaps_count:
        first = min(counted, default=last)
        return _oracle_mean(days, dt.date.fromordinal(first), dt.date.fromordinal(last))
    ordinals = [n for n in counted if n <= last]
    if not ordinals:
        return None
    total = Fraction(0)
    for d in days:
        base = d.start.toordinal()
        for n in ordinals:
            i = n - base
            if 0 <= i < len(d.hours):
                total += d.hours[i]
    return total * 7 / len(ordinals)


def _oracle_earnings(
    m: MilestoneDef,
    facts: CaseFacts,
    spells: Sequence[Spell],
    days: Mapping[str, _OracleDays],
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
    daily: dict[int, Fraction] = {}
    for d in used:
        for i, p in enumerate(d.pay):
            n = (d.start + dt.timedelta(days=i)).toordinal()
            if lo.toordinal() <= n <= hi.toordinal():
                daily[n] = daily.get(n, Fraction(0)) + p
    total = Fraction(0)
    for n in sorted(daily):
        total += daily[n]
        if total >= target:
            when = dt.date.fromordinal(n)
            return _Result(when, _oracle_estimated(used, lo, when), jobs, None, evidence)
    return _Result(None, False, jobs, Needed(earnings=_money(target - total)), evidence)


def oracle_instances(
    m: MilestoneDef,
    facts: CaseFacts,
    on: dt.date,
    horizon: dt.date | None = None,
    memo: dict[tuple[str, dt.date], _OracleDays] | None = None,
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
    days: dict[str, _OracleDays] = {}
    for s in spells:
        key = (s.job, until)
        if key not in memo:
            memo[key] = _oracle_days(s, facts.employment, until)
        days[s.job] = memo[key]
    out: list[_Result] = [
        _Result(None, False, (job,), None, (), excluded=why) for job, why in excluded.items()
    ]
    if m.test == "cumulative_earnings":
        lo, hi = _window(m, facts.programme_start)
        return [*out, _oracle_earnings(m, facts, spells, days, lo, hi)]
    if m.test == "duration":
        tolerance = int(m.params.get("gap_tolerance_days", 0))
        for chain in _episodes(spells, until, tolerance):
            anchor = facts.programme_start if m.anchor == "programme_start" else chain[0].start
            lo, hi = _window(m, anchor)
            out.append(_oracle_duration(m, chain, days, until, lo, hi))
        return out
    for s in spells:
        anchor = facts.programme_start if m.anchor == "programme_start" else s.start
        lo, hi = _window(m, anchor)
        if m.test == "paid_hours":
            out.append(_oracle_paid_hours(m, s, days[s.job], lo, hi))
        else:
            result = _oracle_qualifying_weeks(m, s, days[s.job], until, lo, hi)
            if result.achieved_on is not None:
                result = evolve(
                    result, mean=_oracle_mean([days[s.job]], s.start, result.achieved_on)
                )
            out.append(result)
    return out


def oracle_evaluate(
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
    memo: dict[tuple[str, dt.date], _OracleDays] = {}
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
        now = oracle_instances(m, facts, on, memo=memo)
        ahead: list[_Result] | None = None
        made: list[Milestone] = []
        for i, r in enumerate(now):
            projected = None
            if project and r.achieved_on is None and not r.excluded:
                if ahead is None:
                    ahead = oracle_instances(
                        m, facts, on, on + dt.timedelta(days=PROJECTION_DAYS), memo
                    )
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


# --- random histories and definitions --------------------------------------------------------

T = dt.date(2026, 1, 1)
WAGES = load_workflow().minimum_wage
SHIPPED = load_programmes()


def _day(offset: int) -> dt.date:
    return T + dt.timedelta(days=offset)


_hours_st = st.sampled_from(["0", "0.5", "4", "7", "12.25", "16", "20", "37.5"]).map(Decimal)
_pay_st = st.sampled_from(["0", "5.10", "12.21", "12.71", "15"]).map(Decimal)


@st.composite
def employments(draw: st.DrawFn) -> tuple[Employment, dt.date, dt.date]:
    """A random employment history, the case's programme start and an evaluation date."""
    jobs = [f"J{i}" for i in range(draw(st.integers(1, 3)))]
    spells = []
    for seq, job in enumerate(jobs):
        start = draw(st.integers(0, 200))
        length = draw(st.none() | st.integers(-1, 150))
        terms = [Terms(_day(start), draw(_hours_st), draw(_pay_st), 10 * seq)]
        for k in range(draw(st.integers(0, 2))):
            terms.append(
                Terms(
                    _day(start + draw(st.integers(-10, 120))),
                    draw(_hours_st),
                    draw(_pay_st),
                    10 * seq + k + 1,
                )
            )
        spells.append(
            Spell(
                job=job,
                employer="E",
                start=_day(start),
                terms=tuple(sorted(terms, key=lambda t: (t.from_date, t.seq))),
                end=None if length is None else _day(start + length),
                kind=draw(st.sampled_from(["employee", "employee", "self_employed"])),
                age_band=draw(st.sampled_from([None, "21_over", "18_20"])),
            )
        )
    work = []
    for seq in range(draw(st.integers(0, 8))):
        first = draw(st.integers(-5, 330))
        work.append(
            WorkPeriod(
                job=draw(st.sampled_from(jobs)),
                start=_day(first),
                end=_day(first + draw(st.integers(0, 30))),
                hours=draw(_hours_st) * draw(st.integers(0, 3)),
                gross_pay=draw(_pay_st) * draw(st.integers(0, 40)),
                evidence="timesheet",
                seq=100 + seq,
            )
        )
    breaks = []
    for seq in range(draw(st.integers(0, 3))):
        first = draw(st.integers(-5, 330))
        length = draw(st.none() | st.integers(0, 40))
        breaks.append(
            Break(
                job=draw(st.sampled_from([None, *jobs])),
                reason="sick",
                start=_day(first),
                end=None if length is None else _day(first + length),
                seq=200 + seq,
            )
        )
    employment = Employment(spells=tuple(spells), work=tuple(work), breaks=tuple(breaks))
    return employment, _day(draw(st.integers(-30, 150))), _day(draw(st.integers(-10, 360)))


_common: Mapping[str, st.SearchStrategy[Any]] = {
    "anchor": st.sampled_from(["job_start", "programme_start"]),
    "window_days": st.integers(0, 200),
    "competitive_only": st.booleans(),
    "job_kinds": st.just(["employee"]),
    "once_per": st.sampled_from(["job", "case"]),
    "require_band": st.booleans(),
    "bands": st.just({"lt16": {"under": 16}, "ge16": {"at_least": 16}}),
}
_tests: Mapping[str, Mapping[str, st.SearchStrategy[Any]]] = {
    "paid_hours": {"hours": st.sampled_from([0, 1, 4, 4.5, 16, 100, 600])},
    "duration": {
        "days": st.sampled_from([0, 1, 13, 91, 200]),
        "gap_tolerance_days": st.sampled_from([0, 3, 14]),
        "gap_counts_toward_duration": st.booleans(),
    },
    "qualifying_weeks": {
        "weeks": st.sampled_from([0, 1, 3, 13]),
        "min_hours": st.sampled_from([0, 2.5, 7, 16]),
        "within_weeks": st.sampled_from([0, 2, 4, 16]),
    },
    "cumulative_earnings": {
        "threshold": st.sampled_from([0, 50, 700.5, 6000]),
        "threshold_hours": st.sampled_from([4, 416]),
    },
}


@st.composite
def programmes(draw: st.DrawFn) -> Programme:
    """A programme of one to four milestones of random tests and parameters."""
    milestones = []
    for i in range(draw(st.integers(1, 4))):
        test = draw(st.sampled_from(sorted(_tests)))
        raw: dict[str, Any] = {"id": f"m{i}", "test": test}
        params = dict(_tests[test])
        always = {*TESTS[test][0], "threshold", "threshold_hours"}
        if test == "cumulative_earnings":
            del params[draw(st.sampled_from(["threshold", "threshold_hours"]))]
            raw["window_days"] = draw(st.integers(1, 400))
        for key, values in [*params.items(), *_common.items()]:
            if key not in raw and (key in always or draw(st.booleans())):
                raw[key] = draw(values)
        milestones.append(raw)
    data = {
        "programme": {"id": "p", "version": "1", "title": "P", "source": "S", "status": "partial"},
        "milestones": milestones,
    }
    return parse_programme("random.toml", data)


def _both(programme: Programme, facts: CaseFacts, on: dt.date) -> None:
    for project in (False, True):
        assert evaluate(programme, facts, on, project=project) == oracle_evaluate(
            programme, facts, on, project=project
        )
    horizon = on + dt.timedelta(days=PROJECTION_DAYS)
    for m in programme.milestones:
        for until in (None, horizon):
            assert _instances(m, facts, on, until) == oracle_instances(m, facts, on, until)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=employments(), programme=programmes())
def test_the_evaluator_equals_its_day_by_day_oracle(
    history: tuple[Employment, dt.date, dt.date], programme: Programme
) -> None:
    employment, start, on = history
    _both(programme, CaseFacts(employment=employment, programme_start=start, wages=WAGES), on)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=employments())
def test_each_shipped_definition_equals_its_day_by_day_oracle(
    history: tuple[Employment, dt.date, dt.date],
) -> None:
    employment, start, on = history
    facts = CaseFacts(employment=employment, programme_start=start, wages=WAGES)
    for programme in SHIPPED:
        _both(programme, facts, on)


def test_the_oracle_can_tell_a_difference() -> None:
    """The comparison can fail: a day's hours moved by a hundredth changes the exact mean."""
    job = Spell(
        job="J0", employer="E", start=T, terms=(Terms(T, Decimal(16), Decimal("12.71"), 1),)
    )
    work = WorkPeriod(
        job="J0",
        start=T,
        end=_day(6),
        hours=Decimal("15.99"),
        gross_pay=Decimal(200),
        evidence="timesheet",
        seq=2,
    )
    facts = CaseFacts(
        employment=Employment(spells=(job,), work=(work,)), programme_start=T, wages=WAGES
    )
    more = evolve(
        facts, employment=Employment(spells=(job,), work=(evolve(work, hours=Decimal(16)),))
    )
    mhep = next(p for p in SHIPPED if p.id == "mhep")
    on = _day(120)
    assert evaluate(mhep, facts, on) == oracle_evaluate(mhep, facts, on)
    assert evaluate(mhep, more, on) == oracle_evaluate(mhep, more, on)
    assert evaluate(mhep, facts, on) != oracle_evaluate(mhep, more, on)
