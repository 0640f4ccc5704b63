"""Milestones in the audit trail: a case's enrolment, the milestones and claims its log holds,
and the `milestone` events a write must append so the log keeps up with the evidence.

A case is on the programme (definition and version) its last `enrol` event names. After every
write to an enrolled case that outcomes read (`touches`) the facade evaluates the case's
milestones as the evidence stands on the write's day (`evaluate_case`) and appends, in the same
transaction, one `milestone` event per change against what the log already says (`changes`):

- `reached`: a milestone instance the log does not hold is reached (achieved or provisional);
- `changed`: one it holds, not claimed, now stands otherwise (provisional turned achieved, a
  correction moved its date or band, another job counts instead);
- `retracted`: one it holds, not claimed, is no longer reached (a correction took it away);
- `flagged`: a claimed one now evaluates otherwise (or not at all): the claimed milestone is
  kept as claimed and the difference is left for a person to resolve; `unflagged` when the
  evidence comes back to what was claimed.

What counts as a change is the milestone's signature: its state, `achieved_on`, band and jobs.
New evidence that changes none of them appends nothing. An instance is the milestone id, with
the job for a milestone counted once per job (`instance_key`).

`log_problem` is `verify`'s side: it replays a case's events, recomputes after each write
what should have been appended, and names the first event that disagrees. No I/O.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs
from attrs import frozen

from ._model import Case, Event, EventKind, Record
from ._projections import apply
from ._spells import OUTCOME_RECORD_KINDS, START_TRIGGER, build_employment, current_records
from ._workflow import Workflow

if TYPE_CHECKING:
    # The evaluator loads when outcomes are first asked for: listing cases never needs it.
    from ._outcomes import CaseFacts, Milestone, Programme

__all__ = [
    "HISTORY_TRIGGERS",
    "Claim",
    "Enrolment",
    "Logged",
    "OutcomeDue",
    "case_facts",
    "changes",
    "coming_up",
    "enrolment",
    "evaluate_case",
    "instance_key",
    "log_problem",
    "logged",
    "prior_counted",
    "read_kinds",
    "record_of",
    "touches",
]

HISTORY_TRIGGERS = frozenset(
    {START_TRIGGER, EventKind.ENROL.value, EventKind.MILESTONE.value, EventKind.CLAIM.value}
)
"""The triggers whose every event on a case outcomes read: job starts (which offers became
jobs), enrolments, milestones and claims. Those events carry their kind as their trigger, so
the store finds them by its (case, trigger) index."""

CHANGES = ("reached", "changed", "retracted", "flagged", "unflagged")


@frozen
class Enrolment:
    """The programme a case is on: definition `programme` at `version`, since event `seq`."""

    programme: str
    version: str
    seq: int
    on: dt.date
    by: str

    @property
    def ref(self) -> str:
        return f"{self.programme}@{self.version}"


@frozen
class Claim:
    reference: str
    by: str
    on: dt.date
    seq: int


@frozen
class Logged:
    """A milestone instance as the log holds it: reached (achieved or provisional) under
    `programme` (a ref), set by event `seq`; `claim` once claimed; `flag` the signature the
    evidence now gives when it differs from a claimed one (for a person to resolve)."""

    key: str
    milestone: str
    programme: str
    state: str
    achieved_on: dt.date | None
    band: str | None
    jobs: tuple[str, ...]
    evidence: tuple[int, ...]
    seq: int
    claim: Claim | None = None
    flag: tuple[Any, ...] | None = None
    flag_reason: str | None = None

    @property
    def signature(self) -> tuple[Any, ...]:
        return (self.state, self.achieved_on, self.band, self.jobs)


def enrolment(history: Iterable[Event]) -> Enrolment | None:
    """The case's enrolment: its last `enrol` event (None if it has none)."""
    found = None
    for e in history:
        if e.kind == EventKind.ENROL:
            found = e
    if found is None:
        return None
    p = found.payload
    return Enrolment(
        programme=str(p["programme"]),
        version=str(p["version"]),
        seq=found.seq,
        on=found.effective_at.date(),
        by=found.actor,
    )


