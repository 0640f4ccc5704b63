"""The engine: decides what a command does to a case, without touching storage or the clock.

Every function takes the case as read, the actor, `now` and what was asked, and returns a
`Change` (the case after, the audit event to append, the record to keep) or raises the
`SEFlowError` that says why not. The store applies a `Change` atomically. Every audit event
is drafted here, case events and the others (staff, erasure, export, workflow) alike, and
every "who may" is asked of `_policy` from here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from . import _policy as policy
from ._guards import GUARDS, GuardContext
from ._limits import day_of
from ._milestones import enrolment, logged
from ._model import (
    Case,
    Check,
    DatabaseSettings,
    EventDraft,
    EventKind,
    GuardResult,
    Override,
    Participant,
    Record,
    Role,
    Staff,
    Status,
    soft_only,
)
from ._projections import apply
from ._spells import OUTCOME_RECORD_KINDS, START_TRIGGER, record_problems
from ._workflow import TransitionSpec, Workflow
from .errors import (
    CaseClosed,
    CaseConflict,
    CasePaused,
    ClaimRefused,
    FutureEffectiveDate,
    GuardsFailed,
    InvalidInput,
    InvalidRecord,
    NotFound,
    PermissionDenied,
    TextAlreadyErased,
    TextNotFound,
    TriggerNotAvailable,
    UnknownRecordKind,
    UnknownTrigger,
    quoted,
)
from .ports import NOTHING, Change, Needs, RecordDraft, Snapshot

if TYPE_CHECKING:
    from ._outcomes import Programme

__all__ = ["JOBS", "NOTHING", "Change", "Engine", "Needs", "RecordDraft", "Snapshot"]


JOBS = Needs(kinds=OUTCOME_RECORD_KINDS, triggers=frozenset({START_TRIGGER}))
"""What a record of jobs or work reads: the case's jobs and work, to check it fits them."""

# The kind of event each transition effect writes.
_EFFECT_KINDS = {
    "move": EventKind.TRANSITION,
    "phase": EventKind.PHASE,
    "pause": EventKind.PAUSE,
    "resume": EventKind.RESUME,
}


_Guards = tuple[tuple[Callable[..., tuple[bool, str]], Mapping[str, Any], str, bool, str], ...]
"""A transition's guards as `Engine._evaluate` runs them: (function, parameters, name, soft,
title) each."""


