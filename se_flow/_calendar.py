"""Working days: weekends, bank holidays and a service's own closure days, as data.

A `Calendar` is built from a calendar file (`se_flow/calendars/*.toml`, from GOV.UK's lists)
plus the closure days a stage folder adds. "Within N working days of X" means by the Nth
working day after X (X's own day is not counted): `add_working_days(x, n)`.

A year the calendar does not list (`years`) has no bank holidays it knows of: its weekdays
count as working days, and whoever evaluates dates in it says so (`uncovered`). No I/O here.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
from attrs import frozen

from ._limits import date_fault
from .errors import Fault

__all__ = ["ALL_DAYS", "DAY_WORDS", "Calendar", "DayCount", "named_day", "parse_calendar"]

_DAY = dt.timedelta(days=1)

# The one date policy for what people type: a date as YYYY-MM-DD, or a day by its name,
# counted back from `today` (the caller's today: the CLI's is the local day).
DAY_WORDS = {"today": 0, "yesterday": 1}


def named_day(text: str, today: dt.date) -> dt.date | None:
    """The day `text` names: `today`, `yesterday` (any case, spaces around ignored) or
    YYYY-MM-DD; None when it is neither (the caller says what it expected)."""
    word = text.strip().lower()
    if word in DAY_WORDS:
        return today - dt.timedelta(days=DAY_WORDS[word])
    try:
        return dt.date.fromisoformat(word)
    except ValueError:
        return None


class DayCount:
    """How a deadline counts days: every day (calendar days) or working days only."""

    working: bool = False

    def add(self, day: dt.date, n: int) -> dt.date:
        """The `n`th counted day after `day` (`day` itself not counted); `day` for n = 0."""
        return day + dt.timedelta(days=n)

    def between(self, first: dt.date, last: dt.date) -> int:
        """How many counted days lie after `first`, up to and including `last`."""
        return max(0, (last - first).days)


ALL_DAYS = DayCount()


@attrs.define
class _Index:
    """Working days as sorted ordinals, for a span of years grown as dates need it."""

    first_year: int = 0
    last_year: int = -1
    ordinals: list[int] = attrs.field(factory=list)


@frozen(eq=False)
class Calendar(DayCount):
    """Mondays to Fridays, less `closed` days (bank holidays and closures, by date)."""

    id: str
    title: str
    years: frozenset[int]
    closed: Mapping[dt.date, str]
    _index: _Index = attrs.field(factory=_Index, init=False, repr=False)

    working = True

    def is_working_day(self, day: dt.date) -> bool:
        return day.weekday() < 5 and day not in self.closed

    def uncovered(self, years: Iterable[int]) -> tuple[int, ...]:
        """Of `years`, those the calendar lists no holidays for, in order."""
        return tuple(sorted(set(years) - self.years))

    def _cover(self, first_year: int, last_year: int) -> list[int]:
        index = self._index
        if index.first_year <= first_year and last_year <= index.last_year:
            return index.ordinals
        lo = min(first_year, index.first_year) if index.ordinals else first_year
        hi = max(last_year, index.last_year) if index.ordinals else last_year
        # Whole decades at a time: a caseload's dates cluster, so this is built once or twice.
        lo, hi = lo - lo % 10, hi - hi % 10 + 9
        lo, hi = max(lo, dt.MINYEAR), min(hi, dt.MAXYEAR)
        start, end = dt.date(lo, 1, 1).toordinal(), dt.date(hi, 12, 31).toordinal()
        index.ordinals = [
            o for o in range(start, end + 1) if self.is_working_day(dt.date.fromordinal(o))
        ]
        index.first_year, index.last_year = lo, hi
        return index.ordinals

    def add(self, day: dt.date, n: int) -> dt.date:
        if n <= 0:
            return day
        # n working days are at most n * 7 / 5 calendar days, plus a fortnight for holidays.
        reach = day + dt.timedelta(days=n * 7 // 5 + 14)
        ordinals = self._cover(day.year, reach.year)
        i = bisect.bisect_right(ordinals, day.toordinal()) + n - 1
        if i >= len(ordinals):  # pragma: no cover - more holidays than weekdays
            ordinals = self._cover(day.year, reach.year + 10)
        return dt.date.fromordinal(ordinals[i])

    def between(self, first: dt.date, last: dt.date) -> int:
        if last <= first:
            return 0
        ordinals = self._cover(first.year, last.year)
        return bisect.bisect_right(ordinals, last.toordinal()) - bisect.bisect_right(
            ordinals, first.toordinal()
        )


def _day(value: Any) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return None
    if isinstance(value, dt.date):
        return value if date_fault(value) is None else None
    if isinstance(value, str):
        try:
            day = dt.date.fromisoformat(value.strip())
        except ValueError:
            return None
        return day if date_fault(day) is None else None
    return None


def _days(
    entries: Any, where: str, faults: list[Fault], into: dict[dt.date, str], what: str
) -> None:
    if not isinstance(entries, list):
        faults.append(Fault("calendar_dates_valid", f"{where}: {what} must be a list"))
        return
    for entry in entries:
        raw = entry.get("date") if isinstance(entry, Mapping) else entry
        name = str(entry.get("name", what)) if isinstance(entry, Mapping) else what
        day = _day(raw)
        if day is None:
            faults.append(
                Fault(
                    "calendar_dates_valid",
                    f"{where}: {what} {raw!r} is not a date as YYYY-MM-DD (1900 to 2999)",
                )
            )
        elif day in into:
            faults.append(
                Fault("calendar_dates_valid", f"{where}: {day.isoformat()} is listed twice")
            )
        else:
            into[day] = name


def parse_calendar(
    source: str, data: Mapping[str, Any], closures: Any, closures_source: str
) -> tuple[Calendar | None, list[Fault]]:
    """A calendar from a calendar file's parsed `data` plus a stage folder's `closures` (a
    list of dates, or of `{date, name}` tables), and every fault found in either."""
    faults: list[Fault] = []
    head = data.get("calendar")
    if not isinstance(head, Mapping):
        return None, [Fault("calendar_known", f"{source}: no [calendar] table")]
    years_raw = head.get("years", [])
    years: set[int] = set()
    if not isinstance(years_raw, list) or not all(
        isinstance(y, int) and not isinstance(y, bool) and 1900 <= y <= 2999 for y in years_raw
    ):
        faults.append(
            Fault("calendar_dates_valid", f"{source}: years must be a list of years 1900-2999")
        )
    else:
        years = set(years_raw)
    closed: dict[dt.date, str] = {}
    _days(head.get("holidays", data.get("holidays", [])), source, faults, closed, "holiday")
    for day in closed:
        if years and day.year not in years:
            faults.append(
                Fault(
                    "calendar_dates_valid",
                    f"{source}: {day.isoformat()} is in {day.year}, not one of its years",
                )
            )
    own: dict[dt.date, str] = {}
    if closures is not None:
        _days(closures, closures_source, faults, own, "closure")
    for day, name in own.items():
        # A closure on a bank holiday changes nothing; it is no fault.
        closed.setdefault(day, name)
    calendar = Calendar(
        id=str(head.get("id", source)),
        title=str(head.get("title", head.get("id", source))),
        years=frozenset(years),
        closed=dict(sorted(closed.items())),
    )
    return calendar, faults