def _day(value: Any) -> dt.date | None:
    return dt.date.fromisoformat(value) if isinstance(value, str) and value else None


def logged(history: Iterable[Event], programme: str | None = None) -> dict[str, Logged]:
    """The milestone instances the log holds as reached, by instance key, folding its
    `milestone` and `claim` events in order; only those under `programme` (a ref) if given."""
    from ._outcomes import MilestoneState

    held: dict[str, Logged] = {}
    for e in history:
        if e.kind not in (EventKind.MILESTONE, EventKind.CLAIM):
            continue
        p = e.payload
        if programme is not None and p.get("programme") != programme:
            continue
        key = str(p["key"])
        old = held.get(key)
        if e.kind == EventKind.CLAIM and p.get("resolution") and old is not None:
            # A person accepted what the evidence now says of a claimed milestone.
            if p.get("state") not in (MilestoneState.ACHIEVED, MilestoneState.PROVISIONAL):
                held.pop(key, None)
            else:
                held[key] = attrs.evolve(
                    old,
                    state=str(p["state"]),
                    achieved_on=_day(p.get("achieved_on")),
                    band=p.get("band"),
                    jobs=tuple(p.get("jobs") or ()),
                    flag=None,
                    flag_reason=None,
                )
            continue
        if e.kind == EventKind.CLAIM:
            if old is not None:
                held[key] = attrs.evolve(
                    old,
                    claim=Claim(
                        reference=str(p["reference"]),
                        by=e.actor,
                        on=e.effective_at.date(),
                        seq=e.seq,
                    ),
                )
            continue
        change = p.get("change")
        if change in ("reached", "changed"):
            held[key] = Logged(
                key=key,
                milestone=str(p["milestone"]),
                programme=str(p["programme"]),
                state=str(p["state"]),
                achieved_on=_day(p.get("achieved_on")),
                band=p.get("band"),
                jobs=tuple(p.get("jobs") or ()),
                evidence=tuple(p.get("evidence") or ()),
                seq=e.seq,
            )
        elif change == "retracted":
            held.pop(key, None)
        elif change == "flagged" and old is not None:
            held[key] = attrs.evolve(old, flag=_payload_signature(p), flag_reason=p.get("reason"))
        elif change == "unflagged" and old is not None:
            held[key] = attrs.evolve(old, flag=None, flag_reason=None)
    return held


def instance_key(programme: Programme, m: Milestone) -> str:
    """The id of a milestone instance: the milestone, with its job when counted per job."""
    spec = programme.milestone(m.id)
    if spec is not None and spec.once_per == "job" and m.jobs:
        return f"{m.id}:{','.join(m.jobs)}"
    return m.id


def _signature(m: Milestone | None) -> tuple[Any, ...]:
    if m is None or not m.reached:
        return ("not_reached", None, None, ())
    return (m.state.value, m.achieved_on, m.band, tuple(m.jobs))


def _payload_signature(p: Mapping[str, Any]) -> tuple[Any, ...]:
    from ._outcomes import MilestoneState

    state = str(p.get("state"))
    if state not in (MilestoneState.ACHIEVED, MilestoneState.PROVISIONAL):
        return ("not_reached", None, None, ())
    return (state, _day(p.get("achieved_on")), p.get("band"), tuple(p.get("jobs") or ()))


