"""PostgreSQL against SQLite (synchronous FULL), same commands, same run: durable commands per
second at 1, 4, 8 and 16 writer processes, with p50 and p99 latency; and `store copy` speed
(events per second) from an SQLite file to PostgreSQL and back.

    python -m benchmarks.bench_postgres --quick

Each writer is its own OS process (spawned, so each opens its own store: a pool on PostgreSQL,
a connection on SQLite), waits at a barrier, then records `COMMANDS` notes, one durable
transaction each, on cases of its own (one in four on a case every writer shares, so writers
also queue on one case row). Throughput is all writers' commands over the wall time from the
barrier to the last writer's end; latencies are every command's. The two stores take turns at
each writer count, the order rotated per round; the ratio is PostgreSQL's throughput over
SQLite's. The server is the one `SE_FLOW_PG_URL` names (a role that may create databases), or a
throwaway cluster started here from the Debian binaries; without either the rows say so.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import se_flow

from ._common import Row, log, median, print_table, quantile, tiny

WRITERS = (1, 4, 8, 16)
SHARED = "C-1"


# --- a server -------------------------------------------------------------------------------


def _bin_dir() -> Path | None:
    for found in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (found / "initdb").exists():
            return found
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@contextmanager
def server() -> Iterator[str | None]:
    """A server URL to create databases on, or None when there is none to be had."""
    given = os.environ.get("SE_FLOW_PG_URL")
    if given:
        yield given
        return
    bindir = _bin_dir()
    if bindir is None:
        yield None
        return
    root = Path(tempfile.mkdtemp(prefix="se-flow-bench-pg-"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root
        import pwd

        pw = pwd.getpwnam("postgres")
        os.chown(root, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]

    def run(*cmd: str) -> None:
        subprocess.run([*as_user, *cmd], check=True, capture_output=True, timeout=120)

    data = root / "data"
    # Durable as a provider's server is: fsync on (no --no-sync at run time), commits flushed.
    run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
        "--locale=C.UTF-8", "--no-sync")  # fmt: skip
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=200"
    run(str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w",
        "start")  # fmt: skip
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        with suppress(subprocess.SubprocessError, OSError):
            run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


def new_database(url: str) -> str:
    import psycopg

    name = "se_flow_bench_" + uuid.uuid4().hex[:10]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE \"{name}\" ENCODING 'UTF8' TEMPLATE template0")
    return url.rsplit("/", 1)[0] + "/" + name


# --- durable commands from many processes ---------------------------------------------------


def _set_up(target: str, writers: int) -> None:
    with se_flow.open(target, actor="ada") as flow:
        flow.add_staff("ada", "Ada", "admin")
        flow.add_staff("sam", "Sam", "coach")
        with flow.batch():
            for n in range(1 + writers):
                flow.refer(f"Person {n}", source="GP", actor="sam")


def _writer(target: str, me: int, commands: int, barrier: Any, out: Any) -> None:
    try:
        own = f"C-{me + 2}"
        with se_flow.open(target, actor="sam", busy_timeout=120) as flow:
            flow.case(own)  # connected and warm before the clock starts
            barrier.wait(timeout=300)
            started = time.perf_counter()
            latencies = []
            for n in range(commands):
                t = time.perf_counter()
                flow.record(SHARED if n % 4 == 3 else own, "note", text=f"w{me} n{n}")
                latencies.append(time.perf_counter() - t)
            out.put(("ok", started, time.perf_counter(), latencies))
    except Exception as exc:  # reported, so the run shows what went wrong
        out.put(("error", 0.0, 0.0, f"{type(exc).__name__}: {exc}"))


def run_writers(target: str, writers: int, commands: int) -> tuple[float, list[float]]:
    """(commands per second over all writers, every command's latency in seconds)."""
    _set_up(target, writers)
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(writers)
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_writer, args=(target, me, commands, barrier, out))
        for me in range(writers)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    errors = [r[3] for r in results if r[0] != "ok"]
    if errors:
        raise RuntimeError(f"{len(errors)} writers failed: {errors[0]}")
    begin = min(r[1] for r in results)
    end = max(r[2] for r in results)
    latencies = [x for r in results for x in r[3]]
    with se_flow.open(target, actor="ada", read_only=True) as flow:
        assert flow.verify().ok
    return writers * commands / (end - begin), latencies


