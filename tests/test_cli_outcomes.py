"""The CLI's outcomes and programme commands."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import Steps
from test_cli import CLI, ok, refused

import se_flow
from se_flow import SEFlow


def test_outcomes_shows_milestones_and_what_is_needed(
    flow: SEFlow, steps: Steps, tmp_path: Path
) -> None:
    case = steps.to("in_work_support", steps.refer(referral={"programme": "mhep"}))
    cli = CLI(tmp_path / "t.db")
    out = ok(cli("outcomes", case.id, "--on", "2026-06-01"))
    assert "mhep@1" in out and "sustain_13w" in out and "more days" in out
    data = json.loads(ok(cli("outcomes", case.id, "--on", "2026-06-01", "--json")))
    assert data["programme"]["id"] == "mhep"
    assert {m["id"]: m["state"] for m in data["milestones"]}["job_start"] == "provisional"
    refused(cli("outcomes", case.id, "--on", "June"), 5, "--on")


def test_programme_list_show_and_validate(tmp_path: Path) -> None:
    cli = CLI(tmp_path / "none.db")
    assert "whp@1" in ok(cli.raw("programme", "list"))
    assert "self_employed_outcome" in ok(cli.raw("programme", "show", "whp"))
    refused(cli.raw("programme", "show", "nope"), 4, "nope")
    bad = tmp_path / "defs"
    bad.mkdir()
    (bad / "x.toml").write_text(
        '[programme]\nid = "x"\nversion = "1"\ntitle = "x"\nsource = "s"\nstatus = "partial"\n'
        '[[milestones]]\nid = "a"\ntest = "magic"\n'
    )
    refused(cli.raw("programme", "validate", str(bad)), 3, "tests_known", "milestones.a.test")
    assert "6 programme(s)" in ok(
        cli.raw("programme", "validate", str(Path(se_flow.__file__).parent / "programmes"))
    )


def test_enrol_claim_and_export_claims_at_the_terminal(
    flow: SEFlow, steps: Steps, tmp_path: Path
) -> None:
    case = steps.to("in_work_support", steps.refer())
    cli = CLI(tmp_path / "t.db")
    assert f"{case.id} is on mhep@1" in ok(cli("enrol", case.id, "mhep"))
    refused(cli("enrol", case.id, "ips_grow"), 7, "team leader")
    refused(cli("enrol", case.id, "nope"), 4, "nope")
    refused(cli("claims", "mark", case.id, "job_start", "--reference", "R-1"), 7, "team leader")
    refused(
        cli("claims", "mark", case.id, "job_start", "--reference", "R-1", actor="lee"),
        5,
        "provisional",
        "work_evidence",
    )
    ok(
        cli(
            "record",
            case.id,
            "work_evidence",
            "period_start=2026-05-25",
            "period_end=2026-05-31",
            "hours=16",
            "gross_pay=204.80",
            "evidence=payslip",
            "reference=PS-1",
        )
    )
    assert "claimed" in ok(
        cli("claims", "mark", case.id, "job_start", "--reference", "R-1", actor="lee")
    )
    out = ok(cli("outcomes", case.id))
    assert "In the audit trail" in out and "R-1" in out
    # The timeline says what each outcome event did, not its kind twice.
    timeline = ok(cli("history", case.id, "--all"))
    assert "enrolled on mhep@1" in timeline
    assert "milestone job_start reached on" in timeline
    assert "claimed job_start (mhep@1), funder reference R-1" in timeline
    assert "enrol enrol" not in timeline and "milestone milestone" not in timeline
    assert "referred Bo" in ok(cli("refer", "Bo", "--source", "GP", "--programme", "ips_grow"))
    folder = tmp_path / "claims"
    assert "exported 1 claim(s)" in ok(
        cli("claims", "export", str(folder), "--programme", "mhep", actor="lee")
    )
    ok(cli("audit", "verify-export", str(folder)))
    refused(cli("claims", "export", str(tmp_path / "x"), "--programme", "nope"), 4, "nope")
    ok(cli("audit", "verify"))


def test_outcomes_due_within_lists_the_caseload(flow: SEFlow, steps: Steps, tmp_path: Path) -> None:
    case = steps.to("in_work_support", steps.refer(programme="mhep"))
    cli = CLI(tmp_path / "t.db")
    data = json.loads(ok(cli("outcomes", "--due-within", "90", "--on", "2026-06-01", "--json")))
    assert [(d["case_id"], d["milestone"]) for d in data] == [(case.id, "sustain_13w")]
    out = ok(cli("outcomes", "--due-within", "90", "--on", "2026-06-01", "--coach", "sam"))
    assert "sustain_13w" in out and case.id in out
    assert "nothing coming up" in ok(cli("outcomes", "--due-within", "3", "--on", "2026-06-01"))
    refused(cli("outcomes", case.id, "--due-within", "3"), 5, "not both")
    refused(cli("outcomes", "--due-within", "-1"), 5, "--due-within")


def test_the_due_list_shows_outcomes_when_asked(flow: SEFlow, steps: Steps, tmp_path: Path) -> None:
    case = steps.to("in_work_support", steps.refer(programme="mhep"))
    assert all(i.what != "milestone" for i in flow.due_items(within_days=90))
    items = flow.due_items(within_days=90, outcomes=True)
    (coming,) = [i for i in items if i.what == "milestone"]
    assert (coming.case_id, coming.name) == (case.id, "sustain_13w")
    assert coming.commands == (f"se-flow outcomes {case.id}",)
    assert [i.due_on for i in items] == sorted(i.due_on for i in items)
    cli = CLI(tmp_path / "t.db")
    # At the terminal's clock (today) the 13 weeks are long reached: nothing of them is due.
    data = json.loads(ok(cli("due", "--all", "--within", "400", "--outcomes", "--json")))
    assert not any(d["what"] == "milestone" and d["name"] == "sustain_13w" for d in data)