def _payload(
    programme: Programme, key: str, mid: str, change: str, m: Milestone | None, old: Logged | None
) -> dict[str, Any]:
    from ._outcomes import MilestoneState

    reached = m is not None and m.reached
    payload: dict[str, Any] = {
        "programme": programme.ref,
        "milestone": mid,
        "key": key,
        "change": change,
        "state": m.state.value if m is not None else MilestoneState.NOT_YET.value,
        "achieved_on": m.achieved_on.isoformat() if m is not None and m.achieved_on else None,
        "band": m.band if reached and m is not None else None,
        "jobs": list(m.jobs) if reached and m is not None else [],
        "evidence": list(m.evidence) if reached and m is not None else [],
        "reason": m.reason if m is not None else "no longer evaluated",
    }
    if m is not None and m.mean_weekly_hours is not None and reached:
        payload["mean_weekly_hours"] = str(m.mean_weekly_hours)
    if old is not None:
        payload["was"] = {
            "state": old.state,
            "achieved_on": old.achieved_on.isoformat() if old.achieved_on else None,
            "band": old.band,
            "seq": old.seq,
        }
    return payload


def changes(
    programme: Programme, evaluated: Sequence[Milestone], held: Mapping[str, Logged]
) -> list[dict[str, Any]]:
    """The payloads of the `milestone` events that bring the log (`held`, under `programme`)
    up to the evaluation, in the definition's order (instances the log holds that the
    evaluation no longer names come last)."""
    now: dict[str, Milestone] = {}
    order: list[str] = []
    for m in evaluated:
        key = instance_key(programme, m)
        if key not in order:
            order.append(key)
        if m.reached or key not in now:
            now[key] = m
    order += [k for k in held if k not in order]
    out: list[dict[str, Any]] = []
    for key in order:
        new, old = now.get(key), held.get(key)
        mid = new.id if new is not None else old.milestone if old is not None else key
        sig = _signature(new)
        if old is None:
            if new is not None and new.reached:
                out.append(_payload(programme, key, mid, "reached", new, None))
        elif old.claim is None:
            if new is None or not new.reached:
                out.append(_payload(programme, key, mid, "retracted", new, old))
            elif sig != old.signature:
                out.append(_payload(programme, key, mid, "changed", new, old))
        elif sig == old.signature:
            if old.flag is not None:
                out.append(_payload(programme, key, mid, "unflagged", new, old))
        elif sig != old.flag:
            out.append(_payload(programme, key, mid, "flagged", new, old))
    return out


def prior_counted(
    programme: Programme,
    others: Mapping[str, Sequence[Event]],
    before: int | None = None,
) -> dict[str, str]:
    """For `once_per = "participant"`: each milestone of `programme` the participant's other
    cases (`others`: case id to its milestone events) already hold as reached, and the first
    such case, from events before seq `before` (all, if None). What the write path reads from
    the store, `verify` from the log, so both give the same."""
    per_participant = {m.id for m in programme.milestones if m.once_per == "participant"}
    found: dict[str, tuple[int, str]] = {}
    for case_id, events in others.items():
        seen = [e for e in events if before is None or e.seq < before]
        for h in logged(seen, programme.ref).values():
            if h.milestone in per_participant and (
                h.milestone not in found or h.seq < found[h.milestone][0]
            ):
                found[h.milestone] = (h.seq, case_id)
    return {mid: case_id for mid, (_, case_id) in found.items()}


def touches(programme: Programme, workflow: Workflow, event: Event) -> bool:
    """Whether `event` can change what `programme` evaluates on its case: an enrolment or a
    claim, a `start_job` (a job taken up), or a record of a kind outcomes read (jobs, work,
    breaks, the referral, and the kinds the programme's `events` tests count). Only after
    such a write are milestones evaluated and logged, on the write path and in `verify` alike:
    time passing alone logs nothing until the next such write."""
    if event.kind in (EventKind.ENROL, EventKind.CLAIM):
        return True
    if event.kind == EventKind.TRANSITION:
        return event.trigger == START_TRIGGER
    record = event.payload.get("record")
    if not isinstance(record, Mapping):
        return False
    return str(record.get("kind")) in read_kinds(programme, workflow)


