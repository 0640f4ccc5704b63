"""A stage folder is checked as a whole when loaded: every fault is reported at once, each with
the name of the check it failed; a valid folder of a service's own works without code changes."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import threading
from pathlib import Path

import pytest
from helpers import LEAST_EVIDENCE, START, Clock

import se_flow
from se_flow import Fault, Status

ACTIVE = [
    "referred",
    "customer_engagement",
    "vocational_profiling",
    "employer_engagement",
    "job_matching",
    "in_work_support",
]


@pytest.fixture
def stages(tmp_path: Path) -> Path:
    """A private copy of the default stage folder, to break or customise."""
    folder = tmp_path / "stages"
    shutil.copytree(se_flow.default_stages_dir(), folder, ignore=shutil.ignore_patterns("*.py*"))
    return folder


def edit(folder: Path, name: str, old: str, new: str, count: int = 1) -> None:
    """Replace `old` in one file; fails if the default data no longer says `old` as expected."""
    path = folder / name
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == count, f"{name} holds {old!r} {text.count(old)} times"
    path.write_text(text.replace(old, new), encoding="utf-8")


def faults_of(folder: Path) -> tuple[Fault, ...]:
    with pytest.raises(se_flow.WorkflowInvalid) as invalid:
        se_flow.load_workflow(folder)
    assert invalid.value.source == str(folder)
    assert invalid.value.exit_code == 3
    assert f"has {len(invalid.value.faults)} fault(s)" in str(invalid.value)
    return invalid.value.faults


def has(faults: tuple[Fault, ...], check: str, *words: str) -> bool:
    return any(f.check == check and all(w in f.message for w in words) for f in faults)


def test_the_default_folder_is_valid(stages: Path) -> None:
    wf = se_flow.load_workflow(stages)
    assert wf.hash == se_flow.load_workflow().hash
    assert [s.id for s in wf.stages] == ACTIVE[1:]
    assert (wf.initial, wf.final) == ("referred", "closed")


def test_every_fault_is_reported_at_once(stages: Path) -> None:
    # Explicit sources instead of "*", so a state can be left without a way out.
    edit(stages, "exits.toml", 'source = "*"', f"source = {[*ACTIVE, 'orphan']!r}", count=5)
    edit(stages, "02_vocational_profiling.toml", "review_days = 14", "review_days = -7")
    (stages / "06_extra.toml").write_text(
        """
[states.waiting_list]
title = "Waiting list"
review_days = 30

[states.orphan]
title = "Nobody gets here"
review_days = 0

[records.horoscope_reading]
title = "Horoscope"
fields.sign = { type = "colour" }

[[transitions]]
trigger = "wait"
source = "referred"
dest = "waiting_list"
guards = [{ guard = "telepathy" }, { guard = "record", kind = "horoscope" }]

[[transitions]]
trigger = "resurrect"
source = "closed"
dest = "referred"
outcome = "back"
""",
        encoding="utf-8",
    )
    (stages / "07_broken.toml").write_text('[stage\nid = "half"\n', encoding="utf-8")

    faults = faults_of(stages)
    expected = [
        ("files_readable", "07_broken.toml"),
        ("field_types_known", "horoscope_reading.sign", "'colour'"),
        ("guards_exist", "wait", "'telepathy'"),
        ("record_kinds_exist", "wait", "'horoscope'"),
        ("final_state_has_no_exits", "resurrect", "'closed'"),
        ("every_state_reachable", "'orphan'"),
        ("every_state_can_close", "'waiting_list'", "dead end"),
        ("review_cadence_valid", "vocational_profiling", "-7"),
        ("review_cadence_valid", "orphan", "got 0"),
    ]
    for check, *words in expected:
        assert has(faults, check, *words), f"no {check} fault naming {words} in {faults}"
    assert len(faults) == len(expected), faults


def test_guard_parameters_are_checked(stages: Path) -> None:
    edit(
        stages,
        "01_customer_engagement.toml",
        '{ guard = "record", kind = "first_meeting", title = "First meeting held" }',
        '{ guard = "record", kind = "first_meeting", colour = "red" }, '
        '{ guard = "field_equals", kind = "informed_choice", field = "mood" }, '
        '{ guard = "role", role = "wizard" }',
    )
    edit(stages, "exits.toml", 'record = "referral"', 'record = "invitation"')
    faults = faults_of(stages)
    assert has(faults, "guard_params_valid", "start_profiling", "unknown parameter 'colour'")
    assert has(faults, "guard_params_valid", "missing parameter 'value'")
    assert has(faults, "guard_params_valid", "'mood', which is not a field of informed_choice")
    assert has(faults, "guard_params_valid", "role 'wizard' is not a role")
    assert has(faults, "record_kinds_exist", "[reopen]", "'invitation'")
    assert len(faults) == 5, faults


def test_structure_faults(stages: Path) -> None:
    (stages / "08_more.toml").write_text(
        """
