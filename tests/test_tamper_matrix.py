"""The tamper matrix (issue 15): every attack of the README's threat model run against a real
database, and for each the command that catches it (with the verification key, with a later
checkpoint, with the export's own event) or the README line that says it cannot be caught.

The database is set up through the library with a test clock (so the sealing epochs are known:
day 1 is over, day 2 is the epoch the attacker is in); every verdict comes from the
`se-flow` command an auditor would type. The attacker has write access to the database file
(every trigger dropped, as `helpers.drop_triggers` does) but not the sealing key, except in
the rows that say they stole it."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import attrs
import pytest
from helpers import Clock, Steps, drop_triggers
from test_cli import CLI
from test_seal import forged_export, insert_row, rechain, rows

import se_flow
from se_flow._keyfile import SealKeyFile
from se_flow._seal import seal_event

_TEXT = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
# As a reader reads it: without the emphasis marks and line breaks, in any case.
README = " ".join(_TEXT.replace("*", "").split()).lower()


@attrs.frozen
class Bed:
    """A sealed database an attacker is about to change: its key, its checkpoint file (kept
    on another share, appended to after every export), its last export (the log's last
    checkpoint) and one event after it."""

    db: Path
    key: str
    checkpoints: Path
    export: Path
    copy: Path
    """The copy an insider took when the last checkpoint but one was appended."""
    clock: Clock


@pytest.fixture
def bed(tmp_path: Path) -> Bed:
    clock = Clock()
    db = tmp_path / "live.db"
    share = tmp_path / "share"
    share.mkdir()
    checkpoints = share / "checkpoints.jsonl"
    with se_flow.open(db, clock=clock, actor="ada") as flow:
        key = flow.start_sealing()
        for staff_id, name, role in [
            ("ada", "Ada Admin", "admin"),
            ("sam", "Sam Coach", "coach"),
            ("ava", "Ava Auditor", "auditor"),
        ]:
            flow.add_staff(staff_id, name, role)
        flow.change_settings(checkpoint_file=checkpoints, checkpoint_on_export=True)
        steps = Steps(flow)
        flow.default_actor = "sam"
        steps.to("vocational_profiling")
        flow.append_checkpoint(checkpoints)
        flow.store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # type: ignore[attr-defined]
        copy = tmp_path / "copy.db"
        shutil.copy(db, copy)
        clock.advance(days=1)  # a new epoch: day 1's key is gone from the key file
        steps.refer("Bo Doe")
        flow.export(tmp_path / "export", actor="ava")
        flow.add_staff("kim", "Kim Coach", "coach", actor="ada")
    return Bed(db, key.text, checkpoints, tmp_path / "export", copy, clock)


def raw(bed: Bed) -> sqlite3.Connection:
    conn = sqlite3.connect(bed.db, isolation_level=None)
    drop_triggers(conn)
    return conn


def verdict(bed: Bed, *args: str) -> tuple[int, str]:
    result = CLI(bed.db)(*args, actor="ava")
    assert "Traceback" not in result.output
    return result.exit_code, result.output


# --- the attacks ----------------------------------------------------------------------------


def edit_and_recompute(bed: Bed) -> None:
    """Say a team leader's override of day 1 was a coach's plain move: change the first
    transition's actor and recompute the chain from there."""
    with raw(bed) as conn:
        log = rows(conn)
        at = next(r["seq"] for r in log if r["kind"] == "transition")
        tail = [{**log[at - 1], "actor": "ada", "role": "admin"}, *log[at:]]
        rechain(conn, tail, at)


def truncate_and_fix(bed: Bed) -> None:
    """Cut the last case's events (its referral, the export, a staff change) with their seals
    and records, and take the case and the staff member out of their tables, so every table
    fits the shorter log."""
    with raw(bed) as conn:
        ((cut,),) = conn.execute("SELECT MIN(seq) FROM events WHERE case_id = 'C-2'")
        for table in ("seals", "records", "events"):
            conn.execute(f"DELETE FROM {table} WHERE seq >= ?", (cut,))
        conn.execute("DELETE FROM cases WHERE id = 'C-2'")
        conn.execute("DELETE FROM staff WHERE id = 'kim'")


