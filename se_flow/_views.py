"""What one screen shows, as one value: each CLI command (and any host's page) makes one API
call and renders what it returns; every rule (who may see a name, whose caseload is the
default, what "today" is) was applied by the API. No I/O."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from attrs import field, frozen

from ._model import Case, Check, Event, Participant, Record, Staff
from ._seal import VerificationKey
from ._standards import DueList, Verdicts

__all__ = ["CaseView", "Caseload", "DueView", "HistoryPage", "NextSteps", "SetUp"]


@frozen
class HistoryPage:
    """A page of a case's timeline: `events` in seq order (the newest, or those before the
    `before_seq` asked for) and how many of the case's events come `earlier` than the first
    of them (0: the page starts at the referral). The next page back is asked for with
    `before_seq=events[0].seq`."""

    case_id: str
    events: tuple[Event, ...]
    earlier: int


@frozen
class CaseView:
    """One case as `show` presents it: the case; its participant, with personal details only
    for those who may see them; its current records (the latest page; superseded ones too if
    asked), `more_records` saying that older ones were left out; every service standard as
    of `today`; and a page of its timeline. Read in one snapshot, at a cost that does not grow
    with the case's history except for the standards (which count what the history holds)."""

    case: Case
    participant: Participant
    records: tuple[Record, ...]
    more_records: bool
    standards: Verdicts
    history: HistoryPage
    today: dt.date


@frozen
class Caseload:
    """The cases a filter picks (status and limit applied in the store's query), with the
    `today` their review dates and days in stage are read against."""

    cases: tuple[Case, ...]
    today: dt.date
    names: Mapping[str, str] = field(factory=dict)
    """Participant id to name, for those who may see names (never an auditor); empty when
    not asked for."""


@frozen
class NextSteps:
    """What can happen next to a case: each trigger open from its stage, with its guards."""

    case: Case
    checks: tuple[Check, ...]


@frozen
class DueView:
    """A due list and whose it is: `coach` is the caseload listed (the actor's own when a
    coach asks for none), None for everyone's."""

    items: DueList
    coach: str | None
    today: dt.date
    names: Mapping[str, str] = field(factory=dict)
    """Case id to the participant's name, for those who may see names; empty when not
    asked for."""


@frozen
class SetUp:
    """A database set up: its first staff member, and the verification key if its events are
    sealed (shown once, for the auditor to keep: se-flow keeps it nowhere)."""

    staff: Staff
    key: VerificationKey | None
