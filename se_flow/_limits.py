"""The bounds on what a user may give se-flow: how long a text, how early or late a date, how
large or precise a number (hours, pay), how many days or rows, what a staff id and name look
like. One place, so the library, the CLI and
the docs agree; no I/O here.

Text is bounded because every view and export of a case reads it whole (a 50 MB note made
`show` never finish); dates are bounded because nothing in supported employment happened
before 1900, and date arithmetic near year 1 or 9999 overflows.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Collection
from decimal import Decimal
from typing import Any, TypeVar

from .errors import InvalidInput, quoted

__all__ = [
    "COMMAND_ID",
    "DECIMAL_PLACES",
    "DECIMAL_WHOLE_DIGITS",
    "EARLIEST_DATE",
    "LATEST_DATE",
    "LOGIN",
    "MAX_DAYS",
    "MAX_LIMIT",
    "MAX_TEXT",
    "MAX_TEXT_BYTES",
    "NAME_MAX",
    "STAFF_ID",
    "check_command_id",
    "check_date",
    "check_days",
    "check_limit",
    "check_login",
    "check_staff_id",
    "check_staff_name",
    "check_text",
    "date_fault",
    "day_of",
    "decimal_fault",
    "text_fault",
    "unstorable",
]

D = TypeVar("D", bound=dt.date)

# Room for a long case note or an imported history (131,072 characters is known real use),
# small enough that a case still renders and exports quickly.
MAX_TEXT = 200_000
EARLIEST_DATE = dt.date(1900, 1, 1)
LATEST_DATE = dt.date(2999, 12, 31)
# The most bytes read for one value from a file or standard input (`field=@FILE`, `field=-`):
# MAX_TEXT characters of UTF-8 take at most four bytes each; one more byte says "too long".
MAX_TEXT_BYTES = 4 * MAX_TEXT
# A count of days (`due(within_days=...)`) that keeps every date it reaches inside the range.
MAX_DAYS = (LATEST_DATE - EARLIEST_DATE).days
# SQLite's largest integer: a row limit above it cannot even be passed to the database.
MAX_LIMIT = 2**63 - 1


def text_fault(value: str) -> str | None:
    """What is wrong with a text a user gave (None: nothing). Never quotes the text itself: it
    may be huge, or not printable."""
    if len(value) > MAX_TEXT:
        return f"is {len(value):,} characters long; the most se-flow keeps is {MAX_TEXT:,}"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        # A lone surrogate: what invalid UTF-8 on a command line, or a broken string from an
        # embedding app, arrives as. SQLite and every export need real UTF-8.
        return f"is not valid text: it cannot be stored as UTF-8 (at character {exc.start + 1})"
    return None


def check_text(value: Any, what: str) -> Any:
    """`value` if it is acceptable text (or None); else `InvalidInput` naming `what`."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be text, got {type(value).__name__}", field=what)
    problem = text_fault(value)
    if problem is not None:
        raise InvalidInput(f"{what} {problem}", field=what)
    return value


# Hours and money: room for any real pay or hours (and a funder's totals), small enough that
# arithmetic on them stays exact and quick. Decimal("1e999999999") is a valid number whose
# every later sum, comparison with a wage table or rounding is slow or raises.
DECIMAL_WHOLE_DIGITS = 12
DECIMAL_PLACES = 4


def decimal_fault(value: Decimal) -> str | None:
    """What is wrong with a finite number a user gave (None: nothing): more than
    DECIMAL_WHOLE_DIGITS before the point or DECIMAL_PLACES after it (trailing zeros do not
    count, so 12.500000 is 12.5)."""
    _, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int):
        return "is not a finite number"
    kept = len(digits)
    while kept and digits[kept - 1] == 0:
        kept -= 1
    # The exponent of the last significant digit (0 for zero).
    low = exponent + len(digits) - kept if kept else 0
    if kept + low > DECIMAL_WHOLE_DIGITS:
        return f"is too large: at most {DECIMAL_WHOLE_DIGITS} digits before the point"
    if -low > DECIMAL_PLACES:
        return f"has too many decimal places: at most {DECIMAL_PLACES}"
    return None


def date_fault(day: dt.date) -> str | None:
    """What is wrong with a date a user gave (None: nothing): a value that is no date at all
    (an embedding app's ISO text, say) included."""
    if not isinstance(day, dt.date):
        # The library takes dates as values; text is parsed where it is typed (the CLI).
        shown = f"{day!r}"[:40]
        return f"must be a date or time value (datetime.date), not {type(day).__name__} {shown}"
    if isinstance(day, dt.datetime):
        day = day.date()
    if day < EARLIEST_DATE:
        return f"{day.isoformat()} is before {EARLIEST_DATE}, the earliest date se-flow takes"
    if day > LATEST_DATE:
        return f"{day.isoformat()} is after {LATEST_DATE}, the latest date se-flow takes"
    return None


def check_date(value: D, what: str) -> D:
    """`value` if its date is inside the accepted range; else `InvalidInput` naming `what`."""
    problem = date_fault(value)
    if problem is not None:
        raise InvalidInput(f"{what} {problem}", field=what)
    return value


def check_day(value: dt.date, what: str) -> dt.date:
    """`check_date` for a value that is a day (a date of birth, a review date): a datetime
    given for it is cut to its date, as record date fields are, so what is kept is a day."""
    check_date(value, what)
    return value.date() if isinstance(value, dt.datetime) else value


def day_of(at: dt.datetime) -> str:
    """The day of an instant (UTC, YYYY-MM-DD) as a refusal shows it: the back-dating floors
    compare days, and a coach thinks in days, not in microseconds."""
    return at.astimezone(dt.UTC).date().isoformat()