class Engine:
    """Evaluates commands against one workflow definition (and its one `Machine`)."""

    def __init__(self, workflow: Workflow) -> None:
        self.workflow = workflow
        # What a trigger's guards read from a stage is the workflow's alone (every command
        # asks, the same few answers): worked out once each.
        self._needs_of: dict[tuple[str, str, str | None], Needs] = {}
        self._guards_of: dict[int, tuple[TransitionSpec, _Guards]] = {}
        # The transition a trigger takes from a stage (and phase), when it takes one: the
        # workflow's alone, asked by every command.
        self._spec_of: dict[tuple[str, str, str | None], TransitionSpec] = {}

    # --- guards and triggers -------------------------------------------------------------

    def _spec(self, case: Case, trigger: str) -> TransitionSpec:
        spec = self._spec_of.get((trigger, case.state, case.phase))
        status = case.status
        if spec is not None and status is Status.ACTIVE:
            # A known trigger, open from here; only a paused or closed case asks more.
            if spec.effect == "resume":
                raise self._not_available(case, trigger, why="it is not paused: nothing to resume")
            return spec
        return self._spec_refused(case, trigger)

    def _spec_refused(self, case: Case, trigger: str) -> TransitionSpec:
        """`_spec` the long way: every refusal, in the order a caller meets them."""
        wf = self.workflow
        if trigger not in wf.machine.events:
            raise UnknownTrigger(trigger, wf.triggers)
        if case.status is Status.CLOSED:
            raise CaseClosed(case.id, trigger)
        spec = wf.transition(trigger, case.state, case.phase)
        if spec is None:
            raise self._not_available(case, trigger)
        if case.status is Status.PAUSED and not spec.while_paused:
            raise CasePaused(case.id, trigger)
        if case.status is not Status.PAUSED and spec.effect == "resume":
            raise self._not_available(case, trigger, why="it is not paused: nothing to resume")
        self._spec_of[(trigger, case.state, case.phase)] = spec
        return spec

    def _not_available(
        self, case: Case, trigger: str, why: str | None = None
    ) -> TriggerNotAvailable:
        where = self._stage_words(case)
        if case.status is Status.PAUSED:
            where += ", paused"
        opened = [t.trigger for t in self._open(case)]
        return TriggerNotAvailable(
            case.id, trigger, self._where(case), opened, where=where, why=why
        )

    def _stage_words(self, case: Case) -> str:
        """The case's stage as a refusal says it: the stage data's number and title (and
        phase, where the stage has more than one), not its ids."""
        spec = self.workflow.states.get(case.state)
        where = case.state if spec is None else spec.title
        if spec is not None and spec.order:
            where = f"{spec.order} {where}"
        if case.phase and case.phase != case.state:
            where += f" ({case.phase.replace('_', ' ')})"
        return where

    def _where(self, case: Case) -> str:
        where = f"{case.state} ({case.phase})" if case.phase else case.state
        return f"{where}, paused" if case.status is Status.PAUSED else where

    def _open(self, case: Case) -> list[TransitionSpec]:
        if case.status is Status.CLOSED:
            return []
        specs = self.workflow.available(case.state, case.phase)
        if case.status is Status.PAUSED:
            return [s for s in specs if s.while_paused]
        return [s for s in specs if s.effect != "resume"]

    def _evaluate(self, spec: TransitionSpec, ctx: GuardContext) -> tuple[GuardResult, ...]:
        results = []
        for fn, params, name, soft, title in self._guards(spec):
            try:
                passed, why = fn(ctx, **params)
            except (TypeError, ValueError, ArithmeticError, AttributeError) as exc:
                # A record written under a workflow that typed its fields otherwise reads back
                # untyped; the guard cannot judge it, which is a failure, not a crash.
                passed = False
                why = f"cannot be checked: a record it reads does not fit this workflow ({exc})"
            results.append(GuardResult(name, passed, why, soft, title))
        return tuple(results)

    def _guards(self, spec: TransitionSpec) -> _Guards:
        """Each guard of `spec` as `_evaluate` runs it: its function and parameters, and what
        its result is called (looked up once per transition: every command asks)."""
        # By identity: the workflow holds its specs as long as the engine holds it (the spec
        # is kept beside them, so its id is never another's).
        kept = self._guards_of.get(id(spec))
        if kept is None or kept[0] is not spec:
            guards = tuple(
                (GUARDS[g.guard].fn, g.params, g.name, g.soft, g.title) for g in spec.guards
            )
            kept = self._guards_of[id(spec)] = (spec, guards)
        return kept[1]

    def _dest(self, case: Case, spec: TransitionSpec) -> str:
        return spec.dest or case.state

    def needs(self, case: Case, trigger: str) -> Needs:
        """What `trigger`'s guards read of this case (nothing, if the trigger is not open from
        here: `fire` refuses it in its own words without reading anything)."""
        key = (trigger, case.state, case.phase)
        need = self._needs_of.get(key)
        if need is None:
            spec = self.workflow.transition(trigger, case.state, case.phase)
            need = self._needs_of[key] = NOTHING if spec is None else self._needs([spec])
        return need

    def needs_open(self, case: Case) -> Needs:
        """What the guards of every trigger open from the case's stage read (`available`):
        on a case of thousands of records, the few kinds they look at."""
        return self._needs(self._open(case))

    def _needs(self, specs: Iterable[TransitionSpec]) -> Needs:
        need = NOTHING
        for spec in specs:
            for g in spec.guards:
                need |= GUARDS[g.guard].needs(g.params, self.workflow)
        return need

    def check(self, snap: Snapshot, ctx: GuardContext, trigger: str) -> Check:
        """A dry run of `fire`: what it would refuse before the guards (a closure for `other`
        with no note, a date before the stage was entered, a future date) refused here the
        same way, so a check that passes is a move that goes."""
        spec = self._spec(snap.case, trigger)
        self._check_effective(ctx.effective_at, ctx.now)
        self._refuse_before_guards(snap.case, spec, ctx, trigger)
        return Check(
            case_id=snap.case.id,
            trigger=trigger,
            source=snap.case.state,
            dest=self._dest(snap.case, spec),
            results=self._evaluate(spec, ctx),
            label=spec.title,
        )

    def available(self, snap: Snapshot, ctx: GuardContext) -> list[Check]:
        return [
            Check(
                case_id=snap.case.id,
                trigger=spec.trigger,
                source=snap.case.state,
                dest=self._dest(snap.case, spec),
                results=self._evaluate(spec, ctx),
                label=spec.title,
            )
            for spec in self._open(snap.case)
        ]

    def _refuse_before_guards(
        self, case: Case, spec: TransitionSpec, ctx: GuardContext, trigger: str
    ) -> None:
        """What `fire` (and `check`, its dry run) refuses whatever the guards say."""
        if spec.dest == self.workflow.final:
            # Here, not only in `close`: a library user firing the close trigger gets it too.
            self.workflow.check_closure_note(spec.outcome or ctx.outcome, ctx.reason)
        at = ctx.effective_at
        if at.date() < case.stage_entered_at.date():
            # A stage cannot be left before it was entered: stage spells would run backwards.
            raise InvalidInput(
                f"case {case.id}: {trigger} cannot take effect on {day_of(at)}, "
                f"before the case entered {self._stage_words(case)} "
                f"({day_of(case.stage_entered_at)})"
            )

    # --- commands ------------------------------------------------------------------------

    def fire(
        self,
        snap: Snapshot,
        ctx: GuardContext,
        trigger: str,
        *,
        override: str | None = None,
        expected_version: int | None = None,
    ) -> Change:
        case = snap.case
        wf = self.workflow
        actor = ctx.actor
        at = ctx.effective_at
        policy.may_write(actor, case.id)
        self._check_version(case, expected_version)
        self._check_effective(at, ctx.now)
        spec = self._spec(case, trigger)
        dest = spec.dest or case.state
        self._refuse_before_guards(case, spec, ctx, trigger)
        results = self._evaluate(spec, ctx)
        used_override: Override | None = None
        if override is not None and not override.strip():
            raise InvalidInput("an override needs a reason")
        failed = [r for r in results if not r.passed]
        if override is not None and not failed:
            # Dropped silently, the log would not show the override the actor asked for; kept,
            # it would show one that overrode nothing.
            raise InvalidInput(
                f"case {case.id}: nothing to override: every guard of {trigger} passes "
                "(fire it without the override)",
                field="override",
            )
        if failed:
            if override is None or not soft_only(results):
                raise GuardsFailed(case.id, trigger, results)
            policy.may_override(actor, failed, case.id)
            used_override = Override(by=actor.id, reason=override.strip())

        effect = spec.effect
        phase = case.phase
        payload: dict[str, Any] = {}
        if effect == "pause":
            # A stage folder may pause without a review_date guard; then none is kept.
            if ctx.review_date is not None:
                payload["review_date"] = ctx.review_date.isoformat()
        elif effect == "phase":
            phase = spec.to_phase
        elif dest == wf.final:
            # The final state has no phases (from_phase keeps the one the case closed from).
            phase = None
            payload["outcome"] = spec.outcome or ctx.outcome
        elif dest != case.state:
            stage = wf.states[dest]
            phase = stage.phases[0] if stage.phases else None
        event = EventDraft(
            case_id=case.id,
            kind=_EFFECT_KINDS[effect],
            actor=actor.id,
            role=actor.role.value,
            effective_at=at,
            recorded_at=ctx.now,
            workflow_hash=wf.hash,
            trigger=trigger,
            from_state=case.state,
            to_state=dest,
            from_phase=case.phase,
            to_phase=phase,
            reason=(ctx.reason or "").strip() or None,
            guards=results,
            override=used_override,
            payload=payload,
        )
        after = self._after(case, event)
        return Change(case=after, expected_version=case.version, event=event)

    def add_record(
        self,
        snap: Snapshot,
        kind: str,
        values: Mapping[str, Any],
        *,
        actor: Staff,
        now: dt.datetime,
        effective_at: dt.datetime,
        supersedes: int | None = None,
        expected_version: int | None = None,
    ) -> Change:
        case = snap.case
        policy.may_write(actor, case.id)
        self._check_version(case, expected_version)
        self._check_effective(effective_at, now)
        if case.status is Status.CLOSED:
            raise CaseClosed(case.id, f"record {kind}")
        if effective_at.date() < case.opened_at.date():
            # Evidence about a case that did not exist yet would reorder its history.
            raise InvalidInput(
                f"case {case.id}: a {kind} record cannot take effect on "
                f"{day_of(effective_at)}, before the case was opened ({day_of(case.opened_at)})"
            )
        fields = self.parse_record(kind, values, case.id)
        if supersedes is not None:
            old = next((r for r in snap.records if r.seq == supersedes), None)
            if old is None:
                raise InvalidRecord(
                    kind,
                    {
                        "supersedes": f"no current record {supersedes} on case {case.id} "
                        "(it may already be superseded)"
                    },
                    case.id,
                )
            if old.kind != kind:
                raise InvalidRecord(
                    kind,
                    {"supersedes": f"record {supersedes} is a {old.kind}, not a {kind}"},
                    case.id,
                )
        problems = record_problems(
            kind,
            fields,
            snap.records,
            last_start=snap.marks.get(START_TRIGGER),
            supersedes=supersedes,
            seq=max((r.seq for r in snap.records), default=0) + 1,
        )
        if problems:
            raise InvalidRecord(kind, problems, case.id)
        record = RecordDraft(kind=kind, fields=fields, supersedes=supersedes)
        event = EventDraft(
            case_id=case.id,
            kind=EventKind.RECORD,
            actor=actor.id,
            role=actor.role.value,
            effective_at=effective_at,
            recorded_at=now,
            workflow_hash=self.workflow.hash,
            from_state=case.state,
            to_state=case.state,
            from_phase=case.phase,
            to_phase=case.phase,
            payload=self.record_payload(record),
        )
        after = self._after(case, event)
        return Change(case=after, expected_version=case.version, event=event, record=record)

    def open_case(
        self,
        case_id: str,
        participant: Participant,
        referral: Mapping[str, Any],
        *,
        actor: Staff,
        now: dt.datetime,
        effective_at: dt.datetime,
        coach: str | None,
        previous: Case | None = None,
        new_participant: bool = True,
    ) -> Change:
        """A new case: a referral (state `initial`) or, given `previous`, a reopened episode."""
        # A refusal names no new case (the id it would have had is never made), only the case
        # being reopened.
        named = previous.id if previous is not None else None
        policy.may_write(actor, named)
        self._check_effective(effective_at, now)
        wf = self.workflow
        record_kind = wf.reopen.record if previous else wf.referral_kind
        fields = self.parse_record(record_kind, referral, named)
        if previous is not None:
            if previous.status is not Status.CLOSED:
                raise InvalidInput(
                    f"case {previous.id} is still open ({previous.state}); only a closed case "
                    "can be reopened"
                )
            if previous.closed_at is not None and effective_at.date() < previous.closed_at.date():
                # Two episodes of one participant must not overlap.
                raise InvalidInput(
                    f"case {previous.id}: a new episode cannot start on "
                    f"{day_of(effective_at)}, before the case was closed "
                    f"({day_of(previous.closed_at)})"
                )
            state, kind = wf.reopen.dest, EventKind.REOPEN
        else:
            state, kind = wf.initial, EventKind.REFERRAL
        stage = wf.states[state]
        record = RecordDraft(kind=record_kind, fields=fields)
        payload = self.record_payload(record)
        payload["participant_id"] = participant.id
        payload["coach"] = coach
        if previous is not None:
            payload["previous_case_id"] = previous.id
            payload["episode"] = previous.episode + 1
        event = EventDraft(
            case_id=case_id,
            kind=kind,
            actor=actor.id,
            role=actor.role.value,
            effective_at=effective_at,
            recorded_at=now,
            workflow_hash=wf.hash,
            trigger=kind,
            from_state=previous.state if previous else None,
            to_state=state,
            to_phase=stage.phases[0] if stage.phases else None,
            payload=payload,
        )
        case = apply(wf, None, event)
        assert case is not None
        return Change(
            case=case,
            expected_version=None,
            event=event,
            record=record,
            participant=participant if new_participant else None,
        )

    def assign(
        self, snap: Snapshot, coach: str, *, actor: Staff, now: dt.datetime, reason: str | None
    ) -> Change:
        case = snap.case
        policy.may_write(actor, case.id)
        if case.status is Status.CLOSED:
            raise CaseClosed(case.id, "assign")
        event = EventDraft(
            case_id=case.id,
            kind=EventKind.ASSIGN,
            actor=actor.id,
            role=actor.role.value,
            effective_at=now,
            recorded_at=now,
            workflow_hash=self.workflow.hash,
            from_state=case.state,
            to_state=case.state,
            reason=reason,
            payload={"from_coach": case.coach, "to_coach": coach},
        )
        return Change(case=self._after(case, event), expected_version=case.version, event=event)

    # --- outcomes: enrolment, milestones, claims -------------------------------------------

    def _case_event(
        self,
        case: Case,
        kind: EventKind,
        actor: Staff,
        now: dt.datetime,
        payload: Mapping[str, Any],
        *,
        effective_at: dt.datetime | None = None,
        reason: str | None = None,
    ) -> Change:
        # Its kind as its trigger: the store finds a case's enrolments, milestones and claims
        # by its (case, trigger) index, without walking the case's history.
        event = EventDraft(
            case_id=case.id,
            kind=kind,
            actor=actor.id,
            role=actor.role.value,
            effective_at=effective_at or now,
            recorded_at=now,
            workflow_hash=self.workflow.hash,
            trigger=kind.value,
            from_state=case.state,
            to_state=case.state,
            from_phase=case.phase,
            to_phase=case.phase,
            reason=reason,
            payload=payload,
        )
        return Change(case=self._after(case, event), expected_version=case.version, event=event)

    def enrol(
        self,
        snap: Snapshot,
        programme: Programme,
        *,
        actor: Staff,
        now: dt.datetime,
        effective_at: dt.datetime,
        reason: str | None = None,
    ) -> Change:
        """Put the case on `programme` (a definition at one version), or move it there from
        the one it is on (`snap.history` holds its enrolments)."""
        case = snap.case
        before = enrolment(snap.history)
        policy.may_write(actor, case.id)
        policy.may_enrol(actor, case.id, before.ref if before is not None else None)
        self._check_effective(effective_at, now)
        if case.status is Status.CLOSED:
            raise CaseClosed(case.id, "enrol")
        if before is not None and before.ref == programme.ref:
            raise InvalidInput(f"case {case.id} is already on {programme.ref}", field="programme")
        if effective_at.date() < case.opened_at.date():
            raise InvalidInput(
                f"case {case.id}: an enrolment cannot take effect on {day_of(effective_at)}, "
                f"before the case was opened ({day_of(case.opened_at)})"
            )
        payload = {
            "programme": programme.id,
            "version": programme.version,
            "from": before.ref if before is not None else None,
        }
        return self._case_event(
            case, EventKind.ENROL, actor, now, payload, effective_at=effective_at, reason=reason
        )

    def milestone(
        self, snap: Snapshot, payload: Mapping[str, Any], *, actor: Staff, now: dt.datetime
    ) -> Change:
        """The `milestone` event of one change (`_milestones.changes`), written by whoever made
        the write that caused it, in the same transaction."""
        policy.may_write(actor, snap.case.id)
        return self._case_event(snap.case, EventKind.MILESTONE, actor, now, payload)

    def claim(
        self,
        snap: Snapshot,
        programme: Programme,
        milestone: str,
        reference: str,
        *,
        actor: Staff,
        now: dt.datetime,
    ) -> Change:
        """Mark milestone `milestone` (its id, or an instance key such as `job_start:J7`)
        claimed under the funder's `reference`. Only a milestone the log holds as achieved on
        work evidence, not provisional, not already claimed or flagged, under a definition
        whose status is not `unverified`: else `ClaimRefused` naming everything missing."""
        from ._outcomes import MilestoneState

        case = snap.case
        policy.may_write(actor, case.id)
        policy.may_claim(actor, case.id)
        held = logged(snap.history, programme.ref)
        found = [h for h in held.values() if milestone in (h.key, h.milestone)]
        missing: list[str] = []
        if not reference.strip():
            missing.append("the funder's reference (--reference)")
        if programme.status == "unverified":
            missing.append(
                f"a verified definition: {programme.ref} is unverified (its parameters are not "
                "confirmed against the funder's source)"
            )
        spec = programme.milestone(milestone.partition(":")[0])
        if spec is None:
            known = ", ".join(m.id for m in programme.milestones)
            raise ClaimRefused(
                case.id, milestone, [f"{programme.ref} has no milestone {milestone!r} ({known})"]
            )
        if len(found) > 1:
            raise ClaimRefused(
                case.id,
                milestone,
                [f"name one instance: {', '.join(sorted(h.key for h in found))}"],
            )
        if not found:
            missing.append(f"the milestone reached: the log holds no {milestone} on this case")
            raise ClaimRefused(case.id, milestone, missing)
        (held_one,) = found
        if held_one.state == MilestoneState.PROVISIONAL:
            jobs = ", ".join(held_one.jobs) or "its job"
            missing.append(
                f"work evidence: it is provisional, resting on days estimated from contracted "
                f"hours up to {held_one.achieved_on}; record work_evidence for {jobs}"
            )
        if held_one.claim is not None:
            missing.append(
                f"nothing: it was claimed already on {held_one.claim.on} "
                f"(reference {held_one.claim.reference})"
            )
        if held_one.flag is not None:
            missing.append(
                "a person's resolution: the evidence has changed since it was reached "
                f"({held_one.flag_reason or 'flagged'})"
            )
        if missing:
            raise ClaimRefused(case.id, held_one.key, missing)
        spec = programme.milestone(held_one.milestone)
        window = spec.claim_within_days if spec is not None else None
        claim_by = (
            held_one.achieved_on + dt.timedelta(days=window)
            if window is not None and held_one.achieved_on is not None
            else None
        )
        # A closed case may still be claimed: a claim comes after the job is sustained, often
        # after support has ended.
        payload = {
            "programme": programme.ref,
            "milestone": held_one.milestone,
            "key": held_one.key,
            "reference": reference.strip(),
            "achieved_on": held_one.achieved_on.isoformat() if held_one.achieved_on else None,
            "band": held_one.band,
            "evidence": list(held_one.evidence),
            "milestone_seq": held_one.seq,
            "claim_by": claim_by.isoformat() if claim_by is not None else None,
        }
        return self._case_event(case, EventKind.CLAIM, actor, now, payload)

    def resolve(
        self,
        snap: Snapshot,
        programme: Programme,
        milestone: str,
        reason: str,
        *,
        actor: Staff,
        now: dt.datetime,
    ) -> Change:
        """A person's resolution of a claimed milestone the evidence has since changed
        (flagged): the log then holds the milestone as the evidence now says (or no longer
        reached), its claim kept beside it. A `claim` event with a `resolution`; a team
        leader or admin, with a reason."""
        case = snap.case
        policy.may_write(actor, case.id)
        policy.may_claim(actor, case.id)
        if not reason.strip():
            raise InvalidInput("a resolution needs a reason", field="reason")
        held = logged(snap.history, programme.ref)
        found = [h for h in held.values() if milestone in (h.key, h.milestone) and h.flag]
        if len(found) != 1:
            flagged = ", ".join(sorted(h.key for h in held.values() if h.flag)) or "none"
            raise InvalidInput(
                f"case {case.id}: {milestone} is not one flagged milestone to resolve "
                f"(flagged: {flagged})",
                field="milestone",
            )
        (h,) = found
        assert h.flag is not None
        state, achieved_on, band, jobs = h.flag
        payload = {
            "programme": programme.ref,
            "milestone": h.milestone,
            "key": h.key,
            "resolution": "accepted",
            "reason": reason.strip(),
            "state": state,
            "achieved_on": achieved_on.isoformat() if achieved_on else None,
            "band": band,
            "jobs": list(jobs),
            "was": {
                "state": h.state,
                "achieved_on": h.achieved_on.isoformat() if h.achieved_on else None,
                "band": h.band,
            },
            "reference": h.claim.reference if h.claim else None,
        }
        return self._case_event(case, EventKind.CLAIM, actor, now, payload, reason=reason)

    # --- events of no case ----------------------------------------------------------------

    def _system_event(
        self,
        kind: EventKind,
        actor: str,
        role: str,
        now: dt.datetime,
        payload: Mapping[str, Any],
        reason: str | None = None,
    ) -> EventDraft:
        return EventDraft(
            case_id=None,
            kind=kind,
            actor=actor,
            role=role,
            effective_at=now,
            recorded_at=now,
            workflow_hash=self.workflow.hash,
            reason=reason,
            payload=payload,
        )

    def add_staff(
        self,
        new: Staff,
        *,
        actor: str,
        by: Staff | None,
        before: Staff | None,
        active_admins: int,
        now: dt.datetime,
    ) -> Change:
        """Add staff member `new`, or make `before` (the same id, as read) into `new`. `by` is
        `actor` as read, or None while nobody is on the staff list: then `actor` sets se-flow
        up, and the event's role says `bootstrap`."""
        policy.may_manage_staff(by, before, new, active_admins)
        payload = {
            "staff_id": new.id,
            "name": new.name,
            "role": new.role.value,
            "active": new.active,
        }
        if new.login is not None:
            # Only when bound: staff events from before logins keep their old shape.
            payload["login"] = new.login
        role = by.role.value if by is not None else "bootstrap"
        event = self._system_event(EventKind.STAFF, actor, role, now, payload)
        return Change(case=None, expected_version=None, event=event, staff=new)

    def change_settings(
        self, before: DatabaseSettings, after: DatabaseSettings, *, by: Staff, now: dt.datetime
    ) -> Change:
        """Change the database's settings from `before` (as read) to `after`: the event holds
        all of them, so the log's last `setting` event is the whole truth."""
        policy.may_change_settings(by)
        if after == before:
            raise InvalidInput("the settings are already so: nothing to change")
        event = self._system_event(EventKind.SETTING, by.id, by.role.value, now, after.to_json())
        return Change(case=None, expected_version=None, event=event, settings=after)

    def erase_personal_data(
        self,
        participant_id: str,
        found: Participant | None,
        *,
        by: Staff,
        reason: str,
        now: dt.datetime,
        texts: Sequence[tuple[int, str]] = (),
    ) -> Change:
        """Erase the personal data of `participant_id` (`found`: the participant as read, None
        if there is none), and the free texts (seq, slot) of their cases still present."""
        policy.may_erase(by)
        if found is None:
            raise NotFound(f"no participant {quoted(participant_id)}")
        payload: dict[str, Any] = {"participant_id": participant_id}
        if texts:
            payload["texts"] = [[seq, slot] for seq, slot in texts]
        event = self._system_event(
            EventKind.ERASURE, by.id, by.role.value, now, payload, reason.strip()
        )
        return Change(
            case=None,
            expected_version=None,
            event=event,
            erase_personal_data_of=participant_id,
            erase_texts=tuple(texts),
        )

    def erase_text(
        self,
        seq: int,
        slot: str,
        slots: Mapping[str, bool] | None,
        *,
        by: Staff,
        reason: str,
        now: dt.datetime,
    ) -> Change:
        """Erase the free text of event `seq` in `slot` (`slots`: that event's texts as read,
        True if present; None if there is no such event). The event names it, never quotes."""
        policy.may_erase_text(by)
        if slots is None:
            raise TextNotFound(seq, slot, "there is no such event")
        if slot not in slots:
            held = ", ".join(sorted(slots))
            why = (
                f"the event keeps these apart: {held}"
                if held
                else "the event keeps no text apart (one written before se-flow kept free "
                "text apart holds it inside its hashed row, where it cannot be erased)"
            )
            raise TextNotFound(seq, slot, why)
        if not slots[slot]:
            raise TextAlreadyErased(seq, slot)
        payload = {"texts": [[seq, slot]]}
        event = self._system_event(
            EventKind.TEXT_ERASURE, by.id, by.role.value, now, payload, reason.strip()
        )
        return Change(case=None, expected_version=None, event=event, erase_texts=((seq, slot),))

    def grant_texts(
        self,
        target: Staff,
        granted: bool,
        was_granted: bool,
        *,
        by: Staff,
        reason: str,
        now: dt.datetime,
    ) -> Change:
        """Let auditor `target` see and export free texts (`granted`), or take that back."""
        policy.may_grant_texts(by)
        if target.role is not Role.AUDITOR:
            raise InvalidInput(
                f"{target.id} is not an auditor: only auditors have free texts withheld"
            )
        if granted == was_granted:
            state = "already granted" if granted else "not granted"
            raise InvalidInput(f"{target.id} has free texts {state}")
        payload = {"staff_id": target.id, "granted": granted}
        event = self._system_event(
            EventKind.TEXT_GRANT, by.id, by.role.value, now, payload, reason.strip()
        )
        return Change(case=None, expected_version=None, event=event)

    def adopt_workflow(
        self, logged: str | None, *, by: Staff, reason: str, now: dt.datetime
    ) -> Change:
        """Move the log on from workflow hash `logged` (the last one written under) to this
        engine's workflow."""
        policy.may_adopt_workflow(by)
        if logged is None or logged == self.workflow.hash:
            raise InvalidInput("the database is already under this workflow")
        payload = {"from": logged, "to": self.workflow.hash}
        event = self._system_event(
            EventKind.WORKFLOW, by.id, by.role.value, now, payload, reason.strip()
        )
        return Change(case=None, expected_version=None, event=event)

    def record_export(
        self,
        payload: Mapping[str, Any],
        *,
        by: Staff,
        started_as: Role,
        personal_data: bool,
        now: dt.datetime,
    ) -> Change:
        """The audit event of an export written as `by` (read again now) who started it as
        `started_as`; `payload` says what was written (files, hashes, chain head)."""
        policy.may_export(by, personal_data)
        if by.role is not started_as:
            raise PermissionDenied(
                f"{by.id}'s role changed during the export ({started_as.value} to "
                f"{by.role.value}); export again",
                by.id,
            )
        payload = {**payload, "personal_data": personal_data}
        event = self._system_event(EventKind.EXPORT, by.id, started_as.value, now, payload)
        return Change(case=None, expected_version=None, event=event)

    def record_report(self, payload: Mapping[str, Any], *, by: Staff, now: dt.datetime) -> Change:
        """The audit event of a report run by `by` (read again now): which report, period and
        format, its figures' totals and the SHA-256 of any file it wrote. A report is
        pseudonymised, so whoever may take a pseudonymised export may run one."""
        policy.may_export(by, False)
        event = self._system_event(EventKind.REPORT, by.id, by.role.value, now, payload)
        return Change(case=None, expected_version=None, event=event)

    def record_search(
        self,
        matched: Sequence[str],
        *,
        by: Staff,
        now: dt.datetime,
        duplicates: bool = False,
    ) -> Change:
        """The audit event of a search of participants by `by` (read again now) that showed
        the participants `matched` (pseudonyms). The text searched for is not kept: see
        `EventKind.SEARCH`. `duplicates`: the check for a likely duplicate a referral makes,
        open to whoever may refer and see personal data (an admin too), as it looks for the
        person being referred, not for someone else."""
        if duplicates:
            policy.may_see_personal_data(by)
        else:
            policy.may_find_people(by)
        payload: dict[str, Any] = {"matched": len(matched), "participants": list(matched)}
        if duplicates:
            payload["purpose"] = "duplicates"
        event = self._system_event(EventKind.SEARCH, by.id, by.role.value, now, payload)
        return Change(case=None, expected_version=None, event=event)

    # --- the policy, for reads and early checks, which draft no event ----------------------

    @staticmethod
    def may_read(by: Staff) -> None:
        policy.may_read(by)

    @staticmethod
    def may_start_sealing(by: Staff | None) -> None:
        policy.may_start_sealing(by)

    @staticmethod
    def writes_cases(by: Staff) -> bool:
        """Whether `by` may change cases at all (else a write is refused in its own words)."""
        return policy.permits(policy.may_write, by)

    @staticmethod
    def may_act_from(by: Staff, login: str | None, shared_terminal: bool) -> None:
        policy.may_act_from(by, login, shared_terminal)

    @staticmethod
    def may_change_settings(by: Staff) -> None:
        policy.may_change_settings(by)

    @staticmethod
    def shows_personal_data(by: Staff) -> bool:
        """Whether a read shows `by` personal details (else pseudonyms only: not a refusal)."""
        return policy.permits(policy.may_see_personal_data, by)

    @staticmethod
    def shows_text(by: Staff, granted: bool) -> bool:
        """Whether a read shows `by` free texts (else `WITHHELD` in their place)."""
        return policy.permits(policy.may_see_text, by, granted)

    @staticmethod
    def may_export(by: Staff, personal_data: bool) -> None:
        """Checked before an export writes anything, and again by `record_export`."""
        policy.may_export(by, personal_data)

    @staticmethod
    def may_find_people(by: Staff) -> None:
        """A search of participants by name or contact (`SEFlow.find`)."""
        policy.may_find_people(by)

    # --- helpers -------------------------------------------------------------------------

    def parse_record(
        self, kind: str, values: Mapping[str, Any], case_id: str | None
    ) -> dict[str, Any]:
        spec = self.workflow.records.get(kind)
        if spec is None:
            raise UnknownRecordKind(kind, sorted(self.workflow.records))
        fields, problems = spec.parse(values)
        if problems:
            raise InvalidRecord(kind, problems, case_id)
        return fields

    def record_payload(self, record: RecordDraft) -> dict[str, Any]:
        spec = self.workflow.records[record.kind]
        payload: dict[str, Any] = {
            "record": {"kind": record.kind, "fields": spec.to_json(record.fields)}
        }
        if record.supersedes is not None:
            payload["record"]["supersedes"] = record.supersedes
        return payload

    def _after(self, case: Case, event: EventDraft) -> Case:
        # The case a command writes is what replaying its event gives: one function for both.
        after = apply(self.workflow, case, event)
        assert after is not None
        return after

    @staticmethod
    def _check_version(case: Case, expected: int | None) -> None:
        if expected is None:
            return
        # A version given as text, or negative, is a caller's mistake, not a lost race.
        if type(expected) is not int or expected < 0:
            raise InvalidInput(
                f"expected_version must be a case version (a whole number, 0 or more), "
                f"not {expected!r}"[:120],
                field="expected_version",
            )
        if expected != case.version:
            raise CaseConflict(case.id, expected, case.version)

    @staticmethod
    def _check_effective(effective_at: dt.datetime, now: dt.datetime) -> None:
        if effective_at > now:
            raise FutureEffectiveDate(effective_at.isoformat(), now.isoformat())


def context(
    engine: Engine,
    snap: Snapshot,
    actor: Staff,
    now: dt.datetime,
    effective_at: dt.datetime | None = None,
    *,
    reason: str | None = None,
    review_date: dt.date | None = None,
    outcome: str | None = None,
) -> GuardContext:
    return GuardContext(
        case=snap.case,
        records=snap.records,
        marks=snap.marks,
        actor=actor,
        now=now,
        effective_at=effective_at or now,
        workflow=engine.workflow,
        reason=reason,
        review_date=review_date,
        outcome=outcome,
    )


def current(records: Sequence[Record]) -> tuple[Record, ...]:
    """The records not superseded by a later one."""
    gone = {r.supersedes for r in records if r.supersedes is not None}
    return tuple(r for r in records if r.seq not in gone)
