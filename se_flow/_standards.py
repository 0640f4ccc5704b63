"""Service standards and follow-along schedules: specs from stage data, and what is due.

A standard names an **anchor** (a record kind or a trigger: the referral, `start_job`), what
**meets** it (a record kind, optionally with a field's value, or a trigger) and either a
deadline (`within` N calendar or working days) or a repeating **schedule** (every 7 days 4
times, then every 30 days 11 times, until a trigger such as `end_job`). Each anchor on a case
starts one instance of the standard.

Everything is computed at read time from a case's history and the day: `evaluate(history,
standards, today)` is pure, runs no timers and writes nothing. The rules, said once:

* "Within N working days of X" is by the Nth working day after X's effective date (X's own
  day is not counted). A calendar-day deadline counts every day the same way.
* A one-shot standard is met by the first matching event on or after its anchor's day: `met`
  if on or before the deadline, else `missed` (met late: `met_on` and the days it took are
  still given). Not met yet: `due`, or `overdue` once the deadline has passed. A case that
  closes before the deadline owes nothing more; one that closes after it has `missed` it.
* A schedule's occurrence i falls due on the day its cumulative offset reaches; it is met by
  a matching event in its window, from the day after the previous occurrence's due day (the
  anchor's own day for the first) to its own due day. A window that has passed unmet is
  `missed` (a visit cannot be made last week); only the current window is `due`. The schedule
  ends at the first `until` trigger after its anchor, at the next anchor or when the case
  closes: a window cut short unmet is owed no more.
* **Pausing stops the clocks.** Days from the pause's date up to (not including) the resume
  date are not counted, so every deadline still running moves on by the paused (working or
  calendar) days, counted again from the resume date. While a case is paused, a deadline not
  yet reached has no date (`paused`). Days taken (`took`) count the same way.
* Only effective dates matter, never the order events were entered in; what is dated after
  the day asked about has not happened yet.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import attrs
from attrs import frozen

from ._calendar import ALL_DAYS, Calendar, DayCount
from .errors import Fault

if TYPE_CHECKING:
    from ._workflow import Workflow

__all__ = [
    "DUE",
    "MAX_DEADLINE_DAYS",
    "MET",
    "MISSED",
    "OPEN_ROW",
    "OVERDUE",
    "PAUSED",
    "WINDOW_ROW",
    "Anchored",
    "CaseHistory",
    "DueEffect",
    "DueItem",
    "DueList",
    "DueRow",
    "DueTouch",
    "Happening",
    "ScheduleStep",
    "Signal",
    "StandardResult",
    "StandardSpec",
    "Verdicts",
    "case_history",
    "case_number",
    "due_key",
    "due_row_mismatch",
    "due_touched",
    "evaluate",
    "happenings",
    "merge",
    "merge_rows",
    "needs",
    "parse_standards",
    "pause_triggers",
    "project",
    "result_at",
    "signals_read",
    "verdicts_at",
]

MET, MISSED, DUE, OVERDUE, PAUSED = "met", "missed", "due", "overdue", "paused"
# A deadline or schedule step beyond ten years is a typo (and overflows date arithmetic).
MAX_DEADLINE_DAYS = 3660
# A schedule of more occurrences than this is no follow-along plan (weekly for 20 years).
MAX_OCCURRENCES = 1000

_DAY = dt.timedelta(days=1)


@frozen
class Signal:
    """Something that happens on a case: a record of `record` kind (with `field` equal to
    `equals`, when a field is named) or the firing of `trigger`."""

    record: str | None = None
    trigger: str | None = None
    field: str | None = None
    equals: Any = None

    def matches(self, h: Happening) -> bool:
        if self.trigger is not None:
            return h.trigger == self.trigger
        if h.record != self.record:
            return False
        if self.field is None:
            return True
        return h.fields is not None and h.fields.get(self.field) == self.equals

    def words(self) -> str:
        if self.trigger is not None:
            return f"trigger {self.trigger}"
        if self.field is not None:
            return f"record {self.record} with {self.field} = {self.equals!r}"
        return f"record {self.record}"


@frozen
class ScheduleStep:
    every: int
    times: int | None = None


@frozen
class StandardSpec:
    """One service standard from the stage data."""

    id: str
    title: str
    anchor: Signal
    met_by: tuple[Signal, ...]
    within: int | None = None
    working_days: bool = False
    schedule: tuple[ScheduleStep, ...] = ()
    until: tuple[str, ...] = ()
    source_file: str = ""

    @property
    def unit(self) -> str:
        return "working days" if self.working_days else "days"

    def offsets(self) -> Iterable[int]:
        """The counted days from the anchor to each occurrence's due day."""
        if self.within is not None:
            yield self.within
            return
        total = 0
        for step in self.schedule:
            n = 0
            while step.times is None or n < step.times:
                total += step.every
                n += 1
                yield total

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "anchor": _signal_json(self.anchor),
            "met_by": [_signal_json(s) for s in self.met_by],
            "within": self.within,
            "days": "working" if self.working_days else "calendar",
            "schedule": [{"every": s.every, "times": s.times} for s in self.schedule],
            "until": list(self.until),
        }


def _signal_json(s: Signal) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("record", "trigger", "field"):
        if getattr(s, key) is not None:
            out[key] = getattr(s, key)
    if s.field is not None:
        out["equals"] = s.equals if isinstance(s.equals, str | int | bool) else str(s.equals)
    return out


class Happening(NamedTuple):
    """What the evaluator reads of one case event: its effective day, its trigger (for
    transitions, phase changes, pauses and resumes) or the kind and fields of its record.
    (A named tuple: a caseload's due list makes hundreds of thousands.)"""

    on: dt.date
    seq: int
    kind: str
    trigger: str | None = None
    record: str | None = None
    fields: Mapping[str, Any] | None = None


@frozen
class CaseHistory:
    case_id: str
    coach: str | None
    happenings: tuple[Happening, ...]
    closed_on: dt.date | None = None
    pause_triggers: frozenset[str] = frozenset({"pause"})
    resume_triggers: frozenset[str] = frozenset({"resume"})


