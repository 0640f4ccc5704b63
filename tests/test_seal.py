"""Forward-secure sealing (issue 15, item 1): what an insider with write access to the file can
do that the plain chain misses, and that the verification key catches; the key file's life."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import START, Clock, Steps, drop_triggers, sqlite_conn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import se_flow
from se_flow import SEFlow, VerificationKey
from se_flow._audit import FIELDS, event_to_row, row_hash
from se_flow._model import EventDraft
from se_flow._seal import DAY, epoch_of, evolve, first_key

STAFF = [
    ("ada", "Ada Admin", "admin"),
    ("lee", "Lee Leader", "team_leader"),
    ("sam", "Sam Coach", "coach"),
    ("ava", "Ava Auditor", "auditor"),
]


def sealed_flow(
    path: Path | str, key_file: Path, clock: Clock, epoch_seconds: int = DAY
) -> tuple[SEFlow, VerificationKey]:
    flow = se_flow.open(path, clock=clock, actor="sam", seal_key=key_file)
    key = flow.start_sealing(epoch_seconds=epoch_seconds, actor="ada")
    for staff_id, name, role in STAFF:
        flow.add_staff(staff_id, name, role, actor="ada")
    return flow, key


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "s.db"


@pytest.fixture
def sealed(db: Path, clock: Clock) -> Iterator[tuple[SEFlow, VerificationKey]]:
    flow, key = sealed_flow(db, Path(f"{db}.sealkey"), clock)
    steps = Steps(flow)
    steps.to("job_matching")
    clock.advance(days=1)
    steps.to("vocational_profiling")
    with flow:
        yield flow, key


def forged_export(flow: SEFlow, seq: int, prev: str, at: dt.datetime) -> dict[str, Any]:
    draft = EventDraft(
        case_id=None,
        kind="export",
        actor="ada",
        role="admin",
        effective_at=at,
        recorded_at=at,
        workflow_hash=flow.workflow.hash,
        payload={"tables": ["clients"], "files": {}},
    )
    return event_to_row(draft, seq, prev)


def insert_row(conn: sqlite3.Connection, row: dict[str, Any]) -> None:
    names = ", ".join(FIELDS)
    conn.execute(f"INSERT INTO events ({names}) VALUES (:{names.replace(', ', ', :')})", row)


def rows(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    cur = conn.execute(f"SELECT {', '.join(FIELDS)} FROM events ORDER BY seq")
    return [dict(zip(FIELDS, r, strict=True)) for r in cur]


def rechain(conn: sqlite3.Connection, new: list[dict[str, Any]], start: int) -> None:
    """Write `new` as the log from position `start` (1-based) on, renumbered and re-chained as
    a forger with file access (but no key) would."""
    conn.execute("DELETE FROM events WHERE seq >= ?", (start,))
    prev = rows(conn)[-1]["hash"] if start > 1 else se_flow.GENESIS
    for i, row in enumerate(new, start=start):
        fixed = {**row, "seq": i, "prev_hash": prev}
        fixed["hash"] = row_hash(fixed)
        insert_row(conn, fixed)
        prev = fixed["hash"]


def failed(result: se_flow.Verification) -> str:
    assert not result.ok
    assert result.problem
    return result.problem


# --- what the key proves that the chain cannot ------------------------------------------------


def test_a_sealed_log_verifies_with_its_key_across_epochs(
    sealed: tuple[SEFlow, VerificationKey],
) -> None:
    flow, key = sealed
    result = flow.verify(key=key)
    assert result.ok and result.bad_epoch is None
    assert result.seals is not None and f"{result.events} events sealed in epochs" in result.seals
    assert flow.verify(key=key.text).ok and flow.verify(key=key.spoken).ok


def test_without_a_key_verify_says_what_it_cannot_prove(
    sealed: tuple[SEFlow, VerificationKey],
) -> None:
    flow, _ = sealed
    result = flow.verify()
    assert result.ok
    assert result.seals is not None and "seals not checked: no verification key given" in (
        result.seals
    )


def test_a_forged_append_through_insert_passes_the_chain_but_not_the_key(
    sealed: tuple[SEFlow, VerificationKey], clock: Clock
) -> None:
    flow, key = sealed
    conn = sqlite_conn(flow)
    seq, prev = flow.store.head()
    # No trigger dropped: events take INSERTs.
    insert_row(conn, forged_export(flow, seq + 1, prev, clock.now))
    assert flow.verify().ok
    result = flow.verify(key=key)
    assert "has no seal" in failed(result) and result.bad_seq == seq + 1


def test_editing_the_last_event_and_rechaining_is_caught_with_the_key(
    sealed: tuple[SEFlow, VerificationKey],
) -> None:
    flow, key = sealed
    conn = sqlite_conn(flow)
    drop_triggers(conn)
    log = rows(conn)
    last = {**log[-1], "reason": "edited afterwards"}
    rechain(conn, [last], len(log))
    assert flow.verify().ok
    result = flow.verify(key=key)
    assert "seal" in failed(result) and "altered" in (result.problem or "")
    assert result.bad_seq == len(log)
    assert result.bad_epoch == epoch_of(START + dt.timedelta(days=1), DAY)


def test_a_wrong_key_or_another_databases_is_named_as_such(
    sealed: tuple[SEFlow, VerificationKey], tmp_path: Path, clock: Clock
) -> None:
    flow, key = sealed
    other, theirs = sealed_flow(tmp_path / "o.db", tmp_path / "o.key", clock)
    other.disconnect()
    wrong = VerificationKey(bytes(32), key.start_seq, key.start_epoch, key.epoch_seconds)
    for bad in (theirs, wrong):
        assert "this key does not verify this database's seals" in failed(flow.verify(key=bad))


def test_a_key_mistyped_after_the_slash_is_named_as_a_key_problem_not_tampering(
    sealed: tuple[SEFlow, VerificationKey],
) -> None:
    flow, key = sealed
    tails = [
        (key.start_seq, key.start_epoch + 1, key.epoch_seconds),
        (key.start_seq, key.start_epoch - 1, key.epoch_seconds),
        (key.start_seq + 1, key.start_epoch, key.epoch_seconds),
        (key.start_seq, key.start_epoch, 3600),
    ]
    for seq, epoch, seconds in tails:
        typo = VerificationKey(key.seed, seq, epoch, seconds)
        problem = failed(flow.verify(key=typo))
        assert f"this key is this database's, but its /{seq}-{epoch}-{seconds}" in problem
        assert key.text.split("/")[1] in problem and "se-flow init" in problem
        assert "altered" not in problem and "forged" not in problem
    assert flow.verify(key=key).ok


def test_sealing_settings_removed_behind_se_flows_back_fail_a_keyless_verify(
    sealed: tuple[SEFlow, VerificationKey],
) -> None:
    flow, _ = sealed
    conn = sqlite_conn(flow)
    drop_triggers(conn)
    conn.execute("DELETE FROM meta WHERE key = 'sealing'")
    result = flow.verify()
    assert not result.ok
    assert "sealing settings are gone" in (result.problem or "") and "--key" in (
        result.problem or ""
    )
    assert "has no seal" not in (result.problem or "")


def test_a_wrong_key_is_named_even_when_the_check_value_is_gone(
    sealed: tuple[SEFlow, VerificationKey], db: Path, clock: Clock
) -> None:
    flow, key = sealed
    conn = sqlite_conn(flow)
    drop_triggers(conn)
    conn.execute("DELETE FROM meta WHERE key = 'sealing'")
    wrong = VerificationKey(bytes(32), key.start_seq, key.start_epoch, key.epoch_seconds)
    result = flow.verify(key=wrong)
    assert "a wrong key, or another database's" in failed(result) and result.bad_seq == 1
    # And a writer opened now, told nothing of sealing, writes unsealed events: caught.
    with se_flow.open(db, clock=clock, actor="ada") as later:
        later.add_staff("kim", "Kim Coach", "coach")
        assert "has no seal" in failed(later.verify(key=key))


def test_a_cut_tail_is_caught_by_its_left_over_seals(
    sealed: tuple[SEFlow, VerificationKey],
) -> None:
    flow, key = sealed
    conn = sqlite_conn(flow)
    head, _ = flow.store.head()
    drop_triggers(conn)
    conn.execute("DELETE FROM events WHERE seq > ?", (head - 2,))
    result = flow.verify(key=key)
    assert "the tail of the log was cut off" in failed(result)
    assert result.bad_seq == head - 1


def test_a_tail_cut_with_its_seals_needs_a_later_checkpoint(
    sealed: tuple[SEFlow, VerificationKey],
) -> None:
    """What the key cannot prove (README, "Proof against insiders"): a tail removed with its
    seals leaves a shorter log that is sealed throughout. A checkpoint taken later catches it."""
    flow, key = sealed
    kept = flow.checkpoint(actor="ava")
    conn = sqlite_conn(flow)
    drop_triggers(conn)
    conn.execute("DELETE FROM seals WHERE seq > ?", (kept.seq - 2,))
    conn.execute("DELETE FROM events WHERE seq > ?", (kept.seq - 2,))
    chain_and_seals = flow.verify(key=key)
    assert chain_and_seals.problem is None or "seal" not in chain_and_seals.problem
    assert "truncated" in failed(flow.verify(kept, key=key))


def test_events_moved_between_epochs_are_caught(
    sealed: tuple[SEFlow, VerificationKey],
) -> None:
    flow, key = sealed
    conn = sqlite_conn(flow)
    drop_triggers(conn)
    log = rows(conn)
    # Two events of different days swapped, re-chained.
    first_day = [r for r in log if r["recorded_at"].startswith("2026-06-01")]
    i, j = first_day[-1]["seq"], log[-1]["seq"]
    new = log[i - 1 :]
    new[0], new[-1] = new[-1], new[0]
    rechain(conn, new, i)
    result = flow.verify(key=key)
    assert failed(result) and result.bad_seq == i and result.bad_epoch is not None
    assert j > i


# --- the key file --------------------------------------------------------------------------------


def key_file_json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def test_the_key_evolves_each_epoch_and_the_old_key_is_gone(db: Path, clock: Clock) -> None:
    key_file = Path(f"{db}.sealkey")
    flow, key = sealed_flow(db, key_file, clock)
    with flow:
        assert key_file.stat().st_mode & 0o777 == 0o600
        day_one = key_file_json(key_file)
        assert day_one["epoch"] == key.start_epoch
        assert bytes.fromhex(day_one["key"]) == first_key(key.seed)
        # The seed itself is never kept on the machine.
        assert key.seed.hex() not in key_file.read_text()
        clock.advance(days=3)
        Steps(flow).refer()
        later = key_file_json(key_file)
        assert later["epoch"] == key.start_epoch + 3
        assert day_one["key"] not in key_file.read_text()
        assert bytes.fromhex(later["key"]) == evolve(bytes.fromhex(day_one["key"]), 3)
        assert key_file.stat().st_mode & 0o777 == 0o600
        assert not [p for p in db.parent.iterdir() if p.name.endswith(".tmp")]
        # What was sealed under the erased key still verifies with the auditor's key.
        assert flow.verify(key=key).ok


def test_a_key_file_others_may_read_is_refused_and_nothing_written(
    sealed: tuple[SEFlow, VerificationKey], db: Path
) -> None:
    flow, _ = sealed
    key_file = Path(f"{db}.sealkey")
    key_file.chmod(0o644)
    head = flow.store.head()
    with pytest.raises(se_flow.SealKeyUnusable, match="chmod 600") as refused:
        Steps(flow).refer()
    assert refused.value.exit_code == 10
    assert flow.store.head() == head


def test_a_missing_key_file_refuses_writes_but_not_reads(
    sealed: tuple[SEFlow, VerificationKey], db: Path, tmp_path: Path
) -> None:
    flow, key = sealed
    head = flow.store.head()
    flow.disconnect()
    copy = tmp_path / "auditor" / "copy.db"
    copy.parent.mkdir()
    shutil.copy(db, copy)
    with se_flow.open(copy, actor="ava", read_only=True) as auditor:
        assert auditor.verify(key=key).ok
    with (
        se_flow.open(copy, actor="sam", clock=lambda: START) as writer,
        pytest.raises(se_flow.SealKeyUnusable, match="missing"),
    ):
        Steps(writer).refer()
    with se_flow.open(copy, actor="ava") as after:
        assert after.store.head() == head


def test_another_databases_key_file_is_refused(
    sealed: tuple[SEFlow, VerificationKey], tmp_path: Path, clock: Clock, db: Path
) -> None:
    flow, _ = sealed
    other, _ = sealed_flow(tmp_path / "o.db", tmp_path / "o.key", clock)
    other.disconnect()
    flow.disconnect()
    with (
        se_flow.open(db, actor="sam", clock=clock, seal_key=tmp_path / "o.key") as wrong,
        pytest.raises(se_flow.SealKeyUnusable, match="belongs to database"),
    ):
        Steps(wrong).refer()


def test_a_clock_behind_the_key_is_refused(
    sealed: tuple[SEFlow, VerificationKey], clock: Clock
) -> None:
    flow, _ = sealed
    head = flow.store.head()
    clock.advance(days=-2)
    with pytest.raises(se_flow.SealKeyUnusable, match="the clock is behind the key"):
        Steps(flow).refer()
    assert flow.store.head() == head


# --- turning sealing on --------------------------------------------------------------------------


def test_sealing_is_turned_on_once_by_an_admin(
    sealed: tuple[SEFlow, VerificationKey], tmp_path: Path, clock: Clock
) -> None:
    flow, _ = sealed
    with pytest.raises(se_flow.PermissionDenied, match="only an admin"):
        flow.start_sealing(actor="lee")
    with pytest.raises(se_flow.InvalidInput, match="already seals"):
        flow.start_sealing(actor="ada")
    with se_flow.open(tmp_path / "n.db", clock=clock, seal_key=tmp_path / "n.key") as fresh:
        with pytest.raises(se_flow.InvalidInput, match="seal epoch"):
            fresh.start_sealing(epoch_seconds=5, actor="ada")
        assert not (tmp_path / "n.key").exists()


def test_an_existing_key_file_is_never_overwritten(tmp_path: Path, clock: Clock) -> None:
    key_file = tmp_path / "k"
    key_file.write_text("someone's key")
    with (
        se_flow.open(tmp_path / "n.db", clock=clock, seal_key=key_file) as flow,
        pytest.raises(se_flow.SealKeyUnusable, match="already exists"),
    ):
        flow.start_sealing(actor="ada")
    assert key_file.read_text() == "someone's key"
    with se_flow.open(tmp_path / "n.db", clock=clock, actor="ada") as flow:
        assert flow.store.sealing() is None


def test_the_in_memory_store_seals_with_a_key_held_in_the_process(clock: Clock) -> None:
    """Every store seals (the store contract checks the seals); the in-memory store keeps its
    key in the process, evolving it as the epochs move on, as the key file does on disk."""
    wf = se_flow.load_workflow()
    flow = SEFlow(se_flow.MemoryStore(wf), wf, clock=clock, actor="ada")
    key = flow.start_sealing()
    flow.add_staff("ada", "Ada Admin", "admin")
    clock.advance(days=2)
    flow.add_staff("sam", "Sam Coach", "coach")
    assert flow.verify(key=key).ok
    clock.advance(days=-1)
    with pytest.raises(se_flow.SealKeyUnusable, match="cannot go back"):
        flow.add_staff("kim", "Kim Coach", "coach")
    assert [s.id for s in flow.staff()] == ["ada", "sam"]


@pytest.mark.parametrize(
    "text", ["", "abcd", "00" * 32, "00" * 32 + "/0-1-86400", "00" * 32 + "/1-1-5", "zz/1-1-1"]
)
def test_key_text_that_is_not_a_key_is_refused(text: str) -> None:
    with pytest.raises(se_flow.InvalidInput, match="verification key") as refused:
        VerificationKey.parse(text)
    assert refused.value.exit_code == 5


# --- any tampering of a sealed epoch is caught ------------------------------------------------


Tamper = tuple[str, int]


@st.composite
def histories(draw: st.DrawFn) -> tuple[int, list[tuple[str, float]], Tamper]:
    epoch_seconds = draw(st.sampled_from([60, 3600, DAY]))
    ops = draw(
        st.lists(
            st.tuples(st.sampled_from(["refer", "note"]), st.floats(0, 2 * DAY / 3600)),
            min_size=2,
            max_size=12,
        )
    )
    kind = draw(st.sampled_from(["alter", "delete", "insert", "swap"]))
    # Positions among the events after the staff set-up (1 + 4 events), 0-based in `ops`.
    where = draw(st.integers(0, len(ops) - 1))
    return epoch_seconds, ops, (kind, where)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(histories())
def test_any_tampering_of_a_sealed_event_is_caught_and_named(
    case: tuple[int, list[tuple[str, float]], Tamper],
) -> None:
    epoch_seconds, ops, (kind, where) = case
    clock = Clock()
    with tempfile.TemporaryDirectory() as folder:
        flow, key = sealed_flow(":memory:", Path(folder) / "k", clock, epoch_seconds)
        steps = Steps(flow)
        cases: list[str] = []
        for i, (op, hours) in enumerate(ops):
            clock.advance(hours=hours)
            # Every event differs from every other: a "tamper" leaving the log as it was is none.
            if op == "refer" or not cases:
                cases.append(steps.refer(f"Person {i}").id)
            else:
                flow.record(cases[-1], "note", {"text": f"visit {i}"})
        # The forger takes the key file: they can seal the current epoch, never a past one.
        clock.advance(days=1 + epoch_seconds / DAY)
        flow.add_staff("kim", "Kim Coach", "coach", actor="ada")
        assert flow.verify(key=key).ok
        conn = sqlite_conn(flow)
        drop_triggers(conn)
        log = rows(conn)
        at = 1 + len(STAFF) + where  # 1-based seq of the tampered event
        tail = log[at - 1 :]
        if kind == "alter":
            tail[0] = {**tail[0], "actor": "lee"}
        elif kind == "delete":
            tail = tail[1:]
        elif kind == "insert":
            tail = [forged_export(flow, at, "", START), *tail]
        else:
            tail[0], tail[1] = tail[1], tail[0]
        rechain(conn, tail, at)
        result = flow.verify(key=key)
        flow.disconnect()
    assert not result.ok
    assert result.bad_seq == at, (kind, result.problem)


# --- the CLI -------------------------------------------------------------------------------------


def test_init_prints_the_key_once_and_audit_verify_checks_it(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from se_flow.cli import app

    runner = CliRunner()
    db = tmp_path / "c.db"
    env = {"SE_FLOW_DB": None, "SE_FLOW_ACTOR": None, "SE_FLOW_SEAL_KEY": None, "COLUMNS": "200"}

    def run(*args: str) -> Any:
        return runner.invoke(app, ["--db", str(db), "--as", "ada", *args], env=env)

    made = run("init")
    assert made.exit_code == 0, made.output
    found = [line.split()[-1] for line in made.stdout.splitlines() if "/1-" in line]
    text, spoken = found
    assert VerificationKey.parse(text) == VerificationKey.parse(spoken)
    assert Path(f"{db}.sealkey").stat().st_mode & 0o777 == 0o600
    plain = run("audit", "verify")
    assert plain.exit_code == 0 and "seals not checked: no verification key given" in plain.stdout
    checked = run("audit", "verify", "--key", spoken)
    assert checked.exit_code == 0 and "seals verified" in checked.stdout
    other = VerificationKey(bytes(32), 1, VerificationKey.parse(text).start_epoch, DAY)
    wrong = run("audit", "verify", "--key", other.text)
    assert wrong.exit_code == 9 and "this key does not verify" in wrong.stderr
    assert run("audit", "verify", "--key", "nonsense").exit_code == 5
    Path(f"{db}.sealkey").rename(tmp_path / "elsewhere")
    missing = run("staff", "add", "sam", "--name", "Sam", "--role", "coach")
    assert missing.exit_code == 10 and missing.stderr.startswith("error: sealing key file")
    elsewhere = str(tmp_path / "elsewhere")
    kept = run("--seal-key", elsewhere, "staff", "add", "sam", "--name", "Sam", "--role", "coach")
    assert kept.exit_code == 0, kept.output
    assert run("audit", "verify", "--key", text).exit_code == 0


def test_init_without_sealing_makes_no_key_file(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from se_flow.cli import app

    db = tmp_path / "n.db"
    done = CliRunner().invoke(
        app, ["--db", str(db), "--as", "ada", "init", "--no-seal"], env={"SE_FLOW_SEAL_KEY": None}
    )
    assert done.exit_code == 0, done.output
    assert not Path(f"{db}.sealkey").exists() and "VERIFICATION KEY" not in done.stdout