def check_days(value: int, what: str, *, ahead_only: bool = False) -> int:
    """A count of days, added to a date, that stays inside the accepted dates; with
    `ahead_only` it may not be negative (a look ahead of -5 days means nothing)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(
            f"{what} must be a whole number of days, got {quoted(value)}", field=what
        )
    low = 0 if ahead_only else -MAX_DAYS
    if not low <= value <= MAX_DAYS:
        span = f"from 0 to {MAX_DAYS:,}" if ahead_only else f"at most {MAX_DAYS:,} either way"
        raise InvalidInput(
            f"{what} {value} is out of range: {span} days "
            f"(dates run from {EARLIEST_DATE.isoformat()} to {LATEST_DATE.isoformat()})",
            field=what,
        )
    return value


def check_flags(maybe: Collection[str] = (), /, **flags: Any) -> None:
    """Refuse a yes-or-no argument that is not `True` or `False`, naming it: a `"no"` is
    truthy, and would grant, share or confirm. Those named in `maybe` may also be None
    (a setting left as it is)."""
    for what, value in flags.items():
        if type(value) is not bool and not (value is None and what in maybe):
            raise InvalidInput(
                f"{what} must be True or False, got {quoted(value)}"[:200], field=what
            )


def check_limit(value: int | None, what: str) -> int | None:
    """A row limit: a whole number from 1 to SQLite's largest integer (or None: no limit)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{what} must be a whole number, got {quoted(value)}", field=what)
    if not 1 <= value <= MAX_LIMIT:
        raise InvalidInput(f"{what} {value} is out of range: from 1 to {MAX_LIMIT:,}", field=what)
    return value


# A login-like token. Ids land unescaped in events.csv cells (exports stay byte-exact), so
# the first character may not be one a spreadsheet reads as a formula (=, +, -, @) nor tab or
# CR; `@` is allowed inside, for email-like logins.
STAFF_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
NAME_MAX = 200
# Control characters, lone surrogates and the line/paragraph separators: each breaks a
# terminal line, a CSV row or the database's UTF-8.
_BAD_IN_NAMES = frozenset({"Cc", "Cs", "Zl", "Zp"})


def _shown(text: str) -> str:
    # Named in the message, but never a megabyte of it.
    return repr(text) if len(text) <= 40 else repr(text[:40]) + f"... ({len(text)} characters)"


def unstorable(exc: UnicodeEncodeError) -> InvalidInput:
    """The refusal of a text that reached a store without passing `check_text` (the API names
    the field for every text it takes; a store does not know the field, so this names the
    value itself, shortened, and where in it the fault lies)."""
    value = exc.object
    shown = f" {_shown(value)}" if isinstance(value, str) else ""
    return InvalidInput(
        f"a value given{shown} cannot be stored as UTF-8: it holds a lone surrogate "
        f"(at character {exc.start + 1})"
    )


def check_staff_id(staff_id: str, what: str = "staff id") -> str:
    """`staff_id` if it is a valid staff id, else `InvalidInput` naming it. `fullmatch`, not
    `$`: `$` would let a trailing newline through."""
    if not isinstance(staff_id, str) or STAFF_ID.fullmatch(staff_id) is None:
        raise InvalidInput(
            f"{what} {quoted(staff_id)} is not a valid staff id: use 1 to 64 letters, "
            "digits, '.', '_', '@' or '-', starting with a letter or digit",
            field=what,
        )
    return staff_id


# An OS login as Unix (`_apt`, `www-data`, `svc$`) and Windows domains (`OFFICE\\sam`) write
# them: no spaces, no control characters, at most 256 (Windows' longest user name with domain).
LOGIN = re.compile(r"[A-Za-z0-9._@$\\-]{1,256}")


def check_login(login: str, what: str = "login") -> str:
    """`login` if it can be an OS login name, else `InvalidInput` naming it."""
    if not isinstance(login, str) or LOGIN.fullmatch(login) is None:
        raise InvalidInput(
            f"{what} {quoted(login)} is not an OS login name: use 1 to 256 letters, digits, "
            "'.', '_', '@', '$', '-' or '\\'",
            field=what,
        )
    return login


def check_staff_name(name: str) -> str:
    """The name with surrounding spaces removed, or `InvalidInput`."""
    if not isinstance(name, str):
        raise InvalidInput(f"a staff member's name must be text, not {type(name).__name__}")
    name = name.strip()
    if not name:
        raise InvalidInput("a staff member needs a name")
    if len(name) > NAME_MAX:
        raise InvalidInput(f"staff name {quoted(name)} is too long (at most {NAME_MAX} characters)")
    if any(unicodedata.category(ch) in _BAD_IN_NAMES for ch in name):
        raise InvalidInput(f"staff name {quoted(name)} holds control characters")
    return name


# A caller's id for one command (a UUID, or `<client>:<n>`): a token like a staff id, long
# enough for a UUID with a prefix, with ':' and '/' inside for namespaced ids.
COMMAND_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}")


def check_command_id(command_id: Any) -> str:
    """`command_id` if it is a valid command id, else `InvalidInput` naming it."""
    if not isinstance(command_id, str) or COMMAND_ID.fullmatch(command_id) is None:
        raise InvalidInput(
            f"command id {quoted(command_id)} is not valid: use 1 to 128 letters, digits, "
            "'.', '_', ':', '@', '/' or '-', starting with a letter or digit",
            field="command id",
        )
    return command_id
