"""Checking an export against its manifest, and against the log it came from: every way a
file or manifest can be altered after the fact is caught and named."""

from __future__ import annotations

import csv
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from helpers import Steps, drop_triggers, sqlite_conn

import se_flow
from se_flow import SEFlow

FORMATS = ["csv", "jsonl", "json"]
DATA = {"csv": "clients.csv", "jsonl": "clients.jsonl", "json": "export.json"}
EVENTS = {"csv": "events.csv", "jsonl": "events.jsonl", "json": "export.json"}


@pytest.fixture
def caseload(steps: Steps) -> None:
    steps.to("in_work_support")
    steps.to("employer_engagement")


def export(flow: SEFlow, tmp_path: Path, fmt: str = "csv", **kw: Any) -> Path:
    out = tmp_path / f"out-{fmt}"
    flow.export(out, fmt=fmt, **kw)
    return out


def rewrite(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, count), encoding="utf-8")


def rehash(out: Path, **rows: int) -> None:
    """What a careful forger does next: make the manifest agree with the edited files."""
    manifest = json.loads((out / "manifest.json").read_text())
    for name, entry in manifest["files"].items():
        data = (out / name).read_bytes()
        entry["sha256"] = hashlib.sha256(data).hexdigest()
        entry["bytes"] = len(data)
    for table, n in rows.items():
        manifest["tables"][table]["rows"] = n
    (out / "manifest.json").write_text(json.dumps(manifest))


def problems(result: se_flow.ExportVerification) -> str:
    assert not result.ok and not bool(result)
    return " | ".join(result.problems)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_fresh_export_verifies(flow: SEFlow, caseload: None, tmp_path: Path, fmt: str) -> None:
    out = export(flow, tmp_path, fmt)
    for result in (se_flow.verify_export(out), flow.verify_export(out)):
        assert result.ok and result.problems == ()
        assert result.manifest is not None and result.rows == result.manifest.rows
        result.raise_if_failed()


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_file_edited_after_the_fact_is_caught(
    flow: SEFlow, caseload: None, tmp_path: Path, fmt: str
) -> None:
    out = export(flow, tmp_path, fmt)
    rewrite(out / DATA[fmt], "12.80", "14.80")
    found = problems(se_flow.verify_export(out))
    assert f"{DATA[fmt]} has changed since the export" in found
    assert "has changed" in problems(flow.verify_export(out))


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_edited_event_is_caught_even_when_the_manifest_is_rehashed(
    flow: SEFlow, caseload: None, tmp_path: Path, fmt: str
) -> None:
    out = export(flow, tmp_path, fmt, tables=["events"])
    rewrite(out / EVENTS[fmt], "library", "town hall")
    rehash(out)
    assert "does not match its own hash" in problems(se_flow.verify_export(out))


@pytest.mark.parametrize("fmt", ["jsonl", "json"])
def test_a_removed_event_row_breaks_the_chain_in_the_file(
    flow: SEFlow, caseload: None, tmp_path: Path, fmt: str
) -> None:
    out = export(flow, tmp_path, fmt, tables=["events"])
    path = out / EVENTS[fmt]
    lines = path.read_text().splitlines(keepends=True)
    where = next(i for i, line in enumerate(lines) if '"seq":5,' in line)
    del lines[where]
    path.write_text("".join(lines))
    manifest = json.loads((out / "manifest.json").read_text())
    rehash(out, events=manifest["tables"]["events"]["rows"] - 1)
    assert "does not follow the one before it" in problems(se_flow.verify_export(out))


def test_an_edited_client_list_with_a_rehashed_manifest_is_caught_against_the_log(
    flow: SEFlow, caseload: None, tmp_path: Path
) -> None:
    out = export(flow, tmp_path)
    rewrite(out / "clients.csv", "12.80", "14.80")
    rehash(out)
    # On its own the folder is consistent again: only the log still knows the true hashes.
    assert se_flow.verify_export(out).ok
    found = problems(flow.verify_export(out))
    assert "files differ from what the log recorded" in found


def test_a_manifest_that_does_not_match_its_files_is_caught(
    flow: SEFlow, caseload: None, tmp_path: Path
) -> None:
    out = export(flow, tmp_path)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["tables"]["stage_histories"]["rows"] += 2
    (out / "manifest.json").write_text(json.dumps(manifest))
    rows = manifest["tables"]["stage_histories"]["rows"]
    assert f"holds {rows - 2} stage_histories rows; the manifest says {rows}" in problems(
        se_flow.verify_export(out)
    )
    assert "rows differ from what the log recorded" in problems(flow.verify_export(out))


def test_a_removed_file_and_an_added_file_are_caught(
    flow: SEFlow, caseload: None, tmp_path: Path
) -> None:
    out = export(flow, tmp_path)
    (out / "events.csv").unlink()
    (out / "notes.txt").write_text("extra")
    found = problems(se_flow.verify_export(out))
    assert "events.csv is missing" in found
    assert "notes.txt is not in the manifest" in found


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        ("{not json", "manifest.json is unreadable"),
        ('{"format": "something else"}', "manifest.json is unreadable"),
        ('{"format": "se-flow export"}', "manifest.json is unreadable"),
        (None, "manifest.json is missing"),
    ],
)
def test_an_unreadable_or_missing_manifest_is_reported_not_raised(
    flow: SEFlow, caseload: None, tmp_path: Path, damage: str | None, named: str
) -> None:
    out = export(flow, tmp_path)
    if damage is None:
        (out / "manifest.json").unlink()
    else:
        (out / "manifest.json").write_text(damage)
    assert named in problems(se_flow.verify_export(out))
    assert named in problems(flow.verify_export(out))