@frozen
class StandardResult:
    """One instance (or schedule occurrence) of a standard on a case, as of a day.

    `status`: met, missed, due, overdue or paused. `due_on` is None while paused. `took` is
    how many counted days (working days for a working-day standard) after the anchor it was
    met in, paused days not counted."""

    case_id: str
    coach: str | None
    standard: str
    title: str
    anchor_on: dt.date
    due_on: dt.date | None
    status: str
    occurrence: int = 1
    met_on: dt.date | None = None
    took: int | None = None
    unit: str = "days"
    met_by: tuple[Signal, ...] = ()

    @property
    def open(self) -> bool:
        """Still to be done: due or overdue."""
        return self.status in (DUE, OVERDUE)

    def to_json(self) -> dict[str, Any]:
        return {
            "case_id": self.case_id,
            "coach": self.coach,
            "standard": self.standard,
            "title": self.title,
            "occurrence": self.occurrence,
            "anchor_on": self.anchor_on.isoformat(),
            "due_on": self.due_on.isoformat() if self.due_on else None,
            "status": self.status,
            "met_on": self.met_on.isoformat() if self.met_on else None,
            "took": self.took,
            "unit": self.unit,
            "met_by": [s.words() for s in self.met_by],
        }


@frozen
class Verdicts:
    """Every standard's results on the cases asked about, and the calendar years that were
    needed but not listed (their weekdays were counted as working days)."""

    results: tuple[StandardResult, ...]
    uncovered_years: tuple[int, ...] = ()


# --- evaluation ------------------------------------------------------------------------------


Pause = tuple[dt.date, dt.date | None]


def _pauses(history: CaseHistory) -> list[Pause]:
    """Pause spells as [pause day, resume day), from the pause and resume events in log order
    (the engine allows a resume only while paused, so the log order pairs them)."""
    spells: list[Pause] = []
    start: dt.date | None = None
    for h in sorted(history.happenings, key=lambda h: h.seq):
        if h.trigger in history.pause_triggers and start is None:
            start = h.on
        elif h.trigger in history.resume_triggers and start is not None:
            if h.on > start:
                spells.append((start, h.on))
            start = None
    if start is not None:
        spells.append((start, None))
    return sorted(spells, key=lambda p: p[0])


def _deadline(count: DayCount, anchor: dt.date, n: int, pauses: Sequence[Pause]) -> dt.date | None:
    """The nth counted day after `anchor`, paused days skipped; None if a pause still open
    stops the clock first."""
    cur, remaining = anchor, n
    for start, end in pauses:
        if end is not None and end <= cur + _DAY:
            continue
        first_paused = max(start, cur + _DAY)
        candidate = count.add(cur, remaining)
        if candidate < first_paused:
            return candidate
        remaining -= count.between(cur, first_paused - _DAY)
        if end is None:
            return None
        cur = end - _DAY
    return count.add(cur, remaining)


def _counted(count: DayCount, anchor: dt.date, day: dt.date, pauses: Sequence[Pause]) -> int:
    """Counted days after `anchor` up to and including `day`, paused days not counted."""
    total = count.between(anchor, day)
    for start, end in pauses:
        lo = max(start, anchor + _DAY)
        hi = min(end - _DAY if end is not None else day, day)
        if hi >= lo:
            total -= count.between(lo - _DAY, hi)
    return total


def _key(s: Signal) -> tuple[str, str]:
    return ("t", s.trigger) if s.trigger is not None else ("r", str(s.record))


def evaluate(
    histories: Iterable[CaseHistory],
    standards: Sequence[StandardSpec],
    calendar: Calendar | None,
    today: dt.date,
    *,
    open_only: bool = False,
    count_years: bool = True,
) -> Verdicts:
    """Every standard's instances on each case in `histories`, as of `today`; with
    `open_only`, only those still to be done (due or overdue), as a due list needs. Without
    `count_years`, `uncovered_years` is left empty (the due projection works it out as it
    is read: worked out here as of the end of time it would name every year to 9999)."""
    results: list[StandardResult] = []
    years: set[int] = set()
    # A caseload's anchors fall on few distinct days: each deadline without a pause is worked
    # out once per call, not once per case (the calendar's bisection was a third of the cost).
    deadlines: dict[tuple[bool, dt.date, int], dt.date | None] = {}
    plans: list[tuple[StandardSpec, DayCount, tuple[Any, ...] | None]] = []
    for spec in standards:
        count = calendar if spec.working_days and calendar is not None else ALL_DAYS
        # A due list's one-shot standards without field conditions take the short way below:
        # an instance is open exactly when no meeting signal falls on or after its anchor.
        plain = spec.within is not None and all(
            s.field is None for s in (spec.anchor, *spec.met_by)
        )
        fast = (_key(spec.anchor), [_key(m) for m in spec.met_by]) if open_only and plain else None
        plans.append((spec, count, fast))
    for history in histories:
        index: dict[tuple[str, str], list[dt.date]] = {}
        stops = later = False
        pausing, resuming = history.pause_triggers, history.resume_triggers
        # Unpacked, not read by name: a named tuple's fields are Python-level lookups, and a
        # caseload's due list reads every happening of every open case here.
        for on, _seq, _kind, trigger, record, _fields in history.happenings:
            if on > today:
                later = True  # as of `today`: what is dated later has not happened yet
                continue
            if trigger is not None:
                index.setdefault(("t", trigger), []).append(on)
                if trigger in pausing or trigger in resuming:
                    stops = True
            if record is not None:
                index.setdefault(("r", record), []).append(on)
        if later:
            kept = tuple(h for h in history.happenings if h.on <= today)
            history = attrs.evolve(history, happenings=kept)
        # No pause or resume in the history: no spells (the common case, read without sorting).
        pauses = _pauses(history) if stops else []
        for spec, count, fast in plans:
            if fast is not None:
                _one_open(
                    history, index, spec, count, pauses, today, results, deadlines, fast, years
                )
                continue
            before = len(results)
            _one(history, index, spec, count, pauses, today, results, open_only, deadlines)
            if count is not ALL_DAYS and count_years:
                for r in results[before:]:
                    last = r.due_on or today
                    years.update(range(r.anchor_on.year, max(last, r.met_on or last).year + 1))
    uncovered = calendar.uncovered(years) if calendar is not None and count_years else ()
    return Verdicts(tuple(results), uncovered)


