"""Importing history from another system (`SEFlow.import_history`, `se-flow import`): each case
run through the same rules as a write, written in bulk, and indistinguishable from the same
commands entered one by one; a refused case writes nothing of itself (nor, by default, of the
import), named by its line, case, command and rule."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from helpers import LEAST_EVIDENCE
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pg import pg_server, pg_url

import se_flow
from se_flow import ImportedCase, ImportedRecord, ImportedTrigger, PersonalDetails
from se_flow._seal import DAY

__all__ = ["pg_server", "pg_url"]

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "import.jsonl"
README = Path(__file__).resolve().parent.parent / "README.md"


def _staffed(flow: se_flow.SEFlow) -> se_flow.SEFlow:
    flow.add_staff("lead", "Lea", "team_leader", actor="setup")
    flow.add_staff("sam", "Sam", "coach", actor="lead")
    return flow


@pytest.fixture(params=["sqlite", "memory"])
def open_flow(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    made: list[se_flow.SEFlow] = []

    def opened(name: str = "a") -> se_flow.SEFlow:
        if request.param == "sqlite":
            flow = se_flow.open(tmp_path / f"{name}.db", clock=lambda: NOW)
        else:
            wf = se_flow.load_workflow()
            flow = se_flow.SEFlow(se_flow.MemoryStore(wf), wf, clock=lambda: NOW)
        made.append(flow)
        return _staffed(flow)

    yield opened
    for flow in made:
        flow.disconnect()


def _bad(case: ImportedCase, **changes: Any) -> ImportedCase:
    return attrs.evolve(case, **changes)


def _day(n: int) -> dt.date:
    return (NOW - dt.timedelta(days=n)).date()


def _walked(ref: str, start: int = 40) -> ImportedCase:
    """A case walked to employer engagement with the least evidence, a note and its
    correction (as another system would hand it over)."""
    commands: list[ImportedRecord | ImportedTrigger] = [ImportedTrigger("engage", _day(start - 1))]
    for where in ("customer_engagement", "vocational_profiling"):
        forward = LEAST_EVIDENCE[where]
        for kind, fields in forward.records:
            commands.append(ImportedRecord(kind, fields, _day(start - 2)))
        commands.append(ImportedTrigger(forward.trigger, _day(start - 3)))
    commands.append(ImportedRecord("note", {"text": "called"}, _day(2)))
    commands.append(
        ImportedRecord("note", {"text": "called back"}, _day(1), supersedes=len(commands) - 1)
    )
    return ImportedCase(
        ref=ref,
        person=PersonalDetails(name=f"Person {ref}", contact="07700 900123"),
        referred_at=_day(start),
        referral={"source": "GP"},
        commands=tuple(commands),
        coach="sam",
    )


def _by_hand(flow: se_flow.SEFlow, case: ImportedCase, actor: str = "sam") -> str:
    """The same case entered command by command through the API."""
    done = flow.refer(
        case.person,
        referral=case.referral,
        coach=case.coach,
        actor=case.actor or actor,
        effective_at=case.referred_at,
        programme=case.programme,
        command_id=f"import:{case.ref}",
    )
    seqs: list[int] = []
    for step in case.commands:
        if isinstance(step, ImportedRecord):
            made = flow.record(
                done.case.id,
                step.kind,
                step.fields,
                actor=step.actor or case.actor or actor,
                effective_at=step.effective_at,
                supersedes=seqs[step.supersedes] if step.supersedes is not None else None,
            )
            seqs.append(made.event.seq)
        else:
            flow.advance(
                done.case.id,
                step.trigger,
                actor=step.actor or case.actor or actor,
                reason=step.reason,
                effective_at=step.effective_at,
                review_date=step.review_date,
                outcome=step.outcome,
            )
            seqs.append(-1)
    return done.case.id


def _comparable(flow: se_flow.SEFlow) -> list[dict[str, Any]]:
    """Every event as a reader sees it, apart from what differs between two databases by
    design: the chain's hashes, the random participant ids and the salted texts' hashes."""
    pids = {c.participant_id: f"P{i}" for i, c in enumerate(flow.cases(status="all", actor="lead"))}
    out = []
    for e in flow.events(actor="lead"):
        payload = {k: pids.get(v, v) if k == "participant_id" else v for k, v in e.payload.items()}
        out.append(
            {
                "seq": e.seq,
                "case_id": e.case_id,
                "kind": str(e.kind),
                "trigger": e.trigger,
                "states": (e.from_state, e.to_state, e.from_phase, e.to_phase),
                "actor": (e.actor, e.role),
                "times": (e.effective_at, e.recorded_at),
                "reason": e.reason,
                "guards": e.guards,
                "override": e.override,
                "payload": payload,
                "texts": sorted(e.texts),
                "command": (e.command_id, e.command_hash),
            }
        )
    return out


def _projections(flow: se_flow.SEFlow) -> list[Any]:
    cases = list(flow.cases(status="all", actor="lead"))
    return [
        (
            c.id,
            c.state,
            c.phase,
            c.status,
            c.version,
            c.opened_at,
            c.stage_entered_at,
            c.coach,
            c.review_due,
            c.last_contact_at,
            [
                (r.seq, r.kind, dict(r.fields), r.effective_at, r.actor, r.supersedes)
                for r in flow.records(c.id, actor="lead")
            ],
            flow.participant(c.participant_id, actor="lead").details,
            flow.store.due_rows(c.id),
        )
        for c in cases
    ]


def test_an_import_is_the_same_history_as_the_commands_entered_one_by_one(open_flow: Any) -> None:
    imported, by_hand = open_flow("a"), open_flow("b")
    # Something in the log already: the import chains on from it.
    imported.refer("Before", source="GP", actor="sam")
    by_hand.refer("Before", source="GP", actor="sam")
    cases = [_walked(f"OLD-{i}", 40 + i) for i in range(3)]
    # One on a programme: its enrolment, and any milestone its history makes, as by hand.
    cases[1] = _bad(cases[1], programme="mhep")
    report = imported.import_history(cases, by="sam", chunk=2)
    assert report.imported == (("OLD-0", "C-2"), ("OLD-1", "C-3"), ("OLD-2", "C-4"))
    assert report.records == 3 * 10 and report.skipped == ()
    for case in cases:
        _by_hand(by_hand, case)
    assert _comparable(imported) == _comparable(by_hand)
    assert _projections(imported) == _projections(by_hand)
    assert "enrol" in {e["kind"] for e in _comparable(imported)}
    assert report.events == len(imported.events(actor="lead")) - 3
    check = imported.verify(actor="lead")
    assert check.ok, check.problem
    # Writing goes on as usual after it.
    imported.record("C-2", "note", {"text": "after"}, actor="sam")
    assert imported.verify(actor="lead").ok


def test_an_import_into_postgresql_is_the_same_history(pg_url: str) -> None:
    wf = se_flow.load_workflow()
    by_hand = _staffed(se_flow.SEFlow(se_flow.MemoryStore(wf), wf, clock=lambda: NOW))
    cases = [_walked("PG-1"), _bad(_walked("PG-2"), programme="mhep"), _walked("PG-3")]
    with se_flow.open(pg_url, clock=lambda: NOW) as imported:
        _staffed(imported)
        imported.import_history(cases[:1], by="sam")
        imported.import_history(cases[1:], by="sam", chunk=1)
        for case in cases:
            _by_hand(by_hand, case)
        assert _comparable(imported) == _comparable(by_hand)
        assert _projections(imported) == _projections(by_hand)
        assert imported.verify(actor="lead").ok
        imported.record("C-1", "note", {"text": "after"}, actor="sam")
        assert imported.verify(actor="lead").ok


def test_an_import_into_a_sealing_database_seals_every_event(tmp_path: Path) -> None:
    path = tmp_path / "sealed.db"
    with se_flow.open(path, clock=lambda: NOW) as flow:
        flow.add_staff("ada", "Ada", "admin", actor="setup")
        key = flow.start_sealing(actor="ada", epoch_seconds=DAY)
        flow.add_staff("lead", "Lea", "team_leader", actor="ada")
        flow.add_staff("sam", "Sam", "coach", actor="lead")
        flow.import_history([_walked("S-1"), _walked("S-2")], by="sam")
        check = flow.verify(actor="ada", key=key)
        assert check.ok and check.seals is not None, check
        head, _ = flow.store.head()
        assert [s.seq for s in flow.store.seal_rows()] == list(range(2, head + 1))


def test_a_case_refused_mid_way_writes_nothing_of_the_import(open_flow: Any) -> None:
    flow = open_flow()
    good = _walked("OK-1")
    # Its second command moves on before the evidence the guards want is there.
    early = _bad(_walked("BAD-1"), line=7)
    steps = early.commands
    move = next(i for i, c in enumerate(steps) if i and isinstance(c, ImportedTrigger))
    early = _bad(early, commands=(steps[0], steps[move], *steps[1:move], *steps[move + 1 :]))
    head = flow.store.head()
    with pytest.raises(se_flow.ImportRefused) as refused:
        flow.import_history([good, early], by="sam")
    failure = refused.value.failure
    assert (failure.line, failure.ref, failure.command) == (7, "BAD-1", 1)
    assert failure.exit_code == se_flow.TransitionRefused.exit_code
    assert "line 7, case 'BAD-1', command 1:" in refused.value.message
    assert "nothing was imported" in refused.value.message
    assert flow.store.head() == head and flow.cases(status="all", actor="lead") == []
    # --skip-bad: the good case is written, the bad one listed.
    report = flow.import_history([good, early], by="sam", skip_bad=True)
    assert report.imported == (("OK-1", "C-1"),)
    assert [(f.ref, f.command) for f in report.skipped] == [("BAD-1", 1)]
    assert len(flow.cases(status="all", actor="lead")) == 1
    assert flow.verify(actor="lead").ok


def test_refs_and_command_ids_are_taken_once(open_flow: Any) -> None:
    flow = open_flow()
    one = _walked("R-1")
    named = _bad(
        _walked("R-2"),
        commands=(
            ImportedTrigger("engage", _day(30), command_id="x-1"),
            ImportedRecord("note", {"text": "a"}, _day(20), command_id="x-1"),
        ),
    )
    cases = [one, one, named]
    report = flow.import_history(cases, by="sam", skip_bad=True)
    assert report.imported == (("R-1", "C-1"),)
    words = [f.words() for f in report.skipped]
    assert words[0] == "case 'R-1': this case's ref appears twice in the import"
    assert "command 1: command id 'x-1' is used twice" in words[1]
    # Imported once: again, it is refused as already logged.
    with pytest.raises(se_flow.ImportRefused, match=r"already imported.*event 3"):
        flow.import_history([one], by="sam")
    # A command id of its own already logged (by a write, or an earlier chunk): that command.
    logged = flow.record("C-1", "note", {"text": "x"}, actor="sam", command_id="x-2").event.seq
    again = _bad(
        _walked("R-3"),
        commands=(
            ImportedTrigger("engage", _day(30)),
            ImportedRecord("note", {"text": "a"}, _day(20), command_id="x-2"),
        ),
    )
    report = flow.import_history([_walked("R-4"), again], by="sam", skip_bad=True, chunk=1)
    assert report.imported == (("R-4", "C-2"),)
    (failure,) = report.skipped
    assert (failure.ref, failure.command, failure.field) == ("R-3", 1, "id")
    assert f"its command id: command id 'x-2' is logged (event {logged})" in failure.words()
    assert len(flow.cases(status="all", actor="lead")) == 2


def test_lines_that_are_not_cases_are_named(open_flow: Any) -> None:
    flow = open_flow()
    lines = [
        json.dumps({"ref": "J-1", "person": "Jo", "referred": "2026-05-01", "referral": {}}),
        "{not json",
        json.dumps(
            {
                "ref": "J-2",
                "person": {"name": "Al"},
                "referred": "2026-05-01",
                "referral": {"source": "GP"},
                "commands": [{"record": "horoscope", "on": "2026-05-02"}],
            }
        ),
        json.dumps({"ref": "J-3", "person": {"name": "Bo"}, "referred": "May", "x": 1}),
        json.dumps({"ref": "J-4", "person": {"name": "Cy"}, "referred": "2026-05-01T10:00"}),
        "",
    ]
    report = flow.import_lines(lines, by="sam", skip_bad=True)
    assert report.imported == ()
    found = {f.line: (f.ref, f.command, f.field, f.message) for f in report.skipped}
    assert found[1][3].startswith("referral record refused") and "source" in found[1][3]
    assert found[2][0] is None and found[2][3].startswith("not JSON")
    assert found[3][:2] == ("J-2", 0) and "horoscope" in found[3][3]
    assert found[3][3].startswith("unknown record kind") or "record kind" in found[3][3]
    assert found[4][2] == "x" and "unknown key 'x'" in found[4][3]
    assert found[5][2] == "referred" and "no time zone" in found[5][3]
    assert len(found) == 5
    with pytest.raises(se_flow.ImportRefused, match=r"^line 1, case 'J-1'"):
        flow.import_lines(lines, by="sam")
    assert flow.store.head()[0] == 2


def test_an_importer_who_may_not_write_imports_nothing(open_flow: Any) -> None:
    flow = open_flow()
    with pytest.raises(se_flow.PermissionDenied):
        flow.import_history([_walked("P-1")], by="nobody")


# --- the property: any history the API accepts imports to the same log ---------------------

_NOTES = st.sampled_from(["called", "met", "texted", "emailed"])


@st.composite
def _histories(draw: st.DrawFn) -> list[ImportedCase]:
    cases = []
    for i in range(draw(st.integers(1, 4))):
        start = draw(st.integers(20, 60))
        steps = draw(st.integers(0, 3))
        commands: list[ImportedRecord | ImportedTrigger] = []
        if steps:
            commands.append(ImportedTrigger("engage", _day(start - 1)))
        day = start - 1
        for _ in range(max(steps - 1, 0) * 2):
            day = max(day - draw(st.integers(0, 5)), 1)
            if bool(commands) and draw(st.booleans()):
                commands.append(ImportedRecord("note", {"text": draw(_NOTES)}, _day(day)))
            else:
                commands.append(
                    ImportedTrigger(
                        draw(st.sampled_from(["pause", "resume", "start_profiling"])),
                        _day(day),
                        reason="break",
                        review_date=_day(-30),
                    )
                )
        cases.append(
            ImportedCase(
                ref=f"H-{i}",
                person=PersonalDetails(name=f"P {i}"),
                referred_at=_day(start),
                referral={"source": "GP"},
                commands=tuple(commands),
                coach="sam",
            )
        )
    return cases


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_histories())
def test_imported_random_histories_equal_the_commands_entered_one_by_one(
    histories: list[ImportedCase],
) -> None:
    wf = se_flow.load_workflow()
    imported = _staffed(se_flow.SEFlow(se_flow.MemoryStore(wf), wf, clock=lambda: NOW))
    by_hand = _staffed(se_flow.SEFlow(se_flow.MemoryStore(wf), wf, clock=lambda: NOW))
    report = imported.import_history(histories, by="sam", skip_bad=True)
    taken = {ref for ref, _ in report.imported}
    for case in histories:
        try:
            with by_hand.batch():
                _by_hand(by_hand, case)
            accepted = True
        except se_flow.SEFlowError:
            accepted = False
        assert accepted == (case.ref in taken), case
    assert _comparable(imported) == _comparable(by_hand)
    assert _projections(imported) == _projections(by_hand)
    assert imported.verify(actor="lead").ok


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_histories())
def test_imported_random_histories_written_to_sqlite_equal_the_commands_entered_one_by_one(
    histories: list[ImportedCase],
) -> None:
    # SQLite writes the rows its own way (one executemany a table): the same history still.
    wf = se_flow.load_workflow()
    by_hand = _staffed(se_flow.SEFlow(se_flow.MemoryStore(wf), wf, clock=lambda: NOW))
    with tempfile.TemporaryDirectory() as folder:
        imported = _staffed(se_flow.open(Path(folder) / "i.db", workflow=wf, clock=lambda: NOW))
        try:
            report = imported.import_history(histories, by="sam", skip_bad=True, chunk=2)
            taken = {ref for ref, _ in report.imported}
            for case in histories:
                if case.ref in taken:
                    with by_hand.batch():
                        _by_hand(by_hand, case)
            assert _comparable(imported) == _comparable(by_hand)
            assert _projections(imported) == _projections(by_hand)
            assert imported.verify(actor="lead").ok
        finally:
            imported.disconnect()


# --- the command line ------------------------------------------------------------------------


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "se_flow.cli", "--db", str(tmp_path / "c.db"), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_example_file_imports_and_the_readme_shows_it(tmp_path: Path) -> None:
    assert EXAMPLE.read_text() in README.read_text()
    assert _cli(tmp_path, "--as", "ada", "init", "--name", "Ada", "--no-seal").returncode == 0
    added = _cli(tmp_path, "--as", "ada", "staff", "add", "sam", "--name", "Sam", "--role", "coach")
    assert added.returncode == 0, added.stderr
    done = _cli(tmp_path, "--as", "sam", "import", str(EXAMPLE), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert [c["ref"] for c in report["cases"]] == ["OLD-1001", "OLD-1002"]
    assert report["skipped"] == [] and report["records"] == 5
    again = _cli(tmp_path, "--as", "sam", "import", str(EXAMPLE))
    assert again.returncode == 5
    assert again.stderr.startswith("error: line 1, case 'OLD-1001': this case was already")
    assert len(again.stderr.strip().splitlines()) == 1
    verify = _cli(tmp_path, "--as", "ada", "audit", "verify")
    assert verify.returncode == 0, verify.stderr


def test_the_cli_refuses_a_bad_file_writing_nothing(tmp_path: Path) -> None:
    assert _cli(tmp_path, "--as", "ada", "init", "--name", "Ada", "--no-seal").returncode == 0
    added = _cli(tmp_path, "--as", "ada", "staff", "add", "sam", "--name", "Sam", "--role", "coach")
    assert added.returncode == 0, added.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text(EXAMPLE.read_text().replace('"engage"', '"engag"', 1))
    done = _cli(tmp_path, "--as", "ada", "import", str(bad))
    assert done.returncode == 5, done.stderr
    assert done.stderr.startswith("error: line 1, case 'OLD-1001', command 0: ")
    assert "nothing was imported" in done.stderr and "Traceback" not in done.stderr
    skipped = _cli(tmp_path, "--as", "ada", "import", str(bad), "--skip-bad")
    assert skipped.returncode == 0, skipped.stderr
    assert "skipped: line 1, case 'OLD-1001'" in skipped.stderr
    assert "imported 1 case(s) (C-1 to C-1)" in skipped.stdout
    missing = _cli(tmp_path, "--as", "ada", "import", str(tmp_path / "none.jsonl"))
    assert missing.returncode == 5 and missing.stderr.startswith("error: cannot read")