def test_a_bundle_cut_short_is_caught(flow: SEFlow, caseload: None, tmp_path: Path) -> None:
    out = export(flow, tmp_path, "json")
    path = out / "export.json"
    path.write_bytes(path.read_bytes()[:-300])
    found = problems(se_flow.verify_export(out))
    assert "export.json has changed" in found and "cannot be read as json" in found


def test_no_folder_is_a_problem_not_an_exception(tmp_path: Path) -> None:
    assert "no export folder" in problems(se_flow.verify_export(tmp_path / "nowhere"))


def test_an_export_from_another_database_is_caught(
    flow: SEFlow, caseload: None, tmp_path: Path
) -> None:
    out = export(flow, tmp_path)
    with se_flow.open(tmp_path / "other.db", actor="ada") as other:
        other.add_staff("ada", "Ada Admin", "admin")
        found = problems(other.verify_export(out))
    assert f"taken from database {flow.store.store_id()}, not this one" in found


def test_raise_if_failed_raises_export_mismatch_naming_the_problems(
    flow: SEFlow, caseload: None, tmp_path: Path
) -> None:
    out = export(flow, tmp_path)
    (out / "clients.csv").unlink()
    with pytest.raises(se_flow.ExportMismatch, match=r"clients\.csv is missing") as raised:
        flow.verify_export(out).raise_if_failed()
    assert raised.value.exit_code == 9


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_export_with_a_long_note_verifies(
    flow: SEFlow, steps: Steps, tmp_path: Path, fmt: str
) -> None:
    # 131,040 characters: over the csv module's default cell limit (131,072) in the payload.
    case = steps.to("customer_engagement")
    text = ("a long case note. " * 7280)[:131_040]
    assert len(text) == 131_040
    flow.record(case.id, "note", text=text)
    out = export(flow, tmp_path, fmt)
    for result in (se_flow.verify_export(out), flow.verify_export(out)):
        assert result.ok, result.problems
        assert result.manifest is not None and result.rows == result.manifest.rows
    # The reader's limit is raised only while verifying.
    assert csv.field_size_limit() == 131_072


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    *path, last = dotted.split(".")
    for key in path:
        data = data[key]
    data[last] = value


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("actor", "ada"),
        ("role", "admin"),
        ("created_at", "2026-01-01T09:00:00+00:00"),
        ("workflow.hash", "0" * 64),
        ("request.tables", ["events"]),
        ("csv_safety", "double-click away"),
    ],
)
def test_any_rewritten_manifest_field_is_caught_against_the_log(
    flow: SEFlow, caseload: None, tmp_path: Path, field: str, value: Any
) -> None:
    out = export(flow, tmp_path)
    assert flow.verify_export(out).ok
    manifest = json.loads((out / "manifest.json").read_text())
    _set(manifest, field, value)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    # The folder alone cannot tell (nothing in it is signed); the log's own record can.
    assert se_flow.verify_export(out).ok
    found = problems(flow.verify_export(out))
    assert "manifest.json is not the manifest the log recorded for this export" in found


def test_a_field_added_to_the_manifest_is_caught_against_the_log(
    flow: SEFlow, caseload: None, tmp_path: Path
) -> None:
    out = export(flow, tmp_path)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["approved_by"] = "the board"
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert "manifest.json is not the manifest the log recorded" in problems(flow.verify_export(out))


def test_the_audit_event_records_the_manifest_hash(
    flow: SEFlow, caseload: None, tmp_path: Path
) -> None:
    out = export(flow, tmp_path)
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk["manifest_version"] == 2
    event = flow.events()[-1]
    assert (event.seq, event.hash) == (
        on_disk["audit_event"]["seq"],
        on_disk["audit_event"]["hash"],
    )
    body = {k: v for k, v in on_disk.items() if k != "audit_event"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert event.payload["manifest_sha256"] == hashlib.sha256(text.encode()).hexdigest()


def test_a_manifest_version_this_se_flow_does_not_know_is_reported(
    flow: SEFlow, caseload: None, tmp_path: Path
) -> None:
    out = export(flow, tmp_path)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["manifest_version"] = 3
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert "manifest_version 3 is not one this se-flow reads" in problems(
        se_flow.verify_export(out)
    )


# The same forgery, made in the database before an unfiltered export of it.
TAMPERS = {
    "edited": ["UPDATE events SET actor = 'lee' WHERE seq = 8"],
    "removed": ["DELETE FROM events WHERE seq = 9"],
    "swapped": [
        "UPDATE events SET seq = CASE seq WHEN 8 THEN -9 ELSE -8 END WHERE seq IN (8, 9)",
        "UPDATE events SET seq = -seq WHERE seq < 0",
    ],
}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("tamper", list(TAMPERS))
def test_the_export_verifier_and_verify_name_the_same_first_bad_event(
    flow: SEFlow, caseload: None, tmp_path: Path, fmt: str, tamper: str
) -> None:
    conn = sqlite_conn(flow)
    drop_triggers(conn)
    for sql in TAMPERS[tamper]:
        conn.execute(sql)
    logged = flow.verify()
    assert not logged.ok and logged.bad_seq is not None and logged.problem
    out = export(flow, tmp_path, fmt, tables=["events"])
    found = problems(se_flow.verify_export(out))
    named = re.search(rf"{EVENTS[fmt]}: event (\d+) (does not match|does not follow)", found)
    assert named is not None, found
    # One walk: the same event, and the same kind of fault (altered, or out of its place).
    assert int(named.group(1)) == logged.bad_seq
    assert ("altered" in found) is ("altered" in logged.problem)