def _one_open(
    history: CaseHistory,
    index: Mapping[tuple[str, str], list[dt.date]],
    spec: StandardSpec,
    count: DayCount,
    pauses: Sequence[Pause],
    today: dt.date,
    out: list[StandardResult],
    deadlines: dict[tuple[bool, dt.date, int], dt.date | None],
    keys: tuple[Any, ...],
    years: set[int],
) -> None:
    """`_one` for a due list (open instances only) of a one-shot standard with no field
    conditions: the same results, without working out deadlines of instances already met."""
    anchor_key, met_keys = keys
    anchors = index.get(anchor_key)
    if not anchors:
        return
    if len(anchors) > 1:
        anchors = sorted(set(anchors))
    if len(met_keys) == 1:
        met_days: Sequence[dt.date] = index.get(met_keys[0], ())
    else:
        met_days = [d for k in met_keys for d in index.get(k, ())]
    assert spec.within is not None
    for anchor in anchors:
        if any(d >= anchor for d in met_days):
            continue  # met, on time or late (every day in the index is on or before today)
        if pauses:
            due = _deadline(count, anchor, spec.within, pauses)
        else:
            key = (count is not ALL_DAYS, anchor, spec.within)
            due = deadlines.get(key)
            if due is None:
                due = deadlines[key] = _deadline(count, anchor, spec.within, pauses)
        if due is None or history.closed_on is not None:
            continue  # paused, or closed (missed or owed nothing): not open either way
        out.append(
            StandardResult(
                case_id=history.case_id,
                coach=history.coach,
                standard=spec.id,
                title=spec.title,
                anchor_on=anchor,
                due_on=due,
                status=DUE if today <= due else OVERDUE,
                unit=spec.unit,
                met_by=spec.met_by,
            )
        )
        if count is not ALL_DAYS:
            years.update(range(anchor.year, due.year + 1))


def _days_of(
    signals: Sequence[Signal],
    index: Mapping[tuple[str, str], list[dt.date]],
    history: CaseHistory,
) -> list[dt.date]:
    if len(signals) == 1 and signals[0].field is None:
        s = signals[0]
        found = index.get(("t", s.trigger) if s.trigger is not None else ("r", str(s.record)))
        if not found:
            return []
        return [found[0]] if len(found) == 1 else sorted(set(found))
    days: set[dt.date] = set()
    for s in signals:
        if s.field is not None:
            days.update(h.on for h in history.happenings if s.matches(h))
        elif s.trigger is not None:
            days.update(index.get(("t", s.trigger), ()))
        elif s.record is not None:
            days.update(index.get(("r", s.record), ()))
    return sorted(days)


def _one(
    history: CaseHistory,
    index: Mapping[tuple[str, str], list[dt.date]],
    spec: StandardSpec,
    count: DayCount,
    pauses: Sequence[Pause],
    today: dt.date,
    out: list[StandardResult],
    open_only: bool,
    deadlines: dict[tuple[bool, dt.date, int], dt.date | None] | None = None,
) -> None:
    anchors = _days_of((spec.anchor,), index, history)
    if not anchors:
        return
    met_days = _days_of(spec.met_by, index, history)
    closed = history.closed_on

    def deadline(anchor: dt.date, n: int) -> dt.date | None:
        if pauses or deadlines is None:
            return _deadline(count, anchor, n, pauses)
        key = (count is not ALL_DAYS, anchor, n)
        if key not in deadlines:
            deadlines[key] = _deadline(count, anchor, n, pauses)
        return deadlines[key]

    def result(anchor: dt.date, due: dt.date | None, status: str, **kw: Any) -> None:
        if open_only and status not in (DUE, OVERDUE):
            return
        out.append(_result(anchor, due, status, **kw))

    def _result(anchor: dt.date, due: dt.date | None, status: str, **kw: Any) -> StandardResult:
        return StandardResult(
            case_id=history.case_id,
            coach=history.coach,
            standard=spec.id,
            title=spec.title,
            anchor_on=anchor,
            due_on=due,
            status=status,
            unit=spec.unit,
            met_by=spec.met_by,
            **kw,
        )

    if spec.within is not None:
        for anchor in anchors:
            met = next((d for d in met_days if d >= anchor), None)
            if met is not None and met <= today:
                if open_only:
                    continue  # met, on time or late: nothing left to do, no deadline to work out
                due = deadline(anchor, spec.within)
                took = _counted(count, anchor, met, pauses)
                status = MET if due is not None and met <= due else MISSED
                result(anchor, due, status, met_on=met, took=took)
                continue
            due = deadline(anchor, spec.within)
            if due is None:
                if closed is None:
                    result(anchor, None, PAUSED)
            elif closed is not None:
                if closed > due:
                    result(anchor, due, MISSED)
            else:
                result(anchor, due, DUE if today <= due else OVERDUE)
        return
    until_days = _days_of([Signal(trigger=t) for t in spec.until], index, history)
    for k, anchor in enumerate(anchors):
        # A schedule: ends at an `until` trigger after the anchor, the next anchor, or closure.
        ends = [d for d in until_days if d > anchor][:1]
        if k + 1 < len(anchors):
            ends.append(anchors[k + 1])
        if closed is not None:
            ends.append(closed)
        end = min(ends) if ends else None
        window_start = anchor
        for i, offset in enumerate(spec.offsets(), start=1):
            if i > MAX_OCCURRENCES or window_start > today:
                break
            if end is not None and window_start >= end:
                break
            due = deadline(anchor, offset)
            if due is None:
                result(anchor, None, PAUSED, occurrence=i)
                break
            met = next((d for d in met_days if window_start <= d <= min(due, today)), None)
            if met is not None:
                took = 0 if open_only else _counted(count, anchor, met, pauses)
                result(anchor, due, MET, occurrence=i, met_on=met, took=took)
            elif end is not None and end <= due:
                pass  # cut short by the end of the schedule: owed no more
            elif due < today:
                result(anchor, due, MISSED, occurrence=i)
            else:
                result(anchor, due, DUE, occurrence=i)
            window_start = due + _DAY


