"""Who may do what: every "who may" rule of se-flow, and only those (house rule 3).

One function per question. Each takes the staff member(s) as read inside the caller's own
transaction (so what is checked is what is committed) and returns None, or raises
`PermissionDenied` in the words a user sees. Pure: no I/O, no clock. The engine is the one
caller of the `may_*` rules (`Engine` passes them on for reads and for the export's early
check); `acting` is who is asking, looked up for the engine by the API.

The roles: a coach works cases; a team leader works cases, overrides soft guards and manages
coaches and team leaders; an admin runs the system (staff, erasure, workflow, personal-data
exports) but does not work cases past their guards; an auditor reads and verifies, never
writes. Inactive staff may do nothing at all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, ParamSpec

from ._model import GuardResult, Role, Staff
from .errors import PermissionDenied, StaffNotFound

if TYPE_CHECKING:
    from .ports import Tx

__all__ = [
    "acting",
    "may_act_from",
    "may_adopt_workflow",
    "may_change_settings",
    "may_claim",
    "may_enrol",
    "may_erase",
    "may_erase_text",
    "may_export",
    "may_find_people",
    "may_grant_texts",
    "may_manage_staff",
    "may_override",
    "may_read",
    "may_see_personal_data",
    "may_see_text",
    "may_write",
    "permits",
]

P = ParamSpec("P")

# The system's own checks (who runs it, who audits it): only an admin makes or changes them.
_GUARDIANS = (Role.ADMIN, Role.AUDITOR)


def _words(role: Role) -> str:
    """The role as a person says it, with its article: "an admin", "a team leader"."""
    words = role.value.replace("_", " ")
    return f"an {words}" if words[0] in "aeiou" else f"a {words}"


def permits(rule: Callable[P, None], *args: P.args, **kwargs: P.kwargs) -> bool:
    """Whether `rule` lets this through: for a read that shows less rather than refuses."""
    try:
        rule(*args, **kwargs)
    except PermissionDenied:
        return False
    return True


def acting(tx: Tx, who: str) -> Staff:
    """The staff member acting as `who`, read in `tx`. Someone not on the staff list is
    refused as a permission (exit 7), for reads and writes alike: "who are you" is not a
    lookup that failed. A staff member named as the target of a command (a coach to assign)
    who does not exist stays `StaffNotFound` (exit 4)."""
    try:
        return tx.staff(who)
    except StaffNotFound:
        raise PermissionDenied(f"{who} is not on the staff list", who) from None


def _active(by: Staff) -> None:
    if not by.active:
        raise PermissionDenied(f"{by.id} is no longer active staff", by.id)


def may_read(by: Staff) -> None:
    """Every read of case data, the log, the staff list or a verification needs an active
    staff member, in any role (auditors read and verify)."""
    _active(by)


def may_see_personal_data(by: Staff) -> None:
    """Names, contacts and dates of birth: for active staff who work with people (coaches,
    team leaders) or run the system (admins); never for auditors, who see pseudonyms."""
    _active(by)
    if by.role is Role.AUDITOR:
        raise PermissionDenied(
            f"{by.id} is an auditor: auditors see participants by their pseudonyms only", by.id
        )


def may_find_people(by: Staff) -> None:
    """Searching participants by name or contact: for those who work with people, coaches
    and team leaders. An admin sees a name on a case they open, but does not go looking."""
    _active(by)
    if by.role not in (Role.COACH, Role.TEAM_LEADER):
        raise PermissionDenied(
            f"only coaches and team leaders may search participants by name; {by.id} is "
            f"{_words(by.role)}",
            by.id,
        )


def may_write(by: Staff, case_id: str | None = None) -> None:
    """Any change to a case: active staff in any role but auditor."""
    _active(by)
    if by.role is Role.AUDITOR:
        where = f" case {case_id}" if case_id else " cases"
        raise PermissionDenied(
            f"{by.id} is an auditor: auditors can read and verify, not change{where}", by.id
        )


def may_override(by: Staff, failed: Sequence[GuardResult], case_id: str) -> None:
    """Soft guards (`failed`) yield to a team leader's judgement only: an admin runs the
    system, not cases."""
    _active(by)
    if by.role is not Role.TEAM_LEADER:
        raise PermissionDenied(
            f"case {case_id}: only a team leader may override soft guards "
            f"({', '.join(r.label for r in failed)}); {by.id} is {_words(by.role)}",
            by.id,
        )


def may_manage_staff(
    by: Staff | None, before: Staff | None, after: Staff, active_admins: int
) -> None:
    """May `by` turn staff member `before` (None: someone new) into `after`? `by` None: nobody
    is on the staff list yet, and whoever sets se-flow up adds the first. `active_admins` is
    the count of active admins in the same transaction.

    A team leader may manage coaches and team leaders but may neither make nor change an admin
    or an auditor; the last active admin stays one, whoever asks (the admin themselves too)."""
    if by is None:
        return
    if by.role not in (Role.ADMIN, Role.TEAM_LEADER) or not by.active:
        raise PermissionDenied(f"{by.id} may not manage staff (needs team leader or admin)", by.id)
    if by.role is not Role.ADMIN:
        if before is not None and before.role in _GUARDIANS:
            raise PermissionDenied(
                f"only an admin may change {before.id}, who is {_words(before.role)}", by.id
            )
        if after.role in _GUARDIANS:
            raise PermissionDenied(f"only an admin may make {after.id} {_words(after.role)}", by.id)
    was_admin = before is not None and before.role is Role.ADMIN and before.active
    if was_admin and not (after.role is Role.ADMIN and after.active) and active_admins <= 1:
        # A rule about the system's state, not the input: refused as a permission (exit 7),
        # which is how a person reads it.
        change = "deactivate" if after.role is Role.ADMIN else "demote"
        raise PermissionDenied(
            f"cannot {change} {after.id}: they are the last active admin (make another admin "
            "first)",
            by.id,
        )


def may_erase(by: Staff) -> None:
    """Erasing a participant's personal data (UK GDPR Art. 17): an active admin."""
    _active(by)
    if by.role is not Role.ADMIN:
        raise PermissionDenied(f"only an admin may erase personal data; {by.id} is not", by.id)


