"""A disk that fills up mid-write: a real one, made by a file-size limit in a child process
(a write past RLIMIT_FSIZE fails as a full disk does). Nothing acknowledged is lost, nothing
half-written is kept, and a batch is all or nothing."""

from __future__ import annotations

import multiprocessing as mp
import resource
import signal
import sqlite3
from pathlib import Path
from typing import Any

import pytest

import se_flow

# The largest file (the WAL) the child may write: room for a few dozen single referrals (each
# commit appends every page it changed), or a few hundred in one batch.
LIMITS = {False: 2 * 1024 * 1024, True: 512 * 1024}


def _setup(path: Path) -> list[str]:
    with se_flow.open(path, actor="sam") as flow:
        flow.add_staff("sam", "Sam", "coach")
        return [flow.refer(f"Before {n}", source="GP").case.id for n in range(3)]


def _kind(exc: se_flow.SEFlowError) -> str:
    return "StoreError" if isinstance(exc, se_flow.StoreError) else type(exc).__name__


# A write past RLIMIT_FSIZE fails with EFBIG (SQLite: disk I/O error), one on a full tmpfs
# with ENOSPC (SQLite: database or disk is full): the message must fit both.
FULL = ("disk is full", "is it full")


def _fill(path: str, batch: bool, results: Any) -> None:
    # Past the limit a write fails with EFBIG instead of killing the process.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    acked: list[str] = []
    errors: list[tuple[str, str, int]] = []
    final: tuple[str, str, int] | None = None
    with se_flow.open(path, actor="sam") as flow:
        # A small page cache makes the batch spill to the WAL as it goes, as a large bulk
        # load does, so the disk fills in the middle of the batch rather than at its commit.
        flow.store.conn.execute("PRAGMA cache_size = 4")  # type: ignore[attr-defined]
        limit = LIMITS[batch]
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

        def refer_all() -> None:
            for n in range(5000):
                try:
                    acked.append(flow.refer(f"Person {n}", source="GP").case.id)
                except se_flow.SEFlowError as exc:
                    errors.append((_kind(exc), str(exc), exc.exit_code))
                    # Go on past the first failure: later commands must refuse too.
                    if len(errors) >= 20 or not batch:
                        return

        try:
            if batch:
                with flow.batch():
                    refer_all()
            else:
                refer_all()
        except se_flow.SEFlowError as exc:
            final = (_kind(exc), str(exc), exc.exit_code)
    results.put((acked, errors, final))


def _run(path: Path, batch: bool) -> tuple[list[str], list[tuple[str, str, int]], Any]:
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    proc = ctx.Process(target=_fill, args=(str(path), batch, results))
    proc.start()
    outcome = results.get(timeout=120)
    proc.join(timeout=60)
    assert proc.exitcode == 0
    return outcome  # type: ignore[no-any-return]


def _check_whole(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    with se_flow.open(path, actor="sam") as flow:
        assert flow.verify().ok
        return [c.id for c in flow.cases()]


def test_a_full_disk_in_a_batch_writes_nothing_of_it_and_never_autocommits(
    tmp_path: Path,
) -> None:
    path = tmp_path / "full.db"
    before = _setup(path)
    acked, errors, final = _run(path, batch=True)
    assert len(acked) > 10, "the limit should leave room for some commands"
    assert errors, "the disk never filled"
    assert _check_whole(path) == before, "commands of the failed batch were committed"
    assert len(set(acked)) == len(acked), "a case number was handed out twice"
    first_name, first, code = errors[0]
    assert (first_name, code) == ("StoreError", 10)
    assert any(w in first for w in FULL) and str(path) in first
    # Every later command is refused with the original cause, none runs on its own.
    assert len(errors) == 20
    for name, text, code in errors[1:]:
        assert (name, code) == ("StoreError", 10)
        assert "batch was abandoned" in text and first in text
        assert "nothing of the batch was written" in text
    assert final is not None and final[0] == "StoreError"


def test_a_full_disk_loses_no_acknowledged_single_write(tmp_path: Path) -> None:
    path = tmp_path / "full1.db"
    before = _setup(path)
    acked, errors, final = _run(path, batch=False)
    assert final is None
    assert len(acked) > 10
    assert len(errors) == 1
    assert _check_whole(path) == before + acked
    name, text, code = errors[0]
    assert (name, code) == ("StoreError", 10)
    assert any(w in text for w in FULL) and str(path) in text
    assert "nothing of the refused change was written" in text


def test_an_abandoned_batch_refuses_until_it_ends_then_writes_again(tmp_path: Path) -> None:
    """The same rule without a disk: a batch whose transaction vanished under it."""
    flow = se_flow.open(tmp_path / "gone.db", actor="sam")
    flow.add_staff("sam", "Sam", "coach")
    with pytest.raises(se_flow.StoreError, match="transaction ended"), flow.batch():
        flow.refer("Alex", source="GP")
        flow.store.conn.execute("ROLLBACK")  # type: ignore[attr-defined]
        with pytest.raises(se_flow.StoreError, match="batch was abandoned"):
            flow.refer("Billie", source="GP")
    assert flow.cases() == []
    assert flow.refer("Casey", source="GP").case.id == "C-1"
    assert flow.verify().ok
    flow.disconnect()