# --- parsing from stage data -----------------------------------------------------------------

_STANDARD_KEYS = {"id", "title", "anchor", "met_by", "within", "days", "schedule", "until"}
_SIGNAL_KEYS = {"record", "trigger", "field", "equals"}


def _whole(value: Any, lo: int, hi: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi


def parse_standards(
    parts: Sequence[tuple[str, Mapping[str, Any]]],
    *,
    records: Mapping[str, Any],
    triggers: Iterable[str],
    has_calendar: bool,
) -> tuple[tuple[StandardSpec, ...], list[Fault]]:
    """Every `[[standards]]` entry of the stage data, and every fault the named checks find:
    standards_unique, standard_keys_known, standard_signals_known, standard_deadlines_valid,
    standard_schedules_end, calendar_known."""
    faults: list[Fault] = []
    known_triggers = set(triggers)
    specs: list[StandardSpec] = []
    seen: dict[str, str] = {}

    def add(check: str, message: str) -> None:
        faults.append(Fault(check, message))

    def signal(raw: Any, where: str) -> Signal | None:
        if not isinstance(raw, Mapping):
            add("standard_signals_known", f"{where} must be a table such as {{ record = ... }}")
            return None
        for key in raw:
            if key not in _SIGNAL_KEYS:
                add("standard_keys_known", f"{where}: unknown key {key!r}")
        record, trigger = raw.get("record"), raw.get("trigger")
        if (record is None) == (trigger is None):
            add("standard_signals_known", f"{where} names exactly one of record or trigger")
            return None
        if trigger is not None:
            if str(trigger) not in known_triggers:
                add("standard_signals_known", f"{where}: unknown trigger {trigger!r}")
            if "field" in raw:
                add("standard_signals_known", f"{where}: a trigger has no fields")
            return Signal(trigger=str(trigger))
        kind = records.get(str(record))
        if kind is None:
            add("standard_signals_known", f"{where}: unknown record kind {record!r}")
            return Signal(record=str(record))
        field_name = raw.get("field")
        if field_name is None:
            if "equals" in raw:
                add("standard_signals_known", f"{where}: equals needs a field")
            return Signal(record=str(record))
        fspec = kind.field(str(field_name))
        if fspec is None:
            add(
                "standard_signals_known",
                f"{where}: {field_name!r} is not a field of {record} "
                f"(fields: {', '.join(f.name for f in kind.fields)})",
            )
            return None
        if "equals" not in raw:
            add("standard_signals_known", f"{where}: field {field_name} needs equals = ...")
            return None
        try:
            value = fspec.parse(raw["equals"])
        except ValueError as exc:
            add("standard_signals_known", f"{where}: equals for {record}.{field_name}: {exc}")
            return None
        return Signal(record=str(record), field=str(field_name), equals=value)

    for src, part in parts:
        entries = part.get("standards")
        if entries is None:
            continue
        if not isinstance(entries, list):
            add("standard_keys_known", f"{src}: standards must be [[standards]] tables")
            continue
        for raw in entries:
            if not isinstance(raw, Mapping):
                add("standard_keys_known", f"{src}: a [[standards]] entry is not a table")
                continue
            sid = str(raw.get("id", ""))
            where = f"{src}: standard {sid or '(no id)'}"
            if not sid:
                add("standards_unique", f"{src}: a [[standards]] entry has no id")
            elif sid in seen:
                add("standards_unique", f"{where} is also declared in {seen[sid]}")
            else:
                seen[sid] = src
            for key in raw:
                if key not in _STANDARD_KEYS:
                    add("standard_keys_known", f"{where}: unknown key {key!r}")
            anchor = signal(raw.get("anchor"), f"{where} anchor")
            met_raw = raw.get("met_by")
            met_list = met_raw if isinstance(met_raw, list) else [met_raw]
            met_by = [signal(m, f"{where} met_by") for m in met_list]
            days = raw.get("days", "calendar")
            if days not in ("calendar", "working"):
                add(
                    "standard_deadlines_valid",
                    f'{where}: days must be "calendar" or "working", got {days!r}',
                )
            if days == "working" and not has_calendar:
                add("calendar_known", f"{where} counts working days but no [calendar] is set")
            within, schedule_raw = raw.get("within"), raw.get("schedule")
            steps: list[ScheduleStep] = []
            if (within is None) == (schedule_raw is None):
                add(
                    "standard_deadlines_valid",
                    f"{where} needs exactly one of within (a deadline) or schedule",
                )
            elif within is not None and not _whole(within, 1, MAX_DEADLINE_DAYS):
                add(
                    "standard_deadlines_valid",
                    f"{where}: within must be a whole number of days from 1 to "
                    f"{MAX_DEADLINE_DAYS:,}, got {within!r}",
                )
            elif schedule_raw is not None:
                steps = _schedule(schedule_raw, where, raw.get("until"), add)
            until_raw = raw.get("until", [])
            until = until_raw if isinstance(until_raw, list) else [until_raw]
            for t in until:
                if str(t) not in known_triggers:
                    add("standard_signals_known", f"{where} until: unknown trigger {t!r}")
            if anchor is None or any(m is None for m in met_by) or not met_by:
                continue
            specs.append(
                StandardSpec(
                    id=sid,
                    title=str(raw.get("title", sid)),
                    anchor=anchor,
                    met_by=tuple(m for m in met_by if m is not None),
                    within=within if _whole(within, 1, MAX_DEADLINE_DAYS) else None,
                    working_days=days == "working",
                    schedule=tuple(steps),
                    until=tuple(str(t) for t in until),
                    source_file=src,
                )
            )
    return tuple(specs), faults


def _schedule(raw: Any, where: str, until: Any, add: Any) -> list[ScheduleStep]:
    if not isinstance(raw, list) or not raw:
        add("standard_deadlines_valid", f"{where}: schedule must list steps like {{ every = 7 }}")
        return []
    steps: list[ScheduleStep] = []
    for n, step in enumerate(raw, start=1):
        if not isinstance(step, Mapping):
            add("standard_deadlines_valid", f"{where}: schedule step {n} is not a table")
            continue
        every, times = step.get("every"), step.get("times")
        for key in step:
            if key not in ("every", "times"):
                add("standard_keys_known", f"{where}: schedule step {n}: unknown key {key!r}")
        if not _whole(every, 1, MAX_DEADLINE_DAYS):
            add(
                "standard_deadlines_valid",
                f"{where}: schedule step {n}: every must be a whole number of days from 1 to "
                f"{MAX_DEADLINE_DAYS:,}, got {every!r}",
            )
            continue
        if times is not None and not _whole(times, 1, MAX_OCCURRENCES):
            add(
                "standard_deadlines_valid",
                f"{where}: schedule step {n}: times must be from 1 to {MAX_OCCURRENCES:,}, "
                f"got {times!r}",
            )
            continue
        if times is None and n < len(raw):
            add(
                "standard_schedules_end",
                f"{where}: schedule step {n} repeats for ever, so the steps after it never come",
            )
        assert isinstance(every, int)
        steps.append(ScheduleStep(every=every, times=times))
    if steps and steps[-1].times is None and not until:
        add(
            "standard_schedules_end",
            f"{where}: the schedule never ends: give its last step times = N, or until = "
            f"[triggers that end it]",
        )
    return steps


# --- from the log to histories ---------------------------------------------------------------


class _EventLike(Protocol):
    @property
    def seq(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def trigger(self) -> str | None: ...
    @property
    def effective_at(self) -> dt.datetime: ...
    @property
    def payload(self) -> Mapping[str, Any]: ...


class _KindLike(Protocol):
    def from_json(self, values: Mapping[str, Any]) -> dict[str, Any]: ...


def needs(
    standards: Sequence[StandardSpec],
) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """What evaluating `standards` reads of a case: record kinds, record kinds whose fields
    a condition reads, and triggers (pauses and resumes are read besides)."""
    records: set[str] = set()
    with_fields: set[str] = set()
    triggers: set[str] = set()
    for spec in standards:
        for s in signals_read(spec):
            if s.trigger is not None:
                triggers.add(s.trigger)
            elif s.record is not None:
                records.add(s.record)
                if s.field is not None:
                    with_fields.add(s.record)
    return frozenset(records), frozenset(with_fields), frozenset(triggers)


def happenings(
    events: Iterable[_EventLike], records: Mapping[str, _KindLike]
) -> tuple[Happening, ...]:
    """A case's events as the evaluator reads them: a record that a later one corrected
    (superseded) is left out; record fields are typed by their kind."""
    out: list[Happening] = []
    superseded: set[int] = set()
    for e in events:
        record = e.payload.get("record") if e.payload else None
        kind_name: str | None = None
        fields: Mapping[str, Any] | None = None
        if isinstance(record, Mapping):
            kind_name = str(record.get("kind"))
            if record.get("supersedes") is not None:
                superseded.add(int(record["supersedes"]))
            raw = record.get("fields") or {}
            spec = records.get(kind_name)
            fields = spec.from_json(raw) if spec is not None else dict(raw)
        out.append(
            Happening(
                on=e.effective_at.date(),
                seq=e.seq,
                kind=str(e.kind),
                trigger=e.trigger,
                record=kind_name,
                fields=fields,
            )
        )
    return tuple(h for h in out if h.seq not in superseded)


# --- one due list ------------------------------------------------------------------------------


REVIEW = "review"
STANDARD = "standard"


@frozen
class DueItem:
    """One thing due on a case: a review (`what` = review) or a standard's deadline or
    schedule occurrence (`what` = standard, `name` its id). `does_it` says what satisfies it,
    `commands` the se-flow commands that do it."""

    case_id: str
    coach: str | None
    what: str
    name: str
    title: str
    due_on: dt.date
    overdue: bool
    does_it: tuple[str, ...]
    commands: tuple[str, ...]
    occurrence: int = 1

    def to_json(self) -> dict[str, Any]:
        return {
            "case_id": self.case_id,
            "coach": self.coach,
            "what": self.what,
            "name": self.name,
            "title": self.title,
            "occurrence": self.occurrence,
            "due_on": self.due_on.isoformat(),
            "overdue": self.overdue,
            "does_it": list(self.does_it),
            "commands": list(self.commands),
        }


@frozen
class DueList:
    """Everything due on the cases asked about, soonest (most overdue) first, and a warning
    for calendar years needed but not listed (their weekdays counted as working days)."""

    items: tuple[DueItem, ...]
    warnings: tuple[str, ...] = ()

    def __iter__(self) -> Any:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


Required = Mapping[str, tuple[tuple[str, str], ...]]
"""Per record kind, its required fields and their types: what a printed command must ask for."""


def record_command(
    case_id: str, kind: str, required: Required, given: Mapping[str, str] | None = None
) -> str:
    """`se-flow record` for `kind`, with the values `given` and a `NAME=TYPE` placeholder for
    each other required field, so the printed command says everything it needs."""
    given = given or {}
    parts = [f"{name}={value}" for name, value in given.items()]
    parts += [
        f"{name}={kind_.upper()}" for name, kind_ in required.get(kind, ()) if name not in given
    ]
    return " ".join([f"se-flow record {case_id} {kind}", *parts])


def command_for(case_id: str, signal: Signal, required: Required) -> str:
    if signal.trigger is not None:
        return f"se-flow advance {case_id} {signal.trigger}"
    assert signal.record is not None
    given: dict[str, str] = {}
    if signal.field is not None:
        value = signal.equals
        given[signal.field] = ("yes" if value else "no") if isinstance(value, bool) else str(value)
    return record_command(case_id, signal.record, required, given)


def merge(
    reviews: Iterable[DueItem], verdicts: Verdicts, last_day: dt.date, required: Required
) -> DueList:
    """Reviews and the open standards due by `last_day`, in one list sorted by due date (then
    case and title), and the calendar warning, said once."""
    items = list(reviews)
    # What satisfies a standard and the commands that do it differ between cases only in the
    # case id: worked out once per standard, not once per item.
    shared: dict[tuple[Signal, ...], tuple[tuple[str, ...], list[list[str]]]] = {}
    for r in verdicts.results:
        if not (r.open and r.due_on is not None and r.due_on <= last_day):
            continue
        words = shared.get(r.met_by)
        if words is None:
            words = shared[r.met_by] = (
                tuple(s.words() for s in r.met_by),
                [command_for(_HOLE, s, required).split(_HOLE) for s in r.met_by],
            )
        cid = r.case_id
        items.append(
            DueItem(
                case_id=cid,
                coach=r.coach,
                what=STANDARD,
                name=r.standard,
                title=r.title,
                due_on=r.due_on,
                overdue=r.status == OVERDUE,
                does_it=words[0],
                commands=tuple(c[0] + cid + c[1] for c in words[1]),
                occurrence=r.occurrence,
            )
        )
    items.sort(key=_orderer())
    return DueList(tuple(items), _year_warnings(verdicts.uncovered_years))


def _year_warnings(uncovered: Sequence[int]) -> tuple[str, ...]:
    if not uncovered:
        return ()
    years = ", ".join(map(str, uncovered))
    return (
        f"the calendar lists no bank holidays for {years}: every weekday in "
        f"{'that year' if len(uncovered) == 1 else 'those years'} counts as a working day",
    )


def _orderer() -> Any:
    """`_due_order`, each case's number read once (a team's list has a few items a case)."""
    numbers: dict[str, int] = {}

    def order(i: DueItem) -> tuple[dt.date, int, str, bool, str, int]:
        cid = i.case_id
        n = numbers.get(cid)
        if n is None:
            n = numbers[cid] = case_number(cid)
        return (i.due_on, n, cid, i.what != REVIEW, i.title, i.occurrence)

    return order


def merge_rows(
    reviews: Iterable[DueItem],
    rows: Iterable[DueRow],
    standards: Sequence[StandardSpec],
    calendar: Calendar | None,
    today: dt.date,
    required: Required,
) -> DueList:
    """`merge` of reviews and `verdicts_at(rows, ..., open_only=True)`, the rows read straight
    into due items (a team's list has one or two a case: no `StandardResult` between)."""
    items = list(reviews)
    numbers: dict[str, int] = {}
    keys: list[tuple[dt.date, int, str, bool, str, int]] = []
    for i in items:
        cid = i.case_id
        n = numbers.get(cid)
        if n is None:
            n = numbers[cid] = case_number(cid)
        keys.append((i.due_on, n, cid, i.what != REVIEW, i.title, i.occurrence))
    specs = {s.id: s for s in standards}
    # Per standard, all an item takes from it, worked out once: title, what satisfies it,
    # its commands (each split at the case id; the one command most have kept apart, so an
    # item joins one string) and whether it counts working days.
    shared: dict[str, _Shared | None] = {}
    spans: set[tuple[int, int]] = set()
    new = DueItem
    for cid, _n, name, anchor, occurrence, start, due, state, _met, _took, coach in rows:
        found = shared.get(name, _UNSEEN)
        if found is _UNSEEN:
            found = shared[name] = _shared(specs.get(name), calendar, required)
        if found is None or due is None:
            continue  # a standard the workflow no longer has (verify names the row)
        if state == OPEN_ROW:
            overdue = due < today
        elif state == WINDOW_ROW and start <= today <= due:
            overdue = False
        else:
            continue
        title, words, one, commands, working = found
        items.append(
            new(
                cid,
                coach,
                STANDARD,
                name,
                title,
                due,
                overdue,
                words,
                (one[0] + cid + one[1],) if one else tuple([a + cid + b for a, b in commands]),
                occurrence,
            )
        )
        n = numbers.get(cid)
        if n is None:
            n = numbers[cid] = case_number(cid)
        keys.append((due, n, cid, True, title, occurrence))
        if working:
            spans.add((anchor.year, due.year))
    # Sorted by keys made above (as `_orderer` makes them), not by a call per item.
    order = sorted(range(len(items)), key=keys.__getitem__)
    years = {y for first, last in spans for y in range(first, last + 1)}
    uncovered = calendar.uncovered(years) if calendar is not None else ()
    return DueList(tuple([items[k] for k in order]), _year_warnings(uncovered))


_Shared = tuple[str, tuple[str, ...], tuple[str, str] | None, tuple[tuple[str, str], ...], bool]
_UNSEEN: Any = object()


def _shared(
    spec: StandardSpec | None, calendar: Calendar | None, required: Required
) -> _Shared | None:
    if spec is None:
        return None
    commands = tuple(
        (head, tail)
        for head, tail in (command_for(_HOLE, s, required).split(_HOLE) for s in spec.met_by)
    )
    words = tuple(s.words() for s in spec.met_by)
    one = commands[0] if len(commands) == 1 else None
    return spec.title, words, one, commands, spec.working_days and calendar is not None


_HOLE = "\0"
"""Stands for the case id in a command worked out once (no case id holds a NUL)."""


def _due_order(i: DueItem) -> tuple[dt.date, int, str, bool, str, int]:
    return due_key(i.due_on, i.case_id, i.what != REVIEW, i.title, i.occurrence)


def case_number(case_id: str) -> int:
    """The number in a case id ("C-12": 12): what lists order cases by (C-9 before C-10)."""
    _, _, digits = case_id.partition("-")
    return int(digits) if digits.isdigit() else -1


def due_key(
    due_on: dt.date, case_id: str, standard: bool, title: str, occurrence: int
) -> tuple[dt.date, int, str, bool, str, int]:
    """Where an item stands in a due list: by date, then case number (then id), a case's
    review before its standards, then by title and occurrence."""
    return (due_on, case_number(case_id), case_id, standard, title, occurrence)


def pause_triggers(workflow: Workflow) -> tuple[frozenset[str], frozenset[str]]:
    """The triggers that pause a case, and those that resume one, in this workflow."""
    return (
        frozenset(t.trigger for t in workflow.transitions if t.effect == "pause"),
        frozenset(t.trigger for t in workflow.transitions if t.effect == "resume"),
    )


# --- the due projection ------------------------------------------------------------------------
# What is due on a case, kept as a table beside the log (`DueRow`s, one per standard instance or
# schedule occurrence): worked out from the case's history, the standards and the calendar alone,
# never the clock. It is `evaluate` as of the end of time; the day only decides, at read time,
# whether a deadline is due or overdue and which occurrence's window is the current one
# (`results_at`). Effective dates are never in the future, so every happening on a case is on or
# before any day asked about from now on, and the two agree (a property test checks it).

OPEN_ROW = "open"
"""A one-shot standard not met yet: due, or overdue once `due_on` has passed."""
WINDOW_ROW = "window"
"""A schedule occurrence not met: due while its window (from `window_start` to `due_on`) holds
the day asked about, missed once it has passed, not shown before it starts."""
_ROW_STATE = {MET: MET, MISSED: MISSED, PAUSED: PAUSED}


class DueRow(NamedTuple):
    """One row of the due projection: the `n`th result (from 0) of a case's standards, in the
    order `evaluate` gives them. `state` is met, missed, paused, open or window. `coach` is
    the case's (kept with the rows, so a coach's list reads them alone)."""

    case_id: str
    n: int
    standard: str
    anchor_on: dt.date
    occurrence: int
    window_start: dt.date
    due_on: dt.date | None
    state: str
    met_on: dt.date | None = None
    took: int | None = None
    coach: str | None = None


def project(
    history: CaseHistory, standards: Sequence[StandardSpec], calendar: Calendar | None
) -> tuple[DueRow, ...]:
    """The due projection's rows for one case (its `closed_on` given when it is closed)."""
    if not standards:
        return ()
    found = evaluate([history], standards, calendar, dt.date.max, count_years=False).results
    repeats = {s.id for s in standards if s.within is None}
    rows: list[DueRow] = []
    starts: dict[tuple[str, dt.date], dt.date] = {}
    for n, r in enumerate(found):
        start = r.anchor_on
        if r.standard in repeats:
            # Occurrences come in order, one after another: each window starts the day after
            # the one before falls due.
            key = (r.standard, r.anchor_on)
            start = starts.get(key, r.anchor_on) if r.occurrence > 1 else r.anchor_on
            if r.due_on is not None:
                starts[key] = r.due_on + _DAY
            state = _ROW_STATE.get(r.status, WINDOW_ROW) if r.status != MISSED else WINDOW_ROW
        else:
            state = _ROW_STATE.get(r.status, OPEN_ROW)
        rows.append(
            DueRow(
                case_id=r.case_id,
                n=n,
                standard=r.standard,
                anchor_on=r.anchor_on,
                occurrence=r.occurrence,
                window_start=start,
                due_on=r.due_on,
                state=state,
                met_on=r.met_on,
                took=r.took,
                coach=history.coach,
            )
        )
    return tuple(rows)


def result_at(row: DueRow, spec: StandardSpec, today: dt.date) -> StandardResult | None:
    """A due projection row as `evaluate` gives it on `today` (None: not shown yet, as a
    schedule occurrence whose window has not started)."""
    state, due = row.state, row.due_on
    if state == OPEN_ROW:
        assert due is not None
        status = DUE if today <= due else OVERDUE
    elif state == WINDOW_ROW:
        assert due is not None
        if row.window_start > today:
            return None
        status = DUE if today <= due else MISSED
    elif state == PAUSED and spec.within is None and row.window_start > today:
        return None
    else:
        status = state
    return StandardResult(
        case_id=row.case_id,
        coach=row.coach,
        standard=row.standard,
        title=spec.title,
        anchor_on=row.anchor_on,
        due_on=due,
        status=status,
        occurrence=row.occurrence,
        met_on=row.met_on,
        took=row.took,
        unit=spec.unit,
        met_by=spec.met_by,
    )


def verdicts_at(
    rows: Iterable[DueRow],
    standards: Sequence[StandardSpec],
    calendar: Calendar | None,
    today: dt.date,
    *,
    open_only: bool = False,
) -> Verdicts:
    """`evaluate`'s verdicts on `today` from due projection rows, in the rows' order; with
    `open_only`, only those due or overdue."""
    specs = {s.id: s for s in standards}
    results: list[StandardResult] = []
    years: set[int] = set()
    for row in rows:
        spec = specs.get(row.standard)
        if spec is None:
            continue  # a standard the workflow no longer has (verify names the row)
        r = result_at(row, spec, today)
        if r is None or (open_only and not r.open):
            continue
        results.append(r)
        if spec.working_days and calendar is not None:
            last = r.due_on or today
            years.update(range(r.anchor_on.year, max(last, r.met_on or last).year + 1))
    uncovered = calendar.uncovered(years) if calendar is not None else ()
    return Verdicts(tuple(results), uncovered)


@frozen
class Anchored:
    """A write that changes a case's due rows only if the case holds one of these anchors
    (any record of `records`, any firing of `triggers`): a standard with no anchor on the case
    has no instance, whatever else the case holds, and the write adds none."""

    triggers: frozenset[str]
    records: frozenset[str]

    def __or__(self, other: Anchored) -> Anchored:
        return Anchored(self.triggers | other.triggers, self.records | other.records)


DueEffect = bool | Anchored
"""What a write can do to a case's due rows: nothing (False), anything (True: worked out
again), or something only if the case holds an anchor (`Anchored`: looked for first)."""


def signals_read(spec: StandardSpec) -> tuple[Signal, ...]:
    """What evaluating `spec` reads of a case's history besides its pauses and resumes (which
    every standard reads): its anchor, what meets it and the triggers that end a schedule.
    The one list of them, for `needs` (what a due list reads) and `DueTouch` (which writes
    change the due table); a test fails if a standard gains a field of signals not here."""
    return (spec.anchor, *spec.met_by, *(Signal(trigger=t) for t in spec.until))


def _effect(anchors: Iterable[Signal]) -> Anchored:
    keys = [_key(a) for a in anchors]
    return Anchored(
        frozenset(n for w, n in keys if w == "t"), frozenset(n for w, n in keys if w == "r")
    )


def _combined(a: DueEffect, b: DueEffect) -> DueEffect:
    if a is True or b is True:
        return True
    if a is False:
        return b
    if b is False:
        return a
    assert isinstance(a, Anchored) and isinstance(b, Anchored)
    return a | b


@frozen
class DueTouch:
    """Which writes can change a case's due rows, worked out from the standards themselves.

    The rows are `project` of the case's `CaseHistory`: its coach, its closing day and the
    happenings its standards read (`signals_read`, pauses and resumes). So a write changes
    them only by adding (or correcting) such a happening, closing the case or changing its
    coach (an `assign`: `_projections.apply` changes the coach there only). A happening
    that anchors a standard makes an instance: worked out again. Any other write changes only
    the instances of the standards that read it, and those exist only where the case holds
    their anchors (`Anchored`). Everything else leaves the rows as they are."""

    by_signal: Mapping[tuple[str, str], DueEffect]
    """Each record kind ("r", kind) and trigger ("t", trigger) a standard reads: what a
    write adding it can do."""
    every: DueEffect
    """What a write that every standard reads can do: closing the case, a new coach."""

    @classmethod
    def of(cls, workflow: Workflow) -> DueTouch:
        standards = workflow.standards
        if not standards:
            return cls({}, False)
        anchors = {_key(s.anchor) for s in standards}
        readers: dict[tuple[str, str], list[StandardSpec]] = {}
        for spec in standards:
            for s in signals_read(spec):
                readers.setdefault(_key(s), []).append(spec)
        every = _effect(s.anchor for s in standards)
        by_signal: dict[tuple[str, str], DueEffect] = {
            key: True if key in anchors else _effect(s.anchor for s in specs)
            for key, specs in readers.items()
        }
        pause, resume = pause_triggers(workflow)
        for trigger in pause | resume:
            # Every deadline counts paused days.
            by_signal[("t", trigger)] = _combined(by_signal.get(("t", trigger), False), every)
        return cls(by_signal, every)

    def touches(
        self, trigger: str | None, record: str | None, closed: bool, kind: str = ""
    ) -> DueEffect:
        """What a write can do to its case's due rows: one firing `trigger` and/or adding
        (or correcting) a record of kind `record`, of event `kind`, its case `closed` after
        it."""
        if self.every is False:
            return False
        # A correction takes out a happening of its own kind (the engine refuses another):
        # read by the standards that read the one it adds, so it counts as that.
        found: DueEffect = False
        if record is not None:
            found = self.by_signal.get(("r", record), False)
        if trigger is not None:
            found = _combined(found, self.by_signal.get(("t", trigger), False))
        if closed or kind == "assign":  # a closing day, or a new coach for every row
            found = _combined(found, self.every)
        return found


def due_row_mismatch(case_id: str, stored: Sequence[DueRow], found: Sequence[DueRow]) -> str | None:
    """The first difference between a case's due projection rows and their replay."""
    if list(stored) == list(found):
        return None
    for a, b in zip(stored, found, strict=False):
        if a != b:
            return (
                f"case {case_id}: the due table says {_row_words(a)}, but the log says "
                f"{_row_words(b)}: the table was changed behind the log's back"
            )
    if len(stored) > len(found):
        return (
            f"case {case_id}: the due table holds {_row_words(stored[len(found)])}, which the "
            "log does not say: the table was changed behind the log's back"
        )
    return (
        f"case {case_id}: the due table lacks {_row_words(found[len(stored)])}, which the log "
        "says: the table was changed behind the log's back"
    )


def _row_words(row: DueRow) -> str:
    due = row.due_on.isoformat() if row.due_on else "no date"
    return (
        f"{row.standard} #{row.occurrence} from {row.anchor_on} {row.state} (due {due}, "
        f"coach {row.coach or '-'})"
    )


def case_history(
    case_id: str,
    coach: str | None,
    closed_on: dt.date | None,
    events: Iterable[_EventLike],
    workflow: Workflow,
) -> CaseHistory:
    """A case's history as the standards read it, from its events in log order."""
    pause, resume = pause_triggers(workflow)
    return CaseHistory(
        case_id=case_id,
        coach=coach,
        happenings=happenings(events, workflow.records),
        closed_on=closed_on,
        pause_triggers=pause,
        resume_triggers=resume,
    )


def due_touched(
    touch: DueTouch, kind: str, trigger: str | None, record: Any, case: Any
) -> DueEffect:
    """What a write (its event's kind and trigger, its `RecordDraft` or None, the case after
    it or None) can do to the case's due projection rows (`DueTouch.touches`); a `workflow`
    event (the log moving to other stage data) can change every case's."""
    if case is None:
        return False
    return touch.touches(
        trigger,
        record.kind if record is not None else None,
        case.closed_at is not None,
        str(kind),
    )