def forged_append(bed: Bed) -> None:
    """Append a correctly chained export event with INSERT (no trigger dropped)."""
    with sqlite3.connect(bed.db, isolation_level=None) as conn:
        last = rows(conn)[-1]
        with se_flow.open(bed.db, create=False, actor="ada", read_only=True) as flow:
            row = forged_export(flow, last["seq"] + 1, last["hash"], bed.clock.now)
        insert_row(conn, row)


def rollback_to_a_checkpoint_time_copy(bed: Bed) -> None:
    """Put back the copy taken when a checkpoint was appended (whole, sealed, chained)."""
    shutil.copy(bed.copy, bed.db)
    for suffix in ("-wal", "-shm"):
        Path(f"{bed.db}{suffix}").unlink(missing_ok=True)


def records_table_edit(bed: Bed) -> None:
    with raw(bed) as conn:
        conn.execute("UPDATE records SET fields = '{}' WHERE seq = (SELECT MIN(seq) FROM records)")


def staff_table_edit(bed: Bed) -> None:
    with raw(bed) as conn:
        conn.execute("UPDATE staff SET role = 'team_leader' WHERE id = 'sam'")


def case_table_edit(bed: Bed) -> None:
    with raw(bed) as conn:
        conn.execute("UPDATE cases SET state = 'job_matching' WHERE id = 'C-1'")


def due_table_edit(bed: Bed) -> None:
    """Move a deadline on (a first meeting that is overdue made to look due next month)."""
    with raw(bed) as conn:
        conn.execute(
            "UPDATE due_index SET due_on = '2099-01-01' WHERE (case_id, n) = "
            "(SELECT case_id, n FROM due_index WHERE due_on IS NOT NULL ORDER BY case_id, n "
            "LIMIT 1)"
        )


def due_table_delete(bed: Bed) -> None:
    """Take a deadline out of the due table: it would drop off every due list."""
    with raw(bed) as conn:
        conn.execute(
            "DELETE FROM due_index WHERE (case_id, n) = "
            "(SELECT case_id, n FROM due_index ORDER BY case_id DESC, n DESC LIMIT 1)"
        )


def due_table_insert(bed: Bed) -> None:
    """Add a deadline the log never made, on a case number nobody has."""
    with raw(bed) as conn:
        conn.execute(
            "INSERT INTO due_index (case_id, n, standard, anchor_on, occurrence, window_start, "
            "due_on, state, coach, num) VALUES ('C-99', 0, 'ipes_first_meeting', '2026-01-01', "
            "1, '2026-01-01', '2026-01-20', 'open', 'sam', 99)"
        )


def delete_the_exports_own_event(bed: Bed) -> None:
    """Remove the export's audit event and re-chain what follows: the log then looks as if
    nobody ever exported."""
    with raw(bed) as conn:
        log = rows(conn)
        at = next(r["seq"] for r in log if r["kind"] == "export")
        conn.execute("DELETE FROM records WHERE seq > ?", (at,))
        rechain(conn, log[at:], at)


def forge_todays_event_with_the_stolen_key(bed: Bed) -> None:
    """Root (or the database's own account) reads the key file and appends an event sealed
    under today's key: indistinguishable from a real one."""
    with raw(bed) as conn:
        last = rows(conn)[-1]
        with se_flow.open(bed.db, create=False, actor="ada", read_only=True) as flow:
            row = forged_export(flow, last["seq"] + 1, last["hash"], bed.clock.now)
            sealing = flow.store.sealing()
            store_id = flow.store.store_id()
        assert sealing is not None
        keys = SealKeyFile(f"{bed.db}.sealkey")
        found = seal_event(
            sealing,
            lambda epoch, seconds: keys.key_for(store_id, epoch, seconds),
            row["seq"],
            row["hash"],
            bed.clock.now,
        )
        insert_row(conn, row)
        conn.execute("INSERT INTO seals VALUES (?, ?, ?)", (found.seq, found.epoch, found.mac))