# --- copy speed -----------------------------------------------------------------------------


def populate(path: Path, cases: int) -> int:
    """A database of `cases` cases with 11 events each; returns the events."""
    with se_flow.open(path, actor="sam", synchronous="OFF") as flow:
        flow.add_staff("ada", "Ada", "admin", actor="ada")
        flow.add_staff("sam", "Sam", "coach", actor="ada")
        with flow.batch():
            for n in range(cases):
                case = flow.refer(
                    se_flow.PersonalDetails(name=f"Person {n}", contact="07700 900123"),
                    source="GP",
                ).case
                flow.advance(case.id, "engage", reason="first contact")
                for k in range(9):
                    flow.record(case.id, "note", text=f"note {k} on case {n}")
        return flow.store.head()[0]


# --- the benchmark --------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--commands", type=int, help="commands per writer")
    parser.add_argument("--rounds", type=int, help="rounds per writer count")
    parser.add_argument("--writers", help="writer counts, comma-separated (default 1,4,8,16)")
    args = parser.parse_args(argv)
    small = tiny()
    writers: tuple[int, ...] = (1,) if small else WRITERS
    if args.writers:
        writers = tuple(int(w) for w in args.writers.split(","))
    commands = args.commands or (5 if small else 60 if args.quick else 200)
    rounds = args.rounds or (1 if small or args.quick else 2)
    copy_cases = 20 if small else 300 if args.quick else 3000
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="se-flow-bench-pg-") as tmp, server() as url:
        if url is None:
            note = "no PostgreSQL server (apt-get install postgresql, or SE_FLOW_PG_URL)"
            log(f"postgres: {note}")
            rows.append(Row("postgres/durable", "-", "skipped", float("nan"), "", note=note))
            print_table(rows)
            return rows
        for w in writers:
            runs: dict[str, list[tuple[float, list[float]]]] = {"postgres": [], "sqlite": []}
            for rnd in range(rounds):
                order = ["postgres", "sqlite"] if rnd % 2 == 0 else ["sqlite", "postgres"]
                for name in order:
                    target = (
                        new_database(url)
                        if name == "postgres"
                        else str(Path(tmp) / f"w{w}-{rnd}.db")
                    )
                    log(f"postgres: {w} writers x {commands} on {name} (round {rnd + 1})")
                    runs[name].append(run_writers(target, w, commands))
            rate = {n: median([r[0] for r in runs[n]]) for n in runs}
            for name in ("postgres", "sqlite"):
                latencies = [x for r in runs[name] for x in r[1]]
                p50, p99 = quantile(latencies, 0.5) * 1000, quantile(latencies, 0.99) * 1000
                rows.append(
                    Row(
                        "postgres/durable commands",
                        f"{w} writers",
                        name if name == "postgres" else "sqlite FULL",
                        rate[name],
                        "cmd/s",
                        ratio=rate["postgres"] / rate["sqlite"] if name == "postgres" else None,
                        vs="postgres/sqlite" if name == "postgres" else "",
                        n=len(latencies),
                        note=f"p50 {p50:.1f} ms, p99 {p99:.1f} ms",
                        extra={"p50_ms": p50, "p99_ms": p99},
                    )
                )
        src = Path(tmp) / "copy-src.db"
        events = populate(src, copy_cases)
        there, back = [], []
        for rnd in range(max(rounds, 2) if not small else 1):
            dst = new_database(url)
            t = time.perf_counter()
            se_flow.copy_store(src, dst)
            there.append(time.perf_counter() - t)
            home = Path(tmp) / f"copy-back-{rnd}.db"
            t = time.perf_counter()
            se_flow.copy_store(dst, home)
            back.append(time.perf_counter() - t)
        for label, times in (("sqlite -> postgres", there), ("postgres -> sqlite", back)):
            rows.append(
                Row(
                    "postgres/store copy",
                    f"{events} events",
                    label,
                    events / median(times),
                    "events/s",
                    n=len(times),
                    note="copied, verified at the destination, committed",
                )
            )
    print_table(rows)
    return rows


if __name__ == "__main__":
    main()
