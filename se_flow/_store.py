"""The one seam between the engine and storage.

A store runs each command as one write transaction: it opens the transaction, hands the
command a `Tx` to read what it needs (the actor, the case as it is now), takes back the
`Change` the engine decided, and commits the case update, the record and the sealed audit
event together, or nothing. Every store passes `tests/store_contract.py`.
"""

from __future__ import annotations

import abc
import contextlib
import datetime as dt
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from attrs import frozen

from ._engine import Change, Needs, Snapshot
from ._model import Case, Event, Participant, PersonalDetails, Record, Staff, Status
from ._projections import RecordRow
from ._standards import CaseHistory, happenings
from ._workflow import Workflow

__all__ = ["CaseFilter", "Store", "Tx", "pause_triggers"]


def pause_triggers(workflow: Workflow) -> tuple[frozenset[str], frozenset[str]]:
    """The triggers that pause a case, and those that resume one, in this workflow."""
    return (
        frozenset(t.trigger for t in workflow.transitions if t.effect == "pause"),
        frozenset(t.trigger for t in workflow.transitions if t.effect == "resume"),
    )


class Tx(abc.ABC):
    """Reads inside a write transaction: what a command sees is what it commits against."""

    @abc.abstractmethod
    def staff(self, staff_id: str) -> Staff:
        """Raises `StaffNotFound`."""

    @abc.abstractmethod
    def has_staff(self) -> bool: ...

    @abc.abstractmethod
    def count_active_admins(self) -> int:
        """How many staff are active admins, as this transaction sees it (the last one may
        not be demoted, and two demotions must not both see the other's admin)."""

    @abc.abstractmethod
    def snapshot(self, case_id: str, needs: Callable[[Case], Needs] | None = None) -> Snapshot:
        """The case, its current records and its trigger marks. Raises `CaseNotFound`.

        `needs(case)` says which record kinds and trigger marks the command reads (default:
        all of them)."""

    @abc.abstractmethod
    def new_case_id(self) -> str: ...

    @abc.abstractmethod
    def participant(self, participant_id: str) -> Participant | None: ...


@frozen
class CaseFilter:
    coach: str | None = None
    state: str | None = None
    status: Status | None = None
    participant_id: str | None = None
    due_by: dt.date | None = None
    """Only open cases whose review falls due on or before this date."""
    limit: int | None = None


class Store(abc.ABC):
    @abc.abstractmethod
    def write(self, decide: Callable[[Tx], Change]) -> tuple[Case | None, Event]:
        """Run `decide` inside one write transaction and commit what it returns.

        Raises whatever `decide` raises (nothing is written), `CaseConflict` if the case's
        version moved, `StoreBusy` if the lock could not be had."""

    @abc.abstractmethod
    def batch(self) -> contextlib.AbstractContextManager[None]:
        """Group the writes inside into one transaction (one commit) for bulk loads. Each
        write stays atomic on its own: a refused one undoes only itself."""

    @abc.abstractmethod
    def read(self) -> Tx:
        """A `Tx` for dry runs (check, available): same reads, nothing written."""

    @abc.abstractmethod
    def case(self, case_id: str) -> Case: ...

    @abc.abstractmethod
    def cases(self, where: CaseFilter) -> Iterator[Case]: ...

    @abc.abstractmethod
    def records(self, case_id: str) -> list[Record]:
        """Every record of a case, superseded ones included, in the order recorded."""

    @abc.abstractmethod
    def record_rows(self) -> Iterator[RecordRow]:
        """Every row of the records table as kept, in seq order, streamed (for `verify`)."""

    @abc.abstractmethod
    def events(self, case_id: str | None = None, after_seq: int = 0) -> Iterator[Event]: ...

    @abc.abstractmethod
    def events_by_case(self) -> Iterator[Event]:
        """Every event that belongs to a case, ordered by case then seq (streamed)."""

    @abc.abstractmethod
    def count_cases(self) -> int: ...

    @abc.abstractmethod
    def event_rows(self, after_seq: int = 0) -> Iterator[Mapping[str, Any]]:
        """Stored event rows in seq order, exactly as kept (for verification)."""

    @abc.abstractmethod
    def head(self) -> tuple[int, str]:
        """The last event's seq and hash ((0, GENESIS) when empty)."""

    @abc.abstractmethod
    def head_workflow_hash(self) -> str | None:
        """The workflow hash the last event was written under (None when the log is empty).
        `write` refuses, with `WorkflowMismatch`, an event under another workflow unless it is
        a `workflow` event (the log moving to a new workflow on purpose)."""

    @abc.abstractmethod
    def list_staff(self) -> list[Staff]: ...

    @abc.abstractmethod
    def personal_details(self, participant_id: str) -> PersonalDetails | None: ...

    @abc.abstractmethod
    def store_id(self) -> str:
        """A random id fixed when the store was created (ties a checkpoint to its log)."""

    @abc.abstractmethod
    def close(self) -> None: ...

    def exposure(self) -> str | None:
        """Why others than its owner can read the store's personal data, or None."""
        return None

    def case_histories(
        self, workflow: Workflow, *, coach: str | None = None
    ) -> Iterator[CaseHistory]:
        """Every open case's history as service standards read it (`_standards`), `coach`'s
        cases only if given. A store may read less (only what `_standards.needs` names, plus
        pauses and resumes): the results must be the same."""
        pause, resume = pause_triggers(workflow)
        for case in self.cases(CaseFilter(coach=coach)):
            if not case.is_open:
                continue
            yield CaseHistory(
                case_id=case.id,
                coach=case.coach,
                happenings=happenings(self.events(case_id=case.id), workflow.records),
                pause_triggers=pause,
                resume_triggers=resume,
            )

    # --- exports (issue 4) ---------------------------------------------------------------

    @abc.abstractmethod
    def event_table(
        self,
        *,
        case_id: str | None = None,
        cases: CaseFilter | None = None,
        since: dt.datetime | None = None,
        before: dt.datetime | None = None,
        kinds: tuple[str, ...] | None = None,
        as_json: bool = False,
    ) -> Iterator[tuple[Any, ...]]:
        """Stored event rows exactly as kept, streamed in seq order from one cursor (exports
        read any size in constant memory): tuples in `_audit.FIELDS` order or, with `as_json`,
        1-tuples holding the row as one JSON object text with those keys in that order.

        `case_id` keeps one case's events; `cases` keeps the events of the cases it picks (by
        coach, state, status, participant; an empty filter picks every case, so events of no
        case are left out). `since` (inclusive) and `before` (exclusive) bound `effective_at`;
        `kinds` keeps only those event kinds."""

    @abc.abstractmethod
    def read_snapshot(self) -> contextlib.AbstractContextManager[None]:
        """Hold one consistent view of the store for the reads inside, so an export sees one
        moment of the log while others keep writing. Nothing may be written inside. A no-op
        inside a write transaction or batch (which already is one view)."""
