"""Checking an export against its manifest, and against the log it came from: every way a
file or manifest can be altered after the fact is caught and named."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import Steps

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