def read_kinds(programme: Programme, workflow: Workflow) -> frozenset[str]:
    """The record kinds whose records `programme`'s evaluation reads."""
    kinds = set(OUTCOME_RECORD_KINDS) | {workflow.referral_kind}
    for m in programme.milestones:
        if m.test != "events":
            continue
        kinds |= set(m.params.get("kinds") or ())
        if m.params.get("or_kind"):
            kinds.add(str(m.params["or_kind"]))
        if m.params.get("contacts"):
            kinds |= {k.name for k in workflow.records.values() if k.contact}
    return frozenset(kinds)


# --- evaluating a case from what the log holds ----------------------------------------------


def case_facts(
    workflow: Workflow,
    case: Case,
    records: Sequence[Record],
    starts: Sequence[int],
) -> CaseFacts:
    """What the evaluator reads of a case: its spells from its records and the seqs of its
    `start_job` events, its current records, its programme start (the referral date)."""
    from ._outcomes import CaseFacts

    employment = build_employment(records, starts)
    current, _ = current_records(records)
    referral = next((r for r in current if r.kind == workflow.referral_kind), None)
    return CaseFacts(
        employment=employment,
        programme_start=case.opened_at.date(),
        wages=workflow.minimum_wage,
        records=tuple(current),
        contact_kinds=frozenset(k.name for k in workflow.records.values() if k.contact),
        in_work_at_referral=referral.get("in_work_at_referral") if referral else None,
    )


def evaluate_case(
    programme: Programme,
    workflow: Workflow,
    case: Case,
    records: Sequence[Record],
    starts: Sequence[int],
    on: dt.date,
    *,
    project: bool = True,
    prior: Mapping[str, str] | None = None,
) -> tuple[Milestone, ...]:
    from ._outcomes import evaluate

    return evaluate(
        programme,
        case_facts(workflow, case, records, starts),
        on,
        project=project,
        prior=prior,
    )


def record_of(workflow: Workflow, e: Event) -> Record | None:
    """The record a case event carries in its payload, typed as the store reads it back."""
    raw = e.payload.get("record")
    if e.case_id is None or not isinstance(raw, Mapping):
        return None
    kind = str(raw.get("kind"))
    spec = workflow.records.get(kind)
    values = raw.get("fields") or {}
    return Record(
        seq=e.seq,
        case_id=e.case_id,
        kind=kind,
        fields=spec.from_json(values) if spec else values,
        effective_at=e.effective_at,
        recorded_at=e.recorded_at,
        actor=e.actor,
        supersedes=raw.get("supersedes"),
    )


_COMPARED = ("programme", "milestone", "key", "change", "state", "achieved_on", "band", "jobs")


def _same(logged_payload: Mapping[str, Any], want: Mapping[str, Any]) -> bool:
    return all(logged_payload.get(k) == want.get(k) for k in _COMPARED) and [
        int(s) for s in logged_payload.get("evidence") or ()
    ] == list(want.get("evidence") or ())