def rollback_to_the_latest_checkpoint(bed: Bed) -> None:
    """Cut back to exactly the last checkpoint's head (the export), taking the staff member
    added since out of the staff table: no later checkpoint exists to tell."""
    truncate_to = _last_checkpoint_seq(bed)
    with raw(bed) as conn:
        conn.execute("DELETE FROM staff WHERE id = 'kim'")
        conn.execute("DELETE FROM seals WHERE seq > ?", (truncate_to,))
        conn.execute("DELETE FROM records WHERE seq > ?", (truncate_to,))
        conn.execute("DELETE FROM events WHERE seq > ?", (truncate_to,))


def _last_checkpoint_seq(bed: Bed) -> int:
    import json

    return int(json.loads(bed.checkpoints.read_text().splitlines()[-1])["seq"])


# --- the matrix: attack -> how it is caught ---------------------------------------------------

Catch = Callable[[Bed], list[str]]


def with_key(bed: Bed) -> list[str]:
    return ["audit", "verify", "--key", bed.key]


def with_checkpoints(bed: Bed) -> list[str]:
    return ["audit", "verify", "--checkpoints", str(bed.checkpoints)]


def plain_verify(bed: Bed) -> list[str]:
    return ["audit", "verify"]


def export_check(bed: Bed) -> list[str]:
    return ["audit", "verify-export", str(bed.export)]


CAUGHT: dict[str, tuple[Callable[[Bed], None], Catch, str]] = {
    "edit and recompute": (edit_and_recompute, with_key, "seal"),
    "truncate and fix": (truncate_and_fix, with_checkpoints, "removed"),
    "forged append": (forged_append, with_key, "no seal"),
    "rollback to a checkpoint-time copy": (
        rollback_to_a_checkpoint_time_copy,
        with_checkpoints,
        "rolled back to an older copy",
    ),
    "records table edit": (records_table_edit, plain_verify, "record"),
    "staff table edit": (staff_table_edit, plain_verify, "staff member sam"),
    "case table edit": (case_table_edit, plain_verify, "C-1"),
    "due table edit": (due_table_edit, plain_verify, "the due table says"),
    "due table row deleted": (due_table_delete, plain_verify, "the due table lacks"),
    "due table row added": (due_table_insert, plain_verify, "the due table holds"),
    "deleting the export's own event": (
        delete_the_exports_own_event,
        export_check,
        "audit event",
    ),
}

# What the README's threat model says cannot be caught, line for line.
NOT_CAUGHT: dict[str, tuple[Callable[[Bed], None], str]] = {
    "forge today's event with the stolen key": (
        forge_todays_event_with_the_stolen_key,
        "cannot: an event forged in the epoch the key was stolen in, or later",
    ),
    "rollback to the latest checkpoint": (
        rollback_to_the_latest_checkpoint,
        "cannot: a rollback to exactly the latest checkpoint",
    ),
}


@pytest.mark.parametrize("attack", sorted(CAUGHT))
def test_each_attack_is_caught_by_its_command(bed: Bed, attack: str) -> None:
    tamper, catch, words = CAUGHT[attack]
    assert verdict(bed, *catch(bed))[0] == 0, "the database was already failing"
    tamper(bed)
    code, out = verdict(bed, *catch(bed))
    assert code == 9, out
    assert words in out, out


@pytest.mark.parametrize("attack", ["edit and recompute", "forged append"])
def test_the_chain_alone_does_not_catch_what_the_key_does(bed: Bed, attack: str) -> None:
    """Why the key matters: these pass the plain chain walk (and the earlier checkpoint)."""
    tamper, _, _ = CAUGHT[attack]
    tamper(bed)
    assert verdict(bed, *plain_verify(bed))[0] == 0


@pytest.mark.parametrize("attack", sorted(NOT_CAUGHT))
def test_what_cannot_be_caught_is_said_in_the_readme(bed: Bed, attack: str) -> None:
    tamper, line = NOT_CAUGHT[attack]
    assert line in README.split("### threat model", 1)[1], f"the threat model should say: {line}"
    tamper(bed)
    for catch in (with_key, with_checkpoints, plain_verify):
        code, out = verdict(bed, *catch(bed))
        assert code == 0, out


def test_every_attack_of_the_threat_model_is_in_the_matrix() -> None:
    section = README.split("### threat model", 1)[1].split(" ## ", 1)[0]
    for attack in [*CAUGHT, *NOT_CAUGHT]:
        assert attack.split(" with ")[0].split(" to ")[0] in section, attack
