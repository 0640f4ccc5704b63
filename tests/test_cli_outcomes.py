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
