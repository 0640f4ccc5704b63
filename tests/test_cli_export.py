"""The auditors' commands through Typer's CliRunner: `se-flow export`, `audit checkpoint`,
`audit verify --checkpoint` and `audit verify-export`, each happy path and each refusal with its
exit code, its words, and nothing written.

The caseload is built with the API (as in test_cli.py, whose runner and helpers this reuses).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import typer.main
from helpers import LEAST_EVIDENCE, drop_triggers, staffed_db
from rich.console import Console
from test_cli import CLI, EXTRA, event_count, ok, refer, refused, walk

import se_flow
import se_flow.cli as cli
from se_flow._audit import GENESIS, row_hash
from se_flow.cli import app

FORMATS = ["csv", "jsonl", "json"]
TABLES = ["stage_histories", "events", "texts", "clients"]
FILES = {
    "csv": {"stage_histories.csv", "events.csv", "texts.csv", "clients.csv"},
    "jsonl": {"stage_histories.jsonl", "events.jsonl", "texts.jsonl", "clients.jsonl"},
    "json": {"export.json"},
}
# What no pseudonymised file may hold: the participants' names and contact details.
PERSONAL = ["Alex Doe", "Bea Hollis", "07700 900123"]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """Admin ada, team leader lee, coaches sam and kim, auditor ava; C-1 (Alex Doe, sam's) in
    in-work support with a job, C-2 (Bea Hollis, kim's) at customer engagement."""
    path = staffed_db(tmp_path / "caseload.db")
    alex = refer(path, "Alex Doe", days=30)
    walk(path, alex, "in_work_support")
    bea = refer(path, "Bea Hollis", coach="kim", days=10)
    walk(path, bea, "customer_engagement", by="kim")
    return path


@pytest.fixture
def run(db: Path) -> CLI:
    return CLI(db)


def read_rows(out: Path, fmt: str) -> dict[str, list[dict[str, Any]]]:
    """Every table of an export as a list of rows (dicts), whatever its format."""
    if fmt == "json":
        bundle = json.loads((out / "export.json").read_text(encoding="utf-8"))
        return {name: list(rows) for name, rows in bundle["tables"].items()}
    found: dict[str, list[dict[str, Any]]] = {}
    for name in TABLES:
        path = out / f"{name}.{fmt}"
        if not path.exists():
            continue
        with path.open(encoding="utf-8", newline="") as f:
            if fmt == "csv":
                found[name] = list(csv.DictReader(f))
            else:
                found[name] = [json.loads(line) for line in f]
    return found


def manifest(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    return data


def leftovers(folder: Path) -> list[str]:
    """Hidden work folders an export would leave behind if it failed half way."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def drop_guards(db: Path) -> None:
    """What a forger with the file does first: drop the triggers."""
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        drop_triggers(conn)


# --- the commands exist, with help ------------------------------------------------------------


def test_the_auditors_commands_exist_with_help() -> None:
    root: Any = typer.main.get_command(app)
    for path in (("export",), ("audit", "checkpoint"), ("audit", "verify-export")):
        command = root
        for name in path:
            command = command.commands[name]
        assert (command.help or "").strip(), path
        assert all((getattr(p, "help", None) or "").strip() for p in command.params), path
    verify = root.commands["audit"].commands["verify"]
    assert {"checkpoint", "json"} <= {p.name for p in verify.params}


# --- export -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_writes_every_table_and_a_manifest(
    run: CLI, db: Path, tmp_path: Path, fmt: str
) -> None:
    before = event_count(db)
    out = tmp_path / f"review-{fmt}"
    said = ok(run("export", str(out), "--format", fmt))

    assert {p.name for p in out.iterdir()} == FILES[fmt] | {"manifest.json"}
    found = manifest(out)
    rows = read_rows(out, fmt)
    assert found["request"]["format"] == fmt and found["request"]["tables"] == TABLES
    assert {name: len(r) for name, r in rows.items()} == {
        name: t["rows"] for name, t in found["tables"].items()
    }
    for name, entry in found["files"].items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == entry["sha256"]
    # The export read the log as it stood, then logged itself as the next event.
    assert found["chain_head"]["seq"] == before == len(rows["events"])
    assert found["audit_event"]["seq"] == before + 1 == event_count(db)
    assert [int(e["seq"]) for e in rows["events"]] == list(range(1, before + 1))
    assert sorted(c["case_id"] for c in rows["clients"]) == ["C-1", "C-2"]
    job = next(c for c in rows["clients"] if c["case_id"] == "C-1")
    assert job["employer"] == "Corner Shop" and job["stage"] == "in_work_support"
    assert {s["case_id"] for s in rows["stage_histories"]} == {"C-1", "C-2"}

    # The summary: where, files, row counts, chain head, manifest.
    assert f"exported to {out} ({fmt}, pseudonymised)" in said
    for name in FILES[fmt]:
        assert name in said
    assert f"events           {len(rows['events'])} rows" in said
    assert "clients          2 rows" in said
    assert f"chain head at export: event {before} {found['chain_head']['hash']}" in said
    assert f"manifest: {out / 'manifest.json'}" in said
    assert f"logged as audit event {before + 1} (by sam)" in said


@pytest.mark.parametrize("fmt", FORMATS)
def test_exports_are_pseudonymised_by_default(run: CLI, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / "review"
    ok(run("export", str(out), "--format", fmt, actor="ava"))  # even an auditor may export
    with se_flow.open(run.db, actor="ada") as flow:
        pseudonym = flow.case("C-1").participant_id
    everything = "".join(p.read_text(encoding="utf-8") for p in out.iterdir())
    for secret in PERSONAL:
        assert secret not in everything
    assert pseudonym in everything
    assert manifest(out)["request"]["include_personal_data"] is False


def test_an_admin_may_include_personal_data(run: CLI, tmp_path: Path) -> None:
    out = tmp_path / "review"
    said = ok(run("export", str(out), "--table", "clients", "--include-personal-data", actor="ada"))
    assert "(csv, with personal data)" in said and "keep it secure" in said
    clients = read_rows(out, "csv")["clients"]
    assert {c["name"] for c in clients} == {"Alex Doe", "Bea Hollis"}
    with se_flow.open(run.db, actor="ada") as flow:
        logged = flow.events()[-1]
    assert logged.kind == "export" and logged.actor == "ada"
    assert logged.payload["personal_data"] is True


def test_a_coach_asking_for_personal_data_is_refused_and_nothing_is_written(
    run: CLI, db: Path, tmp_path: Path
) -> None:
    before = event_count(db)
    out = tmp_path / "review"
    refused(
        run("export", str(out), "--include-personal-data"),
        7,
        "only an admin may export personal data",
        "sam",
    )
    assert not out.exists() and leftovers(tmp_path) == []
    assert event_count(db) == before


def test_an_existing_folder_is_refused_unless_force(run: CLI, db: Path, tmp_path: Path) -> None:
    out = tmp_path / "review"
    out.mkdir()  # an empty folder is fine
    ok(run("export", str(out)))
    first = manifest(out)["export_id"]
    before = event_count(db)

    refused(run("export", str(out)), 5, str(out), "exists and is not empty")
    assert manifest(out)["export_id"] == first and event_count(db) == before

    ok(run("export", str(out), "--force", "--format", "jsonl"))
    assert manifest(out)["export_id"] != first
    assert {p.name for p in out.iterdir()} == FILES["jsonl"] | {"manifest.json"}

    # --force replaces an earlier export, never a folder of someone's other files.
    other = tmp_path / "papers"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    refused(run("export", str(other), "--force"), 5, "not an se-flow export")
    assert [p.name for p in other.iterdir()] == ["notes.txt"]
    assert leftovers(tmp_path) == []


def test_force_refuses_a_folder_that_only_has_a_manifest_json(run: CLI, tmp_path: Path) -> None:
    # A manifest.json alone proves nothing: the folder's other files are someone's work.
    other = tmp_path / "papers"
    other.mkdir()
    (other / "manifest.json").write_text('{"manifest_version": 3}')
    (other / "thesis.docx").write_text("three years of work")
    said = refused(run("export", str(other), "--force"), 5, str(other), "not an se-flow export")
    assert "not replacing it" in said
    assert (other / "thesis.docx").read_text() == "three years of work"
    assert sorted(p.name for p in other.iterdir()) == ["manifest.json", "thesis.docx"]
    assert leftovers(tmp_path) == []


def test_force_refuses_an_earlier_export_with_a_file_added_or_changed(
    run: CLI, tmp_path: Path
) -> None:
    out = tmp_path / "review"
    ok(run("export", str(out)))
    (out / "my-notes.txt").write_text("mine")
    refused(run("export", str(out), "--force"), 5, "my-notes.txt is not listed")
    assert (out / "my-notes.txt").read_text() == "mine"
    (out / "my-notes.txt").unlink()
    with (out / "clients.csv").open("a") as f:
        f.write("my own row\n")
    refused(run("export", str(out), "--force"), 5, "clients.csv does not match")
    assert (out / "clients.csv").read_text().endswith("my own row\n")


def test_force_never_replaces_the_folder_holding_the_database(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `cd office && se-flow --db caseload.db export . --force`, where an earlier export's
    # manifest.json lies beside the database.
    ok(CLI(db)("export", str(tmp_path / "review")))
    (db.parent / "manifest.json").write_bytes((tmp_path / "review" / "manifest.json").read_bytes())
    before = event_count(db)
    monkeypatch.chdir(db.parent)
    here = CLI(Path("caseload.db"))
    said = refused(here("export", ".", "--force"), 5, "holds the database", "not replacing it")
    assert "caseload.db" in said
    assert db.is_file() and event_count(db) == before
    with se_flow.open(db, create=False, actor="ada") as flow:
        assert flow.verify().ok
    # Nor any folder above the database.
    refused(here("export", "..", "--force"), 5, "holds the database")
    assert db.is_file()


BAD_REQUESTS: list[tuple[tuple[str, ...], tuple[str, ...]]] = [
    (("--format", "xml"), ("unknown export format 'xml'", "csv, jsonl, json")),
    (("--table", "people"), ("unknown export table 'people'", "stage_histories")),
    (("--table", "events", "--table", "people"), ("'people'",)),
    (("--status", "retired"), ("unknown status 'retired'", "active, paused, closed")),
    (("--stage", "moon"), ("unknown stage 'moon'",)),
    (("--since", "last week"), ("--since 'last week' is not a date",)),
    (("--until", "2026-13-01"), ("--until '2026-13-01' is not a date",)),
    (("--since", "2026-02-01", "--until", "2026-01-01"), ("is after until",)),
]


@pytest.mark.parametrize(
    ("args", "words"), [pytest.param(a, w, id=" ".join(a)) for a, w in BAD_REQUESTS]
)
def test_bad_export_requests_exit_5_naming_what_is_wrong(
    run: CLI, db: Path, tmp_path: Path, args: tuple[str, ...], words: tuple[str, ...]
) -> None:
    before = event_count(db)
    out = tmp_path / "review"
    refused(run("export", str(out), *args), 5, *words)
    assert not out.exists() and leftovers(tmp_path) == []
    assert event_count(db) == before


@pytest.mark.parametrize(
    ("args", "words"),
    [(("--coach", "nobody"), "no staff member 'nobody'"), (("--case", "C-99"), "no case 'C-99'")],
)
def test_an_export_for_no_one_or_no_case_exits_4_as_every_lookup_does(
    run: CLI, db: Path, tmp_path: Path, args: tuple[str, ...], words: str
) -> None:
    before = event_count(db)
    out = tmp_path / "review"
    refused(run("export", str(out), *args), 4, words)
    assert not out.exists() and leftovers(tmp_path) == []
    assert event_count(db) == before


@pytest.mark.parametrize("points_at", ["folder", "nowhere"])
def test_a_symbolic_link_is_refused_saying_it_is_one(
    run: CLI, db: Path, tmp_path: Path, points_at: str
) -> None:
    real = tmp_path / "real"
    if points_at == "folder":
        real.mkdir()
    link = tmp_path / "review"
    link.symlink_to(real)
    before = event_count(db)
    refused(
        run("export", str(link), "--force"),
        5,
        f"cannot export to {link}: it is a symbolic link (to {real})",
    )
    assert link.is_symlink() and event_count(db) == before
    assert not real.exists() or list(real.iterdir()) == []
    assert leftovers(tmp_path) == []
    (tmp_path / "plain").write_text("x")
    refused(run("export", str(tmp_path / "plain")), 5, "it exists and is not a folder")


def test_a_missing_parent_folder_is_refused(run: CLI, tmp_path: Path) -> None:
    refused(run("export", str(tmp_path / "no" / "such")), 5, "does not exist")


def test_filters_pick_cases_and_are_recorded(run: CLI, tmp_path: Path) -> None:
    out = tmp_path / "kim"
    said = ok(
        run(
            "export", str(out), "--coach", "kim", "--table", "clients",
            "--table", "stage_histories", "--since", "2000-01-01", "--until", "today",
        )
    )  # fmt: skip
    found = manifest(out)
    assert list(found["tables"]) == ["clients", "stage_histories"]
    assert found["request"]["filters"]["coach"] == "kim"
    assert found["request"]["filters"]["since"] == "2000-01-01"
    rows = read_rows(out, "csv")
    assert {r["case_id"] for table in rows.values() for r in table} == {"C-2"}
    assert "filters: since=2000-01-01, until=" in said and "coach=kim" in said

    out = tmp_path / "closed"
    ok(run("export", str(out), "--status", "closed", "--format", "jsonl"))
    assert all(not r for r in read_rows(out, "jsonl").values())  # nothing closed yet


def test_export_json_prints_the_manifest(run: CLI, tmp_path: Path) -> None:
    out = tmp_path / "review"
    result = run("export", str(out), "--format", "json", "--json")
    data = json.loads(ok(result))
    assert data == manifest(out)
    assert data["files"]["export.json"]["sha256"]


def test_export_shows_a_progress_bar_on_a_terminal(
    run: CLI, db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=100, highlight=False)
    monkeypatch.setattr(cli, "_on_terminal", lambda: True)
    monkeypatch.setattr(cli, "_console", lambda: terminal)
    events = event_count(db)
    said = ok(run("export", str(tmp_path / "review")))
    drawn = screen.getvalue()
    for table in TABLES:
        assert table in drawn
    assert f"{events} rows" in drawn and "2 rows" in drawn  # events, clients: fed by callback
    assert "exported to" in said and "exported to" not in drawn


def test_no_progress_bar_into_a_pipe(
    run: CLI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_console() -> Console:
        raise AssertionError("a progress bar was drawn into a pipe")

    monkeypatch.setattr(cli, "_console", no_console)
    ok(run("export", str(tmp_path / "review")))


# --- checkpoints ------------------------------------------------------------------------------


def test_checkpoint_prints_the_head_as_json(run: CLI, db: Path) -> None:
    result = run("audit", "checkpoint", actor="ava")
    kept = json.loads(ok(result))
    assert set(kept) == {"store_id", "seq", "hash", "taken_at"}
    assert kept["seq"] == event_count(db)
    assert se_flow.Checkpoint.from_json(kept).seq == kept["seq"]
    assert "keep this checkpoint" in result.stderr


def test_checkpoint_then_verify_with_it(run: CLI, db: Path, tmp_path: Path) -> None:
    kept = tmp_path / "head.json"
    said = ok(run("audit", "checkpoint", "--out", str(kept), actor="ava"))
    seq = json.loads(kept.read_text())["seq"]
    assert f"checkpoint written to {kept}: event {seq}" in said and "keep it" in said
    refer(db, "Cy Ng")  # the log grows: appended to, not rewritten

    said = ok(run("audit", "verify", "--checkpoint", str(kept), actor="ava"))
    assert said.startswith("audit chain ok:")
    assert f"checkpoint event {seq}" in said and "only appended to since" in said
    data = run.json("audit", "verify", "--checkpoint", str(kept), actor="ava")
    assert data["ok"] is True and data["head_seq"] > seq


def test_checkpoint_never_overwrites_a_file(run: CLI, tmp_path: Path) -> None:
    kept = tmp_path / "head.json"
    kept.write_text("an older checkpoint")
    refused(run("audit", "checkpoint", "--out", str(kept)), 5, str(kept), "already exists")
    assert kept.read_text() == "an older checkpoint"
    missing = tmp_path / "no" / "head.json"
    refused(run("audit", "checkpoint", "--out", str(missing)), 5, str(missing))
    assert not missing.parent.exists()


def test_a_truncated_tail_is_caught_only_with_the_checkpoint(
    run: CLI, db: Path, tmp_path: Path
) -> None:
    with se_flow.open(db) as flow:  # the last events touch no case: the case table can't tell
        flow.add_staff("zoe", "Zoe Coach", "coach", actor="ada")
        flow.add_staff("yan", "Yan Coach", "coach", actor="ada")
    kept = tmp_path / "head.json"
    ok(run("audit", "checkpoint", "--out", str(kept)))
    seq = json.loads(kept.read_text())["seq"]
    drop_guards(db)
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("DELETE FROM events WHERE seq > ?", (seq - 2,))
        # Left alone, the staff table would give the truncation away; a careful forger
        # removes those rows too.
        conn.execute("DELETE FROM staff WHERE id IN ('zoe', 'yan')")

    ok(run("audit", "verify"))  # a consistent chain, and the cases still match it...
    err = refused(run("audit", "verify", "--checkpoint", str(kept)), 9, "truncated")
    assert f"events {seq - 1} to {seq} were removed" in err  # ...but not the log the auditor saw
    result = run("audit", "verify", "--checkpoint", str(kept), "--json")
    assert result.exit_code == 9
    assert json.loads(result.stdout)["bad_seq"] == seq - 1


def test_a_checkpoint_from_another_database_fails(run: CLI, tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with se_flow.open(other) as flow:
        flow.add_staff("ada", "Ada Admin", "admin", actor="ada")
        store_id = flow.store.store_id()
    kept = tmp_path / "theirs.json"
    ok(CLI(other)("audit", "checkpoint", "--out", str(kept), actor="ada"))
    err = refused(run("audit", "verify", "--checkpoint", str(kept)), 9, store_id)
    assert "a different (or replaced) database" in err


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (None, "cannot be read"),
        ("not json at all", "not a checkpoint"),
        ("[1, 2]", "not a checkpoint"),
        ('{"seq": 3, "hash": "ab"}', "store_id"),
        (b"\xff\xfe\x00", "cannot be read"),
    ],
    ids=["missing", "not-json", "not-an-object", "no-store-id", "not-text"],
)
def test_an_unusable_checkpoint_file_exits_5_naming_it(
    run: CLI, tmp_path: Path, content: str | bytes | None, words: str
) -> None:
    kept = tmp_path / "head.json"
    if isinstance(content, bytes):
        kept.write_bytes(content)
    elif content is not None:
        kept.write_text(content)
    refused(run("audit", "verify", "--checkpoint", str(kept)), 5, str(kept), words)


# --- verify-export ----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_verify_export_ok_then_an_edited_file_exits_9_naming_it(
    run: CLI, tmp_path: Path, fmt: str
) -> None:
    out = tmp_path / "review"
    ok(run("export", str(out), "--format", fmt))
    said = ok(run("audit", "verify-export", str(out), actor="ava"))
    assert said.startswith(f"export ok: {out}: {len(FILES[fmt])} file(s) match the manifest")
    assert f"the audit log of {run.db}" in said
    data = run.json("audit", "verify-export", str(out), actor="ava")
    assert data["ok"] is True and data["problems"] == [] and data["checked_against_log"]
    assert data["rows"]["clients"] == 2

    edited = out / ("export.json" if fmt == "json" else f"clients.{fmt}")
    text = edited.read_text(encoding="utf-8")
    edited.write_text(text.replace("Corner Shop", "Corner Shops", 1), encoding="utf-8")
    err = refused(run("audit", "verify-export", str(out)), 9, "does not match its manifest")
    lines = err.splitlines()
    assert any(line.startswith(f"  ✗ {edited.name} has changed") for line in lines[1:])
    result = run("audit", "verify-export", str(out), "--json")
    assert result.exit_code == 9
    data = json.loads(result.stdout)
    assert data["ok"] is False and any(edited.name in p for p in data["problems"])


def test_verify_export_without_a_database_checks_the_manifest_only(
    run: CLI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "review"
    ok(run("export", str(out)))
    # A careful forger edits a file and rewrites the manifest's hash to match.
    clients = out / "clients.csv"
    clients.write_text(clients.read_text().replace("Corner Shop", "Corner Shops"))
    data = manifest(out)
    data["files"]["clients.csv"]["sha256"] = hashlib.sha256(clients.read_bytes()).hexdigest()
    data["files"]["clients.csv"]["bytes"] = clients.stat().st_size
    (out / "manifest.json").write_text(json.dumps(data))

    # No database named, and none at the default path (a named one missing is exit 10).
    monkeypatch.setattr(cli, "default_db_path", lambda: tmp_path / "not-here.db")
    alone = CLI(tmp_path / "unused.db").raw
    said = ok(alone("--as", "ava", "audit", "verify-export", str(out)))
    assert "checked against its manifest only" in said
    assert json.loads(ok(alone("--as", "ava", "audit", "verify-export", str(out), "--json")))[
        "checked_against_log"
    ] is None  # fmt: skip
    refused(run("audit", "verify-export", str(out)), 9, "does not match")
    assert "differ from what the log recorded" in run("audit", "verify-export", str(out)).stderr


def test_verify_export_refusals(run: CLI, tmp_path: Path) -> None:
    refused(run("audit", "verify-export", str(tmp_path / "nothing")), 9, "no export folder")
    (tmp_path / "empty").mkdir()
    refused(run("audit", "verify-export", str(tmp_path / "empty")), 9, "manifest.json is missing")

    other = tmp_path / "other.db"
    with se_flow.open(other) as flow:
        flow.add_staff("ada", "Ada Admin", "admin", actor="ada")
    theirs = tmp_path / "theirs"
    ok(CLI(other)("export", str(theirs), actor="ada"))
    refused(run("audit", "verify-export", str(theirs)), 9, "not this one")

    out = tmp_path / "review"
    ok(run("export", str(out)))
    (out / "extra.csv").write_text("a,b\n")
    err = refused(run("audit", "verify-export", str(out)), 9)
    assert "  ✗ extra.csv is not in the manifest (a file was added)" in err.splitlines()


# --- start-up cost ----------------------------------------------------------------------------


def test_json_paths_do_not_import_rich(db: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SE_FLOW_")}
    out = tmp_path / "review"
    for args, exports in (
        (["export", str(out), "--json"], True),
        (["audit", "verify-export", str(out), "--json"], True),
        # A checkpoint is the audit module's: it needs no export machinery at all.
        (["audit", "checkpoint"], False),
    ):
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "se_flow.cli", "--db", str(db),
             "--as", "sam", *args],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if "|" in line}
        assert ("se_flow._export" in imported) is exports, args
        assert not {name for name in imported if name.split(".")[0] == "rich"}, args


# What a spreadsheet would run, typed where se-flow still takes it as it is.
LINK = '=HYPERLINK("http://x","y")'
CONTACT = "+44 1632 960000"
SOURCE = "-GP"
REASON = "+cmd|' /C calc'!A0"
NOTE = "@SUM(1)"
EMPLOYER = "=1+2"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cells(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.reader(f))


def test_csv_cells_that_a_spreadsheet_would_run_are_escaped(
    run: CLI, db: Path, tmp_path: Path
) -> None:
    with se_flow.open(db, actor="sam") as flow:
        attack = flow.refer(
            se_flow.PersonalDetails(name=LINK, contact=CONTACT),
            source=SOURCE,
            referral={"notes": NOTE},
        ).case.id
        here = flow.case(attack).state
        while here != "in_work_support":
            forward = LEAST_EVIDENCE[here]
            for kind, fields in forward.records:
                typed = {**fields, **EXTRA.get(kind, {})}
                flow.record(attack, kind, {k: EMPLOYER if k == "employer" else v
                                           for k, v in typed.items()})  # fmt: skip
            here = flow.advance(attack, forward.trigger).case.state
        flow.pause(attack, reason=REASON, review_date=dt.date.today() + dt.timedelta(days=14))
        gone = flow.refer("Cy Dunn", source="GP").case.id
        flow.withdraw(gone, reason=REASON)
    out = tmp_path / "review"
    ok(run("export", str(out), "--include-personal-data", actor="ada"))
    rows = read_rows(out, "csv")

    client = next(c for c in rows["clients"] if c["case_id"] == attack)
    assert client["name"] == "'" + LINK
    assert client["contact"] == "'" + CONTACT
    assert client["employer"] == "'" + EMPLOYER
    for name in ("clients", "stage_histories"):
        cells = [cell for row in csv_cells(out / f"{name}.csv") for cell in row]
        assert not [cell for cell in cells if cell.startswith(FORMULA_STARTS)], name
    # events.csv and texts.csv stay exactly as stored, so they still re-verify; the manifest
    # says how to open them. (Reasons and notes are free texts, kept apart in texts.csv.)
    events = [e for e in rows["events"] if e["case_id"] in (attack, gone)]
    seqs = {int(e["seq"]) for e in events}
    texts = [t["text"] for t in rows["texts"] if int(t["seq"]) in seqs]
    assert [t for t in texts if t == REASON] == [REASON, REASON]
    referral = json.loads(next(e for e in events if e["case_id"] == attack)["payload"])
    assert SOURCE in json.dumps(referral) and NOTE in texts
    assert "import" in manifest(out)["csv_safety"] and "events.csv" in manifest(out)["csv_safety"]
    ok(run("audit", "verify-export", str(out)))
    # Only CSV is escaped: JSON holds the text as it is.
    ok(
        run(
            "export",
            str(tmp_path / "as-json"),
            "--format",
            "jsonl",
            "--include-personal-data",
            actor="ada",
        )
    )
    clients = read_rows(tmp_path / "as-json", "jsonl")["clients"]
    assert next(c for c in clients if c["case_id"] == attack)["name"] == LINK
    assert "csv_safety" not in manifest(tmp_path / "as-json")


def rename_staff_in_the_log(db: Path, old: str, new: str) -> None:
    """Make `db` what an older se-flow, which took ids such as `@ops`, would have written:
    `old` becomes `new` in every table and event, and the chain is sealed again over the
    rewritten events (so verify and verify-export still pass)."""
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        drop_triggers(conn)
        conn.row_factory = sqlite3.Row
        conn.execute("BEGIN")
        conn.execute("UPDATE staff SET id = ? WHERE id = ?", (new, old))
        conn.execute("UPDATE cases SET coach = ? WHERE coach = ?", (new, old))
        conn.execute("UPDATE records SET actor = ? WHERE actor = ?", (new, old))
        conn.execute("UPDATE due_index SET coach = ? WHERE coach = ?", (new, old))
        prev = GENESIS
        for found in conn.execute("SELECT * FROM events ORDER BY seq").fetchall():
            row = dict(found)
            row["actor"] = new if row["actor"] == old else row["actor"]
            row["payload"] = row["payload"].replace(json.dumps(old), json.dumps(new))
            row["prev_hash"] = prev
            row["hash"] = prev = row_hash(row)
            conn.execute(
                "UPDATE events SET actor = ?, payload = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                (row["actor"], row["payload"], row["prev_hash"], row["hash"], row["seq"]),
            )
        conn.execute("COMMIT")


def test_a_legacy_staff_id_with_a_formula_start_is_escaped_where_it_is_shown(
    run: CLI, db: Path, tmp_path: Path
) -> None:
    # Refused at entry now...
    before = event_count(db)
    refused(
        run("staff", "add", "--name", "Ops Desk", "--role", "coach", "--", "@ops", actor="ada"),
        5,
        "'@ops' is not a valid staff id",
    )
    assert event_count(db) == before
    # ...but a database from before keeps the ids it was given.
    with se_flow.open(db, actor="ada") as flow:
        flow.add_staff("opsdesk", "Ops Desk", "coach")
        case = flow.refer("Di Ellis", source="GP", coach="opsdesk", actor="opsdesk").case.id
        flow.advance(case, "engage", actor="opsdesk")
    rename_staff_in_the_log(db, "opsdesk", "@opsdesk")
    assert "ok" in ok(run("audit", "verify", actor="ada"))

    out = tmp_path / "review"
    ok(run("export", str(out), actor="ada"))
    rows = read_rows(out, "csv")
    spells = [s for s in rows["stage_histories"] if s["case_id"] == case]
    assert len(spells) == 2 and {s["actor"] for s in spells} == {"'@opsdesk"}
    assert next(c for c in rows["clients"] if c["case_id"] == case)["coach"] == "'@opsdesk"
    events = [e for e in rows["events"] if e["case_id"] == case]
    assert {e["actor"] for e in events} == {"@opsdesk"}  # as stored: it re-verifies
    ok(run("audit", "verify-export", str(out), actor="ada"))
