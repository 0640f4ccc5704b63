"""The shape of stage data: an unknown key, a missing one or a value of the wrong type is a fault
naming the file and the key path (with a did-you-mean hint for a typo), every one at once; and
the names the library's code uses come from the stage data's `[workflow.names]`."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
from helpers import LEAST_EVIDENCE, Clock, Steps
from test_export import read_csv
from test_workflow_validation import edit, faults_of, has

import se_flow
from se_flow import Status

# Every event stores it: a change makes every existing database a workflow mismatch, so it
# changes only on purpose (with a CHANGELOG line saying `se-flow workflow adopt` is needed).
# 0.1 was 1c890c1e...; this round's service standards and calendar, and the outcome record
# kinds and the wage table's age bands, then the reports' contact and employer-contact
# fields (issue 14), made it this.
DEFAULT_HASH = "827a8b2724cd7881cf63d2237e87476b86e234d617816aaaf628d37665745b8c"


@pytest.fixture
def stages(tmp_path: Path) -> Path:
    folder = tmp_path / "stages"
    shutil.copytree(se_flow.default_stages_dir(), folder, ignore=shutil.ignore_patterns("*.py*"))
    return folder


def test_the_default_workflow_keeps_its_hash() -> None:
    assert se_flow.load_workflow().hash == DEFAULT_HASH


TYPOS = [
    (
        "workflow.toml",
        'initial = "referred"',
        'inital = "referred"',
        "workflow_keys_known",
        "workflow.toml: workflow: unknown key 'inital' (did you mean 'initial'?)",
    ),
    (
        "workflow.toml",
        'referral = "referral"',
        'referal = "referral"',
        "names_keys_known",
        "workflow.toml: workflow.names: unknown key 'referal' (did you mean 'referral'?)",
    ),
    (
        "02_vocational_profiling.toml",
        "review_days = 14",
        "review_dyas = 14",
        "stage_keys_known",
        "02_vocational_profiling.toml: stage: unknown key 'review_dyas' "
        "(did you mean 'review_days'?)",
    ),
    (
        "03_employer_engagement.toml",
        'dest = "vocational_profiling"',
        'dset = "vocational_profiling"',
        "transition_keys_known",
        "03_employer_engagement.toml: transitions[1]: unknown key 'dset' (did you mean 'dest'?)",
    ),
    (
        "03_employer_engagement.toml",
        '[{ guard = "reason", title = "Reason given" }]',
        '[{ guard = "reason", titel = "Reason given" }]',
        "guard_params_valid",
        "03_employer_engagement.toml: revise_goals: transitions[1].guards[0]: guard reason: "
        "unknown parameter 'titel' (takes: none; did you mean 'title'?)",
    ),
    (
        "03_employer_engagement.toml",
        'title = "Job analysis"',
        'titel = "Job analysis"',
        "record_keys_known",
        "03_employer_engagement.toml: records.job_analysis: unknown key 'titel' "
        "(did you mean 'title'?)",
    ),
    (
        "03_employer_engagement.toml",
        'fields.role = { type = "str" }',
        'fields.role = { type = "str", requried = false }',
        "field_keys_known",
        "03_employer_engagement.toml: records.job_analysis.fields.role: unknown key 'requried' "
        "(did you mean 'required'?)",
    ),
    (
        "exits.toml",
        "[reopen]\ndest",
        "[reopen]\ndets",
        "reopen_keys_known",
        "exits.toml: reopen: unknown key 'dets' (did you mean 'dest'?)",
    ),
    (
        "exits.toml",
        "close_reasons =",
        "close_reason =",
        "file_keys_known",
        "exits.toml: unknown key 'close_reason' (did you mean 'close_reasons'?)",
    ),
]


@pytest.mark.parametrize(("file", "old", "new", "check", "message"), TYPOS)
def test_a_typo_key_is_a_fault_naming_file_path_and_the_key_meant(
    stages: Path, file: str, old: str, new: str, check: str, message: str
) -> None:
    edit(stages, file, old, new)
    faults = faults_of(stages)
    assert se_flow.Fault(check, message) in faults, faults


def test_a_file_that_cannot_be_structured_holds_back_the_named_checks(stages: Path) -> None:
    """A missing key or a wrong type leaves its file out; the named checks would only report
    its stages and kinds missing, so they wait, and the shape faults of every file are listed."""
    edit(stages, "03_employer_engagement.toml", 'fields.role = { type = "str" }', "fields.rle = {}")
    edit(stages, "04_job_matching.toml", "fields.agrees = {", "fields.agrees = { requird = 1,")
    edit(stages, "02_vocational_profiling.toml", 'guard = "field_nonempty"', 'guard = "hunch"')
    faults = faults_of(stages)
    assert [(f.check, f.message) for f in faults] == [
        (
            "keys_present",
            "03_employer_engagement.toml: records.job_analysis.fields.rle: missing key 'type'",
        ),
        (
            "field_keys_known",
            "04_job_matching.toml: records.participant_agreement.fields.agrees: "
            "unknown key 'requird' (did you mean 'required'?)",
        ),
    ]


def test_unknown_keys_and_named_checks_are_reported_together(stages: Path) -> None:
    edit(stages, "04_job_matching.toml", "fields.agrees = {", "fields.agrees = { requird = 1,")
    edit(stages, "02_vocational_profiling.toml", 'guard = "field_nonempty"', 'guard = "hunch"')
    faults = faults_of(stages)
    assert has(faults, "field_keys_known", "04_job_matching.toml", "'requird'", "'required'")
    assert has(faults, "guards_exist", "start_job_search", "'hunch'")
    assert len(faults) == 2, faults


WRONG_TYPES = [
    (
        "02_vocational_profiling.toml",
        "review_days = 14",
        'review_days = "ten"',
        "02_vocational_profiling.toml: stage.review_days: expected a whole number, got text 'ten'",
    ),
    (
        "01_customer_engagement.toml",
        'title = "First meeting"\ncontact = true',
        'title = "First meeting"\ncontact = "yes"',
        "01_customer_engagement.toml: records.first_meeting.contact: expected true or false, "
        "got text 'yes'",
    ),
    (
        "05_in_work_support.toml",
        'title = "Begin career development"',
        "title = 3",
        "05_in_work_support.toml: transitions[0].title: expected text, got a whole number 3",
    ),
    (
        "workflow.toml",
        '[states.closed]\ntitle = "Closed"',
        '[states.closed]\ntitle = ["Closed"]',
        "workflow.toml: states.closed.title: expected text, got a list",
    ),
    (
        "exits.toml",
        'dest = "customer_engagement"',
        'dest = ["customer_engagement"]',
        "exits.toml: reopen.dest: expected text, got a list",
    ),
    (
        "04_job_matching.toml",
        'guards = [{ guard = "reason", title = "Reason given" }]\n\n[[transitions]]\n'
        'trigger = "revise_goals"',
        'guards = "reason"\n\n[[transitions]]\ntrigger = "revise_goals"',
        "04_job_matching.toml: transitions[1].guards: expected a list, got text 'reason'",
    ),
]


@pytest.mark.parametrize(("file", "old", "new", "message"), WRONG_TYPES)
def test_a_wrong_type_names_file_and_key(
    stages: Path, file: str, old: str, new: str, message: str
) -> None:
    edit(stages, file, old, new)
    faults = faults_of(stages)
    assert {f.message for f in faults} >= {message}, faults
    assert not has(faults, "stage_data_well_formed")


def test_the_wrong_type_of_a_whole_table_is_named_too(stages: Path) -> None:
    (stages / "06_odd.toml").write_text(
        'states = "waiting"\ntransitions = { trigger = "x" }\n[records.x]\nfields = 3\n',
        encoding="utf-8",
    )
    faults = faults_of(stages)
    assert {(f.check, f.message) for f in faults} == {
        ("value_types_valid", "06_odd.toml: states: expected a table, got text 'waiting'"),
        ("value_types_valid", "06_odd.toml: transitions: expected a list, got a table"),
        (
            "value_types_valid",
            "06_odd.toml: records.x.fields: expected a table, got a whole number 3",
        ),
    }


def test_faults_in_several_files_are_all_reported_at_once(stages: Path) -> None:
    edit(stages, "01_customer_engagement.toml", "order = 1", "ordre = 1")
    edit(stages, "03_employer_engagement.toml", "review_days = 7", "review_days = 7.5")
    edit(
        stages,
        "05_in_work_support.toml",
        'title = "In-work support plan"\nfields.summary = { type = "text" }',
        'title = "In-work support plan"\nfields.summary = {}',
    )
    edit(stages, "exits.toml", "while_paused = true\nguards = []", "while_paused = 1\nguards = []")
    (stages / "07_broken.toml").write_text("[stage\n", encoding="utf-8")
    faults = faults_of(stages)
    assert [f.check for f in faults] == [
        "files_readable",
        "stage_keys_known",
        "value_types_valid",
        "keys_present",
        "value_types_valid",
    ], faults
    assert "07_broken.toml" in faults[0].message
    assert faults[1].message == (
        "01_customer_engagement.toml: stage: unknown key 'ordre' (did you mean 'order'?)"
    )
    assert faults[2].message == (
        "03_employer_engagement.toml: stage.review_days: expected a whole number, got a number 7.5"
    )
    assert faults[3].message == (
        "05_in_work_support.toml: records.support_plan.fields.summary: missing key 'type'"
    )
    assert faults[4].message == (
        "exits.toml: transitions[1].while_paused: expected true or false, got a whole number 1"
    )


def test_names_must_name_what_the_workflow_declares(stages: Path) -> None:
    edit(stages, "workflow.toml", 'pause = "pause"', 'pause = "hold"')
    edit(stages, "workflow.toml", 'resume = "resume"', 'resume = "withdraw"')
    edit(stages, "workflow.toml", 'referral = "referral"', 'referral = "referal"')
    edit(stages, "workflow.toml", 'stage = "in_work_support"', 'stage = "in_work"')
    edit(stages, "workflow.toml", 'started_by = "start_job"', 'started_by = "begin_job"')
    edit(stages, "workflow.toml", 'record = "job_offer"', 'record = "offer"')
    faults = faults_of(stages)
    where = "workflow.toml: [workflow.names]"
    assert [f.message for f in faults if f.check == "names_exist"] == [
        f"{where} pause = 'hold' is not a trigger",
        f"{where} resume = 'withdraw' has effect 'move', not 'resume'",
        f"{where} referral = 'referal' is not a record kind",
        f"{where} job.stage = 'in_work' is not a stage",
        f"{where} job.started_by = 'begin_job' is not a trigger",
        f"{where} job.record = 'offer' is not a record kind",
    ]
    assert len(faults) == 6, faults


def test_job_details_must_be_fields_of_the_job_record(stages: Path) -> None:
    edit(stages, "workflow.toml", 'hours = "hours_per_week"', 'hours = "hours"')
    faults = faults_of(stages)
    assert [(f.check, f.message) for f in faults] == [
        (
            "names_exist",
            "workflow.toml: [workflow.names] job.hours = 'hours' is not a field of job_offer "
            "(fields: employer, role, start_date, hours_per_week, hourly_pay, job, kind, "
            "permanent, age_band)",
        )
    ]


def test_the_pause_call_fires_the_trigger_the_stage_data_names(
    stages: Path, tmp_path: Path, clock: Clock
) -> None:
    edit(stages, "exits.toml", 'trigger = "pause"', 'trigger = "hold"')
    edit(stages, "workflow.toml", 'pause = "pause"', 'pause = "hold"')
    with se_flow.open(tmp_path / "own.db", stages=stages, clock=clock, actor="sam") as flow:
        flow.add_staff("sam", "Sam Coach", "coach", actor="sam")
        case = flow.refer("Alex Doe", source="GP").case
        review = START_DAY + dt.timedelta(days=21)
        paused = flow.pause(case.id, reason="in hospital", review_date=review).case
        assert (paused.status, paused.review_due) == (Status.PAUSED, review)
        assert flow.history(case.id)[-1].trigger == "hold"
        with pytest.raises(se_flow.UnknownTrigger):
            flow.advance(case.id, "pause", reason="again")
        assert flow.resume(case.id).case.status is Status.ACTIVE


START_DAY = dt.date(2026, 6, 1)


def test_a_call_falls_back_to_its_own_name_and_else_is_refused(
    stages: Path, tmp_path: Path, clock: Clock
) -> None:
    """A stage folder from before the names table keeps working: `withdraw()` fires the
    trigger called withdraw. Only when there is none is the call refused."""
    edit(stages, "workflow.toml", 'withdraw = "withdraw"\n', "")
    with se_flow.open(tmp_path / "own.db", stages=stages, clock=clock, actor="sam") as flow:
        flow.add_staff("sam", "Sam Coach", "coach", actor="sam")
        case = flow.refer("Alex Doe", source="GP").case
        assert flow.withdraw(case.id, reason="moved on").case.status is Status.CLOSED
    edit(stages, "exits.toml", 'trigger = "withdraw"', 'trigger = "leave"')
    with se_flow.open(tmp_path / "two.db", stages=stages, clock=clock, actor="sam") as flow:
        flow.add_staff("sam", "Sam Coach", "coach", actor="sam")
        case = flow.refer("Alex Doe", source="GP").case
        with pytest.raises(se_flow.UnknownTrigger) as refused:
            flow.withdraw(case.id, reason="moved on")
        assert refused.value.trigger == "withdraw"
        assert flow.case(case.id).status is Status.ACTIVE
        # The trigger itself is still there to fire by name.
        assert flow.advance(case.id, "leave", reason="moved on").case.status is Status.CLOSED


def test_the_client_list_reads_job_details_from_the_fields_the_stage_data_names(
    stages: Path, tmp_path: Path, clock: Clock
) -> None:
    matching = "04_job_matching.toml"
    edit(
        stages,
        matching,
        '[records.job_offer]\ntitle = "Job offer"\nfields.employer',
        '[records.offer]\ntitle = "Job offer"\nfields.company',
    )
    edit(stages, matching, 'kind = "job_offer"', 'kind = "offer"', count=2)
    edit(stages, matching, "fields.hours_per_week", "fields.weekly_hours")
    edit(stages, matching, "fields.hourly_pay", "fields.rate")
    edit(stages, matching, 'pay_field = "hourly_pay"', 'pay_field = "rate"')
    edit(stages, "workflow.toml", 'record = "job_offer"', 'record = "offer"')
    edit(stages, "workflow.toml", 'employer = "employer"', 'employer = "company"')
    edit(stages, "workflow.toml", 'hours = "hours_per_week"', 'hours = "weekly_hours"')
    edit(stages, "workflow.toml", 'pay = "hourly_pay"', 'pay = "rate"')
    with se_flow.open(tmp_path / "own.db", stages=stages, clock=clock, actor="sam") as flow:
        flow.add_staff("sam", "Sam Coach", "coach", actor="sam")
        steps = Steps(flow)
        case = steps.to("job_matching")
        steps.soft(case.id, "job_matching")
        offer = {"company": "Corner Shop", "start_date": "2026-05-25", "weekly_hours": "16"}
        flow.record(case.id, "offer", {**offer, "rate": "12.80", "role": "till"})
        assert (
            flow.advance(case.id, LEAST_EVIDENCE["job_matching"][0]).case.state == "in_work_support"
        )
        flow.export(tmp_path / "out", tables=["clients"], fmt="csv")
    [row] = read_csv(tmp_path / "out" / "clients.csv")
    assert (
        row["employer"],
        row["job_role"],
        row["job_start_date"],
        row["hours_per_week"],
        row["hourly_pay"],
    ) == ("Corner Shop", "till", "2026-05-25", "16", "12.80")


def test_a_workflow_without_a_job_rule_lists_clients_without_job_details(
    tmp_path: Path, stages: Path, clock: Clock
) -> None:
    path = stages / "workflow.toml"
    text = path.read_text(encoding="utf-8")
    start, end = text.index("[workflow.names.job]"), text.index('pay = "hourly_pay"\n')
    path.write_text(text[:start] + text[end + len('pay = "hourly_pay"\n') :], encoding="utf-8")
    with se_flow.open(tmp_path / "own.db", stages=stages, clock=clock, actor="sam") as flow:
        flow.add_staff("sam", "Sam Coach", "coach", actor="sam")
        case = Steps(flow).to("in_work_support")
        assert flow.workflow.names.job is None
        flow.export(tmp_path / "out", tables=["clients"], fmt="csv")
    [row] = read_csv(tmp_path / "out" / "clients.csv")
    assert (row["case_id"], row["employer"], row["hourly_pay"]) == (case.id, "", "")
