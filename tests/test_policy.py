"""Who may do what: one policy module (`_policy`), asked by the engine, which drafts every
audit event. The table below is the rule a reader of the README relies on."""

from __future__ import annotations

import ast
import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import START, Steps
from hypothesis import given
from hypothesis import strategies as st

import se_flow
from se_flow import SEFlow
from se_flow._engine import Engine
from se_flow._model import Check, GuardResult, Role, Staff, soft_only
from se_flow._policy import (
    may_adopt_workflow,
    may_erase,
    may_export,
    may_find_people,
    may_manage_staff,
    may_override,
    may_read,
    may_see_personal_data,
    may_write,
    permits,
)
from se_flow.errors import GuardsFailed, PermissionDenied

SOFT = (GuardResult(guard="action_plan", passed=False, reason="none yet", soft=True),)


def _other(role: Role, active: bool = True) -> Staff:
    return Staff(id=f"other-{role.value}", name="Someone Else", role=role, active=active)


def _makes(role: Role) -> Callable[[Staff], None]:
    return lambda by: may_manage_staff(by, None, _other(role), active_admins=2)


def _changes(role: Role) -> Callable[[Staff], None]:
    def ask(by: Staff) -> None:
        before = _other(role)
        may_manage_staff(by, before, Staff(before.id, "New Name", role), active_admins=2)

    return ask


QUESTIONS: dict[str, Callable[[Staff], None]] = {
    "read": may_read,
    "see personal data": may_see_personal_data,
    "write": lambda by: may_write(by, "C-0001"),
    "override soft guards": lambda by: may_override(by, SOFT, "C-0001"),
    "erase personal data": may_erase,
    "export": lambda by: may_export(by, personal_data=False),
    "export personal data": lambda by: may_export(by, personal_data=True),
    "adopt a workflow": may_adopt_workflow,
    "search participants by name": may_find_people,
    "add a coach": _makes(Role.COACH),
    "make a team leader": _makes(Role.TEAM_LEADER),
    "make an admin": _makes(Role.ADMIN),
    "make an auditor": _makes(Role.AUDITOR),
    "change a coach": _changes(Role.COACH),
    "change an admin": _changes(Role.ADMIN),
    "change an auditor": _changes(Role.AUDITOR),
}

EVERY = set(QUESTIONS)
CASEWORK = {"read", "see personal data", "write", "export"}
STAFFING = {"add a coach", "make a team leader", "change a coach"}
# What an ACTIVE staff member of each role may do; an inactive one may do nothing.
MAY: dict[Role, set[str]] = {
    Role.COACH: CASEWORK | {"search participants by name"},
    Role.TEAM_LEADER: CASEWORK | STAFFING | {"override soft guards", "search participants by name"},
    # An admin runs the system, not cases: no override of a soft guard, no name search.
    Role.ADMIN: EVERY - {"override soft guards", "search participants by name"},
    Role.AUDITOR: {"read", "export"},
}


@pytest.mark.parametrize("active", [True, False], ids=["active", "inactive"])
@pytest.mark.parametrize("question", sorted(QUESTIONS))
@pytest.mark.parametrize("role", list(Role), ids=[r.value for r in Role])
def test_who_may(role: Role, question: str, active: bool) -> None:
    by = Staff(id="pat", name="Pat Doe", role=role, active=active)
    allowed = active and question in MAY[role]
    assert permits(QUESTIONS[question], by) is allowed
    if not allowed:
        with pytest.raises(PermissionDenied) as refused:
            QUESTIONS[question](by)
        assert refused.value.actor == "pat" and refused.value.exit_code == 7
        if not active:
            assert "no longer active" in str(refused.value) or "may not manage" in str(
                refused.value
            )


