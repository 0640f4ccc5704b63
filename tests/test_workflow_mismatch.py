"""A database opened with a workflow other than the one its log was written under: reads show
what is stored without crashing, verify says so, writes are refused until an admin adopts the
new workflow."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers import Steps
from test_cli import CLI, ok, refused

import se_flow


def _retyped(tmp_path: Path, new_type: str) -> Path:
    """The shipped stage folder with the job offer's start date typed `new_type`."""
    folder = tmp_path / f"stages-{new_type}"
    shutil.copytree(se_flow.default_stages_dir(), folder, ignore=shutil.ignore_patterns("__*"))
    stage = folder / "04_job_matching.toml"
    text = stage.read_text()
    old = 'fields.start_date = { type = "date" }'
    assert old in text
    stage.write_text(text.replace(old, f'fields.start_date = {{ type = "{new_type}" }}'))
    return folder


def _offered(path: Path, stages: Path | None, start_date: object) -> str:
    """A case in job matching with a job offer, written under `stages`."""
    with se_flow.open(path, stages=stages, actor="sam") as flow:
        flow.add_staff("ada", "Ada", "admin", actor="ada")
        flow.add_staff("sam", "Sam", "coach", actor="ada")
        steps = Steps(flow)
        case = steps.to("job_matching")
        flow.record(
            case.id,
            "job_offer",
            employer="Corner Shop",
            start_date=start_date,
            hours_per_week="16",
            hourly_pay="12.80",
        )
        return case.id


def test_reads_under_a_workflow_that_retyped_a_field_do_not_crash(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    case_id = _offered(path, None, "2026-05-25")  # a date
    run = CLI(path)
    as_int = ["--stages", str(_retyped(tmp_path, "int"))]
    for args in (("next", case_id), ("show", case_id), ("history", case_id)):
        result = run(*as_int, *args)
        assert result.exit_code == 0, result.output
        assert "warning: the workflow loaded" in result.stderr
    assert "2026-05-25" in ok(run(*as_int, "show", case_id))
    assert "cannot be checked" in ok(run(*as_int, "next", case_id))


def test_records_of_the_other_typing_read_back_as_stored(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    int_stages = _retyped(tmp_path, "int")
    case_id = _offered(path, int_stages, "20260525")  # an int, read back under a date field
    for args in (("show", case_id), ("next", case_id)):
        result = CLI(path)(*args)
        assert result.exit_code == 0, result.output
    with se_flow.open(path, actor="sam") as flow:
        (offer,) = [r for r in flow.records(case_id) if r.kind == "job_offer"]
        assert offer.fields["start_date"] == 20260525


def test_verify_says_the_workflow_differs(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    _offered(path, None, "2026-05-25")
    as_int = _retyped(tmp_path, "int")
    with se_flow.open(path, stages=as_int, actor="sam") as flow:
        result = flow.verify()
        assert result.ok  # the chain itself is whole
        assert result.workflow_mismatch is not None
        assert "not the one the log was last written under" in result.workflow_mismatch
    with se_flow.open(path, actor="sam") as flow:
        assert flow.verify().workflow_mismatch is None
    said = ok(CLI(path)("--stages", str(as_int), "audit", "verify"))
    assert "audit chain ok" in said and "not the one the log" in said


def test_writes_under_another_workflow_are_refused_until_adopted(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    case_id = _offered(path, None, "2026-05-25")
    as_int = _retyped(tmp_path, "int")
    with se_flow.open(path, stages=as_int, actor="sam") as flow:
        events = len(flow.events())
        with pytest.raises(se_flow.WorkflowMismatch, match="writes are refused") as refusal:
            flow.record(case_id, "note", text="hello")
        assert refusal.value.exit_code == 5
        assert isinstance(refusal.value, se_flow.InvalidInput)
        with pytest.raises(se_flow.PermissionDenied):
            flow.adopt_workflow(reason="new stage data", actor="sam")
        assert len(flow.events()) == events
    refused(
        CLI(path)("--stages", str(as_int), "refer", "Billie", "--source", "GP"),
        5,
        "writes are refused",
    )
    said = ok(
        CLI(path)("--stages", str(as_int), "workflow", "adopt", "--reason", "retyped", actor="ada")
    )
    assert "now under workflow" in said
    with se_flow.open(path, stages=as_int, actor="sam") as flow:
        assert flow.workflow_mismatch is None
        flow.record(
            case_id,
            "job_offer",
            employer="Corner Shop",
            start_date=20260601,
            hours_per_week="16",
            hourly_pay="12.80",
        )
        adopted = [e for e in flow.events() if e.kind == "workflow"]
        assert len(adopted) == 1 and adopted[0].reason == "retyped"
        assert flow.verify().ok
    # The database has moved on: the old workflow is now the one refused.
    with se_flow.open(path, actor="sam") as flow, pytest.raises(se_flow.WorkflowMismatch):
        flow.refer("Casey", source="GP")


def test_adopting_needs_a_reason_and_a_workflow_that_differs(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    _offered(path, None, "2026-05-25")
    as_int = _retyped(tmp_path, "int")
    with se_flow.open(path, stages=as_int, actor="ada") as flow:
        events = len(flow.events())
        for reason in ("", "   "):
            with pytest.raises(se_flow.InvalidInput, match="adopting a workflow needs a reason"):
                flow.adopt_workflow(reason=reason)
        assert len(flow.events()) == events
    with se_flow.open(path, actor="ada") as flow:  # the workflow it was written under
        with pytest.raises(se_flow.InvalidInput, match="already under this workflow") as same:
            flow.adopt_workflow(reason="no change")
        assert same.value.exit_code == 5
        assert len(flow.events()) == events
    refused(CLI(path)("workflow", "adopt", "--reason", "again", actor="ada"), 5, "already under")