def log_problem(
    workflow: Workflow,
    programmes: Sequence[Programme],
    events: Sequence[Event],
    others: Mapping[str, Sequence[Event]] | None = None,
) -> tuple[int, str] | None:
    """Replay one case's events (in seq order) and recompute, after each write to it while
    enrolled, the milestone events that write had to append: the first `milestone` event that
    is not what the evidence gave, or the first one missing, as (seq, why); None when the log
    agrees. `others` are the milestone events of the participant's other cases (for
    `once_per = "participant"`)."""
    by_ref = {p.ref: p for p in programmes}
    case: Case | None = None
    records: list[Record] = []
    starts: list[int] = []
    history: list[Event] = []
    pending: list[dict[str, Any]] = []
    after: Event | None = None

    def missing() -> tuple[int, str]:
        assert after is not None
        want = pending[0]
        return (
            after.seq,
            f"case {after.case_id}: after event {after.seq} the log should hold a milestone "
            f"event ({want['change']} {want['key']} under {want['programme']}) and does not",
        )

    for e in events:
        if e.kind == EventKind.MILESTONE:
            if not pending or not _same(e.payload, pending[0]):
                want = (
                    f"{pending[0]['change']} {pending[0]['key']}"
                    if pending
                    else "no milestone event"
                )
                return (
                    e.seq,
                    f"case {e.case_id}: milestone event {e.seq} "
                    f"({e.payload.get('change')} {e.payload.get('key')}) is not what the "
                    f"evidence gives on {e.recorded_at.date()} ({want})",
                )
            pending.pop(0)
            history.append(e)
            continue
        if pending:
            return missing()
        case = apply(workflow, case, e)
        record = record_of(workflow, e)
        if record is not None:
            records.append(record)
        if e.trigger in HISTORY_TRIGGERS:
            history.append(e)
        if e.kind == EventKind.TRANSITION and e.trigger == START_TRIGGER:
            starts.append(e.seq)
        enrolled = enrolment(history)
        if enrolled is None or case is None:
            continue
        programme = by_ref.get(enrolled.ref)
        if programme is None:
            return (
                e.seq,
                f"case {e.case_id} is enrolled on {enrolled.ref}, which is not among the "
                "definitions loaded: its milestones cannot be recomputed",
            )
        if not touches(programme, workflow, e):
            continue
        after = e
        evaluated = evaluate_case(
            programme,
            workflow,
            case,
            records,
            starts,
            e.recorded_at.date(),
            project=False,
            prior=prior_counted(programme, others or {}, e.seq),
        )
        pending = changes(programme, evaluated, logged(history, programme.ref))
    if pending:
        return missing()
    return None


# --- what is coming up ------------------------------------------------------------------------


@frozen
class OutcomeDue:
    """A milestone of an enrolled case coming up (`what` = milestone: the date it would be
    reached at the current hours), or a claim whose window closes (`what` = claim: the last
    day to claim a milestone reached and not claimed yet; `overdue` once it has passed)."""

    case_id: str
    coach: str | None
    programme: str
    milestone: str
    what: str
    due_on: dt.date
    overdue: bool
    detail: str


def coming_up(
    programme: Programme,
    case: Case,
    evaluated: Sequence[Milestone],
    held: Mapping[str, Logged],
    today: dt.date,
    until: dt.date,
) -> list[OutcomeDue]:
    """What of one case falls due by `until`: milestones not yet reached whose projected date
    is from `today` to `until` (open cases only), and claims not yet made whose window
    (`claim_within_days` after `achieved_on`) closes by `until`, past ones too."""
    from ._outcomes import MilestoneState

    out: list[OutcomeDue] = []
    if case.is_open:
        for m in evaluated:
            when = m.projected_on
            if m.state is MilestoneState.NOT_YET and when is not None and today <= when <= until:
                out.append(
                    OutcomeDue(
                        case_id=case.id,
                        coach=case.coach,
                        programme=programme.ref,
                        milestone=instance_key(programme, m),
                        what="milestone",
                        due_on=when,
                        overdue=False,
                        detail=f"{m.title}: {m.reason}",
                    )
                )
    for h in held.values():
        spec = programme.milestone(h.milestone)
        if h.claim is not None or spec is None or spec.claim_within_days is None:
            continue
        if h.achieved_on is None:
            continue
        last = h.achieved_on + dt.timedelta(days=spec.claim_within_days)
        if last <= until:
            state = (
                "reached" if h.state == MilestoneState.ACHIEVED else "provisional: needs evidence"
            )
            out.append(
                OutcomeDue(
                    case_id=case.id,
                    coach=case.coach,
                    programme=programme.ref,
                    milestone=h.key,
                    what="claim",
                    due_on=last,
                    overdue=last < today,
                    detail=f"claim by {last} ({state} on {h.achieved_on}; "
                    f"se-flow claims mark {case.id} {h.key} --reference REF)",
                )
            )
    return sorted(out, key=lambda d: (d.due_on, d.milestone))