@pytest.mark.parametrize(
    ("question", "by", "words"),
    [
        (
            lambda by: may_write(by, "C-0001"),
            Role.AUDITOR,
            "pat is an auditor: auditors can read and verify, not change case C-0001",
        ),
        (
            lambda by: may_override(by, SOFT, "C-0001"),
            Role.ADMIN,
            "case C-0001: only a team leader may override soft guards (action_plan); "
            "pat is an admin",
        ),
        (may_erase, Role.TEAM_LEADER, "only an admin may erase personal data; pat is not"),
        (
            lambda by: may_export(by, personal_data=True),
            Role.COACH,
            "only an admin may export personal data; pat is a coach (exports are "
            "pseudonymised without it)",
        ),
        (may_adopt_workflow, Role.COACH, "only an admin may adopt a workflow; pat is not"),
        (_makes(Role.ADMIN), Role.TEAM_LEADER, "only an admin may make other-admin an admin"),
        (
            _changes(Role.AUDITOR),
            Role.TEAM_LEADER,
            "only an admin may change other-auditor, who is an auditor",
        ),
        (_makes(Role.COACH), Role.COACH, "pat may not manage staff (needs team leader or admin)"),
    ],
)
def test_a_refusal_says_the_rule(question: Callable[[Staff], None], by: Role, words: str) -> None:
    with pytest.raises(PermissionDenied) as refused:
        question(Staff(id="pat", name="Pat Doe", role=by))
    assert str(refused.value) == words


ADA = Staff(id="ada", name="Ada Admin", role=Role.ADMIN)


@pytest.mark.parametrize(
    ("after", "admins", "refusal"),
    [
        (Staff("ada", "Ada Admin", Role.COACH), 1, "cannot demote ada"),
        (Staff("ada", "Ada Admin", Role.ADMIN, active=False), 1, "cannot deactivate ada"),
        (Staff("ada", "Ada Admin", Role.COACH), 2, None),
        (Staff("ada", "Ada Admin", Role.ADMIN, active=False), 2, None),
        (Staff("ada", "Ada Lovelace", Role.ADMIN), 1, None),  # a rename keeps her an admin
    ],
)
def test_the_last_active_admin_stays_one(after: Staff, admins: int, refusal: str | None) -> None:
    # Whoever asks: the admin herself, or another admin (counted in `admins`).
    for by in (ADA, Staff("bea", "Bea Admin", Role.ADMIN)):
        if refusal is None:
            may_manage_staff(by, ADA, after, admins)
        else:
            with pytest.raises(PermissionDenied, match=f"{refusal}: they are the last active"):
                may_manage_staff(by, ADA, after, admins)


def test_an_inactive_admin_may_be_demoted_even_if_one_admin_is_left() -> None:
    gone = Staff("bea", "Bea Admin", Role.ADMIN, active=False)
    may_manage_staff(ADA, gone, Staff("bea", "Bea Admin", Role.COACH, active=False), 1)


@pytest.mark.parametrize("role", list(Role))
def test_anyone_sets_up_the_first_staff_member(role: Role) -> None:
    may_manage_staff(None, None, _other(role), active_admins=0)


# --- the engine asks the policy, and the API asks the engine ----------------------------------


@pytest.fixture
def bea(flow: SEFlow) -> str:
    """A second admin, no longer active (ada stays the active one)."""
    flow.add_staff("bea", "Bea Admin", "admin", actor="ada")
    flow.add_staff("bea", "Bea Admin", "admin", actor="ada", active=False)
    return "bea"


def test_an_inactive_admin_may_not_erase(flow: SEFlow, steps: Steps, bea: str) -> None:
    case = steps.refer()
    head = flow.store.head()
    with pytest.raises(PermissionDenied, match=r"^bea is no longer active staff$"):
        flow.erase_personal_data(case.participant_id, reason="asked", actor=bea)
    assert flow.store.head() == head
    assert flow.participant(case.participant_id, actor="ada").details is not None


def test_erasure_asks_permission_before_looking_the_participant_up(flow: SEFlow) -> None:
    # A coach learns nothing of which participants exist.
    with pytest.raises(PermissionDenied, match="only an admin may erase"):
        flow.erase_personal_data("P-0000000000", reason="asked", actor="sam")


@pytest.mark.parametrize(
    ("actor", "refusal", "words"),
    [
        ("zed", PermissionDenied, "^zed is not on the staff list$"),
        ("sam", PermissionDenied, "^only an admin may adopt a workflow; sam is not$"),
        ("bea", PermissionDenied, "^bea is no longer active staff$"),
        ("ada", se_flow.InvalidInput, "already under this workflow"),
    ],
)
def test_who_may_adopt_a_workflow(
    flow: SEFlow, bea: str, actor: str, refusal: type[Exception], words: str
) -> None:
    head = flow.store.head()
    with pytest.raises(refusal, match=words):
        flow.adopt_workflow(reason="new stage data", actor=actor)
    assert flow.store.head() == head


