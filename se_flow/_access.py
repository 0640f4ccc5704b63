"""Who may do what (issue 8): the shape of a staff id, who is acting, who may read, who may
see personal data, and who may manage staff.

Kept together in one place, pure (values in, a refusal out, no I/O), so that one policy
module can take them over with `Engine._may_write` and `_export._may_export`. The caller reads
the staff it passes in inside its own transaction, so what is checked is what is committed.
"""

from __future__ import annotations

import re
import unicodedata
from typing import TYPE_CHECKING

from ._model import Role, Staff
from .errors import InvalidInput, PermissionDenied, StaffNotFound

if TYPE_CHECKING:
    from .ports import Tx

__all__ = [
    "NAME_MAX",
    "STAFF_ID",
    "acting",
    "check_staff_id",
    "check_staff_name",
    "may_manage_staff",
    "may_read",
    "may_see_personal_data",
]

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


def check_staff_id(staff_id: str, what: str = "staff id") -> str:
    """`staff_id` if it is a valid staff id, else `InvalidInput` naming it. `fullmatch`, not
    `$`: `$` would let a trailing newline through."""
    if not isinstance(staff_id, str) or STAFF_ID.fullmatch(staff_id) is None:
        raise InvalidInput(
            f"{what} {_shown(str(staff_id))} is not a valid staff id: use 1 to 64 letters, "
            "digits, '.', '_', '@' or '-', starting with a letter or digit"
        )
    return staff_id


def check_staff_name(name: str) -> str:
    """The name with surrounding spaces removed, or `InvalidInput`."""
    name = name.strip()
    if not name:
        raise InvalidInput("a staff member needs a name")
    if len(name) > NAME_MAX:
        raise InvalidInput(f"staff name {_shown(name)} is too long (at most {NAME_MAX} characters)")
    if any(unicodedata.category(ch) in _BAD_IN_NAMES for ch in name):
        raise InvalidInput(f"staff name {_shown(name)} holds control characters")
    return name


def _role_words(role: Role) -> str:
    return role.value.replace("_", " ")


def may_manage_staff(by: Staff, old: Staff | None, new: Staff, active_admins: int) -> None:
    """May `by` turn staff member `old` (None: someone new) into `new`? `active_admins` is
    the count of active admins in the same transaction. Raises `PermissionDenied`.

    Admins and auditors are the system's own checks (who runs it, who audits it): a team
    leader may manage coaches and team leaders but may neither make nor change either."""
    if by.role not in (Role.ADMIN, Role.TEAM_LEADER) or not by.active:
        raise PermissionDenied(f"{by.id} may not manage staff (needs team leader or admin)", by.id)
    if by.role is not Role.ADMIN:
        if old is not None and old.role in (Role.ADMIN, Role.AUDITOR):
            raise PermissionDenied(
                f"only an admin may change {old.id}, who is an {_role_words(old.role)}", by.id
            )
        if new.role in (Role.ADMIN, Role.AUDITOR):
            raise PermissionDenied(
                f"only an admin may make {new.id} an {_role_words(new.role)}", by.id
            )
    was_admin = old is not None and old.role is Role.ADMIN and old.active
    if was_admin and not (new.role is Role.ADMIN and new.active) and active_admins <= 1:
        # A rule about the system's state, not the input: refused as a permission (exit 7),
        # which is how a person reads it, whoever asks (the admin themselves included).
        change = "deactivate" if new.role is Role.ADMIN else "demote"
        raise PermissionDenied(
            f"cannot {change} {new.id}: they are the last active admin (make another admin first)",
            by.id,
        )


def acting(tx: Tx, who: str) -> Staff:
    """The staff member acting as `who`, read in `tx`. Someone not on the staff list is
    refused as a permission (exit 7), for reads and writes alike: "who are you" is not a
    lookup that failed. A staff member named as the target of a command (a coach to assign)
    who does not exist stays `StaffNotFound` (exit 4)."""
    try:
        return tx.staff(who)
    except StaffNotFound:
        raise PermissionDenied(f"{who} is not on the staff list", who) from None


def may_read(by: Staff) -> None:
    """Every read of case data, the log, the staff list or a verification needs an active
    staff member, in any role (auditors read and verify)."""
    if not by.active:
        raise PermissionDenied(f"{by.id} is no longer active staff", by.id)


def may_see_personal_data(by: Staff) -> bool:
    """Names, contacts and dates of birth: for active staff who work with people (coaches,
    team leaders) or run the system (admins); never for auditors, who see pseudonyms."""
    return by.active and by.role in (Role.COACH, Role.TEAM_LEADER, Role.ADMIN)