def may_erase_text(by: Staff) -> None:
    """Erasing a free text kept apart from the log (a note, a reason): an active admin."""
    _active(by)
    if by.role is not Role.ADMIN:
        raise PermissionDenied(f"only an admin may erase a text; {by.id} is not", by.id)


def may_grant_texts(by: Staff) -> None:
    """Letting an auditor see and export free texts, or taking that back: an active admin."""
    _active(by)
    if by.role is not Role.ADMIN:
        raise PermissionDenied(f"only an admin may grant free texts; {by.id} is not", by.id)


def may_see_text(by: Staff, granted: bool) -> None:
    """Free texts (notes, reasons): for those who work with people or run the system; an
    auditor only once an admin has granted them the texts (`granted`)."""
    _active(by)
    if by.role is Role.AUDITOR and not granted:
        raise PermissionDenied(
            f"{by.id} is an auditor: free texts are withheld until an admin grants them", by.id
        )


def may_export(by: Staff, personal_data: bool) -> None:
    """A pseudonymised export: any active staff (auditors take exports); with personal data:
    an admin only, however many names a coach may see one at a time."""
    _active(by)
    if personal_data and by.role is not Role.ADMIN:
        raise PermissionDenied(
            f"only an admin may export personal data; {by.id} is {_words(by.role)} "
            "(exports are pseudonymised without it)",
            by.id,
        )


def may_adopt_workflow(by: Staff) -> None:
    """Moving the database on to another workflow definition: an active admin."""
    _active(by)
    if by.role is not Role.ADMIN:
        raise PermissionDenied(f"only an admin may adopt a workflow; {by.id} is not", by.id)


def may_start_sealing(by: Staff | None) -> None:
    """Turning on forward-secure sealing: whoever sets se-flow up (`by` None: nobody is on the
    staff list yet), else an active admin."""
    if by is None:
        return
    _active(by)
    if by.role is not Role.ADMIN:
        raise PermissionDenied(f"only an admin may turn on sealing; {by.id} is not", by.id)


def may_change_settings(by: Staff) -> None:
    """A database setting (shared terminal, where and how often checkpoints are kept): an
    active admin."""
    _active(by)
    if by.role is not Role.ADMIN:
        raise PermissionDenied(
            f"only an admin may change the database's settings; {by.id} is not", by.id
        )


def may_act_from(by: Staff, login: str | None, shared_terminal: bool) -> None:
    """May someone logged in as `login` act as `by`? A member bound to a login only from that
    login, unless the database allows a shared terminal. `login` None: the caller (an
    embedding application) authenticated the actor itself, so there is nothing to compare."""
    if login is None or by.login is None or by.login == login or shared_terminal:
        return
    raise PermissionDenied(
        f"{by.id} is bound to the login {by.login!r}, but {login!r} is logged in: log in as "
        f"{by.login} (or an admin allows a shared terminal: se-flow settings shared-terminal on)",
        by.id,
    )


def may_enrol(by: Staff, case_id: str, moving_from: str | None) -> None:
    """Putting a case on a programme (a funder definition and version): an active coach or
    team leader, who work cases. Moving a case already on one (`moving_from`, its ref) to
    another definition or version changes what the funder is told: a team leader only."""
    _active(by)
    if by.role not in (Role.COACH, Role.TEAM_LEADER):
        raise PermissionDenied(
            f"case {case_id}: only a coach or team leader may enrol a case on a programme; "
            f"{by.id} is {_words(by.role)}",
            by.id,
        )
    if moving_from is not None and by.role is not Role.TEAM_LEADER:
        raise PermissionDenied(
            f"case {case_id} is on {moving_from}: only a team leader may move it to another "
            f"programme or version; {by.id} is {_words(by.role)}",
            by.id,
        )


def may_claim(by: Staff, case_id: str) -> None:
    """Marking a milestone claimed from the funder: an active team leader or admin (who answer
    to the funder for it), never a coach on their own cases or an auditor."""
    _active(by)
    if by.role not in (Role.TEAM_LEADER, Role.ADMIN):
        raise PermissionDenied(
            f"case {case_id}: only a team leader or admin may mark a milestone claimed; "
            f"{by.id} is {_words(by.role)}",
            by.id,
        )