[workflow]
name = "second header"
initial = "referred"
final = "closed"

[[transitions]]
trigger = "engage"
source = "referred"
dest = "customer_engagement"
effect = "teleport"
when = "always"

[[transitions]]
trigger = "gone"
source = "referred"
dest = "closed"

[records.note]
fields.text = { type = "text" }

[records.empty]
title = "Nothing"
""",
        encoding="utf-8",
    )
    faults = faults_of(stages)
    assert has(faults, "one_initial_state", "08_more.toml", "workflow.toml")
    assert has(faults, "effects_known", "'teleport'")
    assert has(faults, "transition_keys_known", "'when'")
    assert has(faults, "triggers_unambiguous", "engage from referred")
    assert has(faults, "closures_have_outcome", "gone")
    assert has(faults, "record_kinds_unique", "'note'")
    assert has(faults, "record_kinds_have_fields", "'empty'")
    assert len(faults) == 7, faults


def test_a_missing_or_empty_folder(tmp_path: Path) -> None:
    assert has(faults_of(tmp_path / "nowhere"), "folder_exists", "is not a folder")
    (tmp_path / "empty").mkdir()
    assert has(faults_of(tmp_path / "empty"), "folder_exists", "no .toml files")


def test_open_refuses_a_broken_folder_and_creates_nothing(stages: Path, tmp_path: Path) -> None:
    edit(stages, "03_employer_engagement.toml", 'guard = "reason"', 'guard = "hunch"')
    with pytest.raises(se_flow.WorkflowInvalid) as invalid:
        se_flow.open(tmp_path / "new.db", stages=stages)
    assert [f.check for f in invalid.value.faults] == ["guards_exist"]
    assert "revise_goals" in invalid.value.faults[0].message
    assert not (tmp_path / "new.db").exists()


def test_a_service_can_use_its_own_stages(stages: Path, tmp_path: Path, clock: Clock) -> None:
    """Renamed stage and trigger, a soft guard dropped and a hard one added: no code changed."""
    first = "01_customer_engagement.toml"
    edit(stages, first, 'id = "customer_engagement"', 'id = "welcome"')
    edit(stages, first, 'dest = "customer_engagement"', 'dest = "welcome"')
    edit(stages, first, 'source = "customer_engagement"', 'source = "welcome"')
    edit(
        stages,
        first,
        '  { guard = "record", kind = "action_plan", soft = true, '
        'title = "Action plan agreed" },\n',
        "",
    )
    edit(
        stages,
        first,
        '{ guard = "record", kind = "referral", title = "Referral recorded (date and source)" },',
        '{ guard = "record", kind = "referral" }, { guard = "record", kind = "note" },',
    )
    edit(stages, "exits.toml", 'dest = "customer_engagement"', 'dest = "welcome"')
    edit(stages, "exits.toml", 'trigger = "close"', 'trigger = "shut"')
    edit(stages, "workflow.toml", 'close = "close"', 'close = "shut"')

    wf = se_flow.load_workflow(stages)
    assert wf.stages[0].id == "welcome"
    assert "customer_engagement" not in wf.states
    assert wf.hash != se_flow.load_workflow().hash

    with se_flow.open(tmp_path / "own.db", stages=stages, clock=clock, actor="sam") as flow:
        flow.add_staff("sam", "Sam Coach", "coach", actor="sam")
        case = flow.refer("Alex Doe", source="GP").case
        with pytest.raises(se_flow.GuardsFailed) as refused:
            flow.advance(case.id, "engage")
        assert [(r.guard, r.reason) for r in refused.value.failed] == [
            ("record:note", "no case note recorded")
        ]
        flow.record(case.id, "note", text="called back")
        case = flow.advance(case.id, "engage").case
        assert case.state == "welcome"
        assert case.review_due == START.date() + dt.timedelta(days=14)
        for kind, values in LEAST_EVIDENCE["customer_engagement"].hard:
            flow.record(case.id, kind, values)
        case = flow.advance(case.id, "start_profiling").case  # no action plan needed here
        assert case.state == "vocational_profiling"
        assert {e.workflow_hash for e in flow.history(case.id)} == {wf.hash}

        with pytest.raises(se_flow.UnknownTrigger):
            flow.advance(case.id, "close", outcome="moved_away")
        case = flow.advance(case.id, "shut", outcome="moved_away", reason="to Leeds").case
        assert (case.status, case.outcome) == (Status.CLOSED, "moved_away")
        again = flow.reopen(case.id, source="self").case
        assert (again.state, again.episode) == ("welcome", 2)
        assert flow.verify().ok


def test_a_service_may_pause_without_a_review_date(
    stages: Path, tmp_path: Path, clock: Clock
) -> None:
    edit(
        stages,
        "exits.toml",
        'guards = [{ guard = "reason", title = "Reason given" }, '
        '{ guard = "review_date", title = "Review date set" }]',
        'guards = [{ guard = "reason", title = "Reason given" }]',
    )
    with se_flow.open(tmp_path / "own.db", stages=stages, clock=clock, actor="sam") as flow:
        flow.add_staff("sam", "Sam Coach", "coach", actor="sam")
        case = flow.refer("Alex Doe", source="GP").case
        paused = flow.advance(case.id, "pause", reason="on holiday").case
        assert (paused.status, paused.review_due) == (Status.PAUSED, case.review_due)
        assert "review_date" not in flow.history(case.id)[-1].payload
        assert flow.resume(case.id).case.status is Status.ACTIVE


# --- stage folders that once passed validation and then crashed or hung ---------------------


def test_arrays_nested_thousands_deep_are_a_fault(stages: Path) -> None:
    (stages / "06_deep.toml").write_text("x = " + "[" * 2000 + "]" * 2000 + "\n", encoding="utf-8")
    (stages / "07_deepish.toml").write_text("x = " + "[" * 200 + "]" * 200 + "\n", encoding="utf-8")
    faults = faults_of(stages)
    assert has(faults, "stage_data_well_formed", "06_deep.toml", "more than 16 deep")
    assert has(faults, "stage_data_well_formed", "07_deepish.toml", "more than 16 deep")


def faults_without_hanging(folder: Path) -> tuple[Fault, ...]:
    """`faults_of`, run where a loader that blocks (on a FIFO) or reads forever (/dev/zero)
    fails the test instead of hanging the run."""
    found: list[tuple[Fault, ...]] = []
    worker = threading.Thread(target=lambda: found.append(faults_of(folder)), daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive(), "loading the folder hung"
    return found[0]


def test_a_fifo_named_toml_is_never_opened(stages: Path) -> None:
    os.mkfifo(stages / "06_pipe.toml")
    faults = faults_without_hanging(stages)
    assert has(faults, "files_regular", "06_pipe.toml", "not a regular file")


def test_a_link_to_a_device_and_an_oversized_file_are_faults(stages: Path) -> None:
    (stages / "06_zero.toml").symlink_to("/dev/zero")
    (stages / "07_big.toml").write_text("# padding\n" * 200_000, encoding="utf-8")
    faults = faults_without_hanging(stages)
    assert has(faults, "files_regular", "06_zero.toml")
    assert has(faults, "files_small", "07_big.toml", "1,048,576")


@pytest.mark.parametrize("days", ["99999999999", "3661", "0"])
def test_review_days_are_bounded(stages: Path, days: str) -> None:
    edit(stages, "02_vocational_profiling.toml", "review_days = 14", f"review_days = {days}")
    assert has(faults_of(stages), "review_cadence_valid", "vocational_profiling", "3,660")


def test_close_reasons_must_be_names(stages: Path) -> None:
    edit(
        stages, "exits.toml", 'close_reasons = ["ineligible",', 'close_reasons = [42, "ineligible",'
    )
    assert has(faults_of(stages), "names_are_text", "close_reasons", "42")


def test_guard_counts_must_be_whole_numbers(stages: Path) -> None:
    edit(stages, "exits.toml", "min_attempts = 3", 'min_attempts = "three"')
    assert has(faults_of(stages), "guard_params_valid", "min_attempts", "'three'")


def test_a_byte_order_mark_is_accepted(stages: Path) -> None:
    path = stages / "exits.toml"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert se_flow.load_workflow(stages).hash == se_flow.load_workflow().hash


def test_a_guardless_self_loop_is_a_fault(stages: Path) -> None:
    (stages / "06_loop.toml").write_text(
        '[[transitions]]\ntrigger = "spin"\nsource = "job_matching"\ndest = "job_matching"\n',
        encoding="utf-8",
    )
    assert has(faults_of(stages), "no_idle_self_loops", "06_loop.toml: spin", "job_matching")
