"""The benchmark runner works end to end: every benchmark runs and reports its ratios.

Sizes are tiny (`--tiny`) and no time is asserted: on a shared 2-core machine timings say
nothing in a test. What a maintainer relies on is that `python -m benchmarks.run` still runs
after a change to the API, and still prints the comparisons the README quotes.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_quick_runner_runs_every_benchmark_and_prints_ratios(tmp_path: Path) -> None:
    saved = tmp_path / "rows.json"
    env = {**os.environ, "SE_FLOW_BENCH_DATA": str(tmp_path / "data")}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--tiny", "--save", str(saved)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "FAILED" not in out
    # A module that printed instead of returning rows breaks the one-table convention.
    assert "(its own output)" not in out

    # The comparisons the README quotes, each with a number.
    ratio = r"\d+\.\d\d×"
    for pattern in (
        rf"transitions/advance .* se-flow .* se-flow/raw {ratio}",
        rf"transitions/advance .* naive .* se-flow/naive {ratio}",
        rf"transitions/record .* se-flow .* se-flow/raw {ratio}",
        r"transitions/cost growth .* se-flow",
        r"transitions/memory growth .* se-flow",
        rf"bulk load .* se-flow batch\(\) .* se-flow/raw {ratio}",
        rf"reads/caseload .* se-flow .* se-flow/raw {ratio}",
        rf"reads/due \(coach\) .* se-flow .* se-flow/raw {ratio}",
        rf"reads/timeline .* se-flow .* se-flow/raw {ratio}",
        rf"reports/ips-grow .* se-flow .* se-flow/sql {ratio}",
        rf"reports/standards .* se-flow .* se-flow/sql {ratio}",
    ):
        assert re.search(pattern, out), f"no line matching {pattern!r} in:\n{out}"
    assert re.search(r"\d+ rows; targets met: \d+, missed: \d+", out)
    # PostgreSQL beside SQLite, where a server could be started (CI always has one).
    if not re.search(r"postgres/durable .* skipped", out):
        assert re.search(rf"postgres/durable commands .* postgres .* postgres/sqlite {ratio}", out)
        assert re.search(r"postgres/store copy .* sqlite -> postgres .* events/s", out)
        assert re.search(r"postgres/store copy .* postgres -> sqlite .* events/s", out)

    # Every module found in benchmarks/ contributed rows to the one table.
    rows = json.loads(saved.read_text())["rows"]
    benches = {r["bench"].split("/")[0].split(" ")[0] for r in rows}
    modules = {p.stem.removeprefix("bench_") for p in (ROOT / "benchmarks").glob("bench_*.py")}
    expected = {"transitions", "bulk", "reads", "reports"} | ({"export"} & modules)
    assert expected <= benches, f"benchmarks without rows: {expected - benches}"


def test_runner_refuses_an_unknown_benchmark() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--only", "nonesuch"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "no benchmark nonesuch" in proc.stderr


def _tables(path: Path) -> dict[str, list[tuple[object, ...]]]:
    import sqlite3

    conn = sqlite3.connect(path)
    try:
        names = [n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        # Sorted here: some tables have no rowid to order by.
        return {n: sorted(conn.execute(f'SELECT * FROM "{n}"'), key=repr) for n in names}
    finally:
        conn.close()


@pytest.mark.parametrize("op", ["advance", "record"])
def test_se_flows_statements_replayed_make_the_database_se_flow_made(
    tmp_path: Path, op: str
) -> None:
    # callgrind's "se-flow's SQL" row is the floor under se-flow's design only if replaying
    # the recorded statements on another copy does what se-flow did: every row of every table.
    sys.path.insert(0, str(ROOT))
    try:
        import shutil

        from benchmarks import _population as pop
        from benchmarks import _replay
        from benchmarks import callgrind as cg

        base = pop.population(tmp_path, 30)
        ran, replayed = tmp_path / "ran.db", tmp_path / "replayed.db"
        shutil.copyfile(base, ran)
        shutil.copyfile(base, replayed)
        one = functools.partial(cg._one, op)
        commands = _replay.capture(ran, 30, one, cg._picker("se-flow", op, 30), 4)
        replayer = _replay.Replayer(replayed, "FULL")
        for command in commands:
            replayer.run(command)
        replayer.close()
    finally:
        sys.path.remove(str(ROOT))
    assert all(command for command in commands)
    before, after, again = _tables(base), _tables(ran), _tables(replayed)
    assert after != before  # the commands wrote
    assert again == after


def test_raw_sets_the_case_columns_se_flow_sets(tmp_path: Path) -> None:
    # raw is the limit only if it does se-flow's writes: SQLite rewrites an index whenever
    # an UPDATE sets one of its columns, so raw must set the columns se-flow sets, no fewer
    # (a review moving the next review date) and no more (a second review the same day).
    sys.path.insert(0, str(ROOT))
    try:
        import shutil

        from benchmarks import _population as pop
        from benchmarks import _replay
        from benchmarks import bench_transitions as bt

        base = pop.population(tmp_path, 30)
        plan = [("record", 3), ("advance", 6), ("record", 3), ("advance", 3), ("record", 3)]
        steps = iter(plan)

        def one(c: object, num: int) -> None:
            op, _ = next(steps)
            if op == "record":
                c.record(num)  # type: ignore[attr-defined]
            else:
                c.advance(num, "revise_goals")  # type: ignore[attr-defined]
                c.advance(num, "start_job_search")  # type: ignore[attr-defined]

        ran, raw_db = tmp_path / "ran.db", tmp_path / "raw.db"
        shutil.copyfile(base, ran)
        shutil.copyfile(base, raw_db)
        nums = iter(num for _, num in plan)
        commands = _replay.capture(ran, 30, one, lambda: next(nums), len(plan))
        raw = bt.RawContender(raw_db, 30, "FULL", bt._sample_rows())
        recording = _replay.Recording(raw.conn)
        raw.conn = recording  # type: ignore[assignment]
        raw_commands = []
        steps = iter(plan)
        for _, num in plan:
            recording.log = []
            one(raw, num)
            raw_commands.append(recording.log)
        raw.close()
    finally:
        sys.path.remove(str(ROOT))

    def sets(command: list[tuple[str, object, bool]]) -> list[set[str]]:
        found = []
        for sql, _, _ in command:
            if sql.startswith("UPDATE cases SET"):
                assigned = sql.split(" SET ", 1)[1].split(" WHERE ", 1)[0].split(", ")
                found.append({a.split(" = ")[0] for a in assigned} - {"version"})
        return found

    assert [sets(c) for c in raw_commands] == [sets(c) for c in commands]
    assert {"review_due", "last_contact_at"} in sets(commands[0])  # a first review moves both
    assert _tables(raw_db)["cases"] == _tables(ran)["cases"]