def test_an_inactive_team_leader_may_not_override(flow: SEFlow, steps: Steps) -> None:
    # (An admin may not either: test_journey.)
    case = steps.to("vocational_profiling")
    steps.hard(case.id, "vocational_profiling")
    flow.add_staff("lee", "Lee Leader", "team_leader", actor="ada", active=False)
    with pytest.raises(PermissionDenied, match=r"^lee is no longer active staff$"):
        flow.advance(case.id, "start_job_search", override="advice booked", actor="lee")
    assert flow.case(case.id).state == "vocational_profiling"


def test_an_export_whose_actor_changed_role_meanwhile_is_not_logged(flow: SEFlow) -> None:
    engine = Engine(flow.workflow)
    now = START + dt.timedelta(days=1)
    lee = Staff("lee", "Lee Leader", Role.TEAM_LEADER)
    change = engine.record_export(
        {"export_id": "x"}, by=lee, started_as=Role.TEAM_LEADER, personal_data=False, now=now
    )
    assert change.event.kind == "export" and change.event.role == "team_leader"
    assert dict(change.event.payload) == {"export_id": "x", "personal_data": False}
    demoted = Staff("lee", "Lee Leader", Role.COACH)
    with pytest.raises(PermissionDenied, match="lee's role changed during the export"):
        engine.record_export(
            {}, by=demoted, started_as=Role.TEAM_LEADER, personal_data=False, now=now
        )
    with pytest.raises(PermissionDenied, match="only an admin may export personal data"):
        engine.record_export({}, by=lee, started_as=Role.TEAM_LEADER, personal_data=True, now=now)


def test_the_first_staff_member_is_logged_as_bootstrap(tmp_path: Path) -> None:
    with se_flow.open(tmp_path / "t.db") as fresh:
        fresh.add_staff("ada", "Ada Admin", "admin", actor="setup")
        (event,) = fresh.events(actor="ada")
    assert (event.kind, event.actor, event.role) == ("staff", "setup", "bootstrap")
    assert dict(event.payload) == {
        "staff_id": "ada",
        "name": "Ada Admin",
        "role": "admin",
        "active": True,
    }


# --- one source: the engine drafts every event and is the one caller of the rules ------------

PACKAGE = Path(se_flow.__file__).parent


def _calls_and_imports(path: Path) -> tuple[list[int], set[str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    drafts = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and (
            (isinstance(node.func, ast.Name) and node.func.id == "EventDraft")
            or (isinstance(node.func, ast.Attribute) and node.func.attr == "EventDraft")
        )
    ]
    from_policy: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "_policy":
            from_policy |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and any(a.name == "_policy" for a in node.names):
            from_policy.add("*")  # the module itself: all its rules
    return drafts, from_policy


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_only_the_engine_drafts_events_and_asks_the_policy(path: Path) -> None:
    drafts, from_policy = _calls_and_imports(path)
    # The store contract drafts raw events on purpose: it tests stores, below the engine.
    if path.name in ("_engine.py", "_model.py", "contract.py"):
        return
    assert drafts == [], f"{path.name} drafts an audit event itself (lines {drafts})"
    # Who is asking is looked up by whoever opens the transaction; what they may do is asked
    # of the engine.
    assert from_policy <= {"acting"}, f"{path.name} asks the policy itself: {from_policy}"


def test_the_ast_check_would_catch_a_draft(tmp_path: Path) -> None:
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text(
        "from ._policy import may_write\nfrom . import _model\ne = _model.EventDraft(kind='x')\n"
    )
    assert _calls_and_imports(sneaky) == ([3], {"may_write"})


# --- one predicate: blocked only by soft guards ----------------------------------------------

results = st.lists(
    st.builds(
        GuardResult,
        guard=st.sampled_from(["a", "b", "c"]),
        passed=st.booleans(),
        reason=st.just("why"),
        soft=st.booleans(),
    ),
    max_size=5,
).map(tuple)


@given(results)
def test_check_refusal_and_engine_agree_on_soft_only(found: tuple[GuardResult, ...]) -> None:
    failed = [r for r in found if not r.passed]
    expected = bool(failed) and all(r.soft for r in failed)
    assert soft_only(found) is expected
    assert Check("C-1", "t", "s", "d", found).overridable is expected
    if failed:
        refusal = GuardsFailed("C-1", "t", found)
        assert refusal.soft_only is expected
        assert ("a team leader may override" in str(refusal)) is expected
