"""Case populations for the benchmarks, written fast as raw SQL rows that se-flow itself made.

One *template* case is walked through the public API (referral → customer engagement →
vocational profiling → employer engagement: 11 audit events, 8 records). Its stored rows are
then replicated with SQL for every case of the population: new case, participant and coach ids,
dates moved back by 0-27 days (so reviews fall due on different days), and the hash chain
recomputed over the whole log, so `flow.verify()` passes on the result. Guard reasons keep the
template's dates in their text; nothing reads them.

Each coach has a caseload of about 30, spread through the table (case i belongs to coach
i mod coaches), as caseloads are in a service that has run for years.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import se_flow
from se_flow._audit import FIELDS, GENESIS, canonical, hashed_fields, row_hash
from se_flow._evidence import LEAST_EVIDENCE
from se_flow._sqlite import THROUGH_THE_LOG, SQLiteStore

from ._common import T0, log, remove_db

# Bump when the template or the replication changes: cached populations are rebuilt.
VERSION = "5"
CASELOAD = 30
SPREAD_DAYS = 28

_EVENT_COLS = ", ".join(FIELDS)
_EVENT_SQL = f"INSERT INTO events ({_EVENT_COLS}) VALUES ({', '.join('?' * len(FIELDS))})"
_RECORD_SQL = (
    "INSERT INTO records (seq, case_id, kind, fields, effective_at, recorded_at, actor, "
    "supersedes) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
CASE_COLS = (
    "id, num, participant_id, state, phase, status, version, opened_at, stage_entered_at, "
    "coach, episode, previous_case_id, last_contact_at, review_due, outcome, closed_at"
)
_TEXT_SQL = "INSERT INTO texts (seq, slot, salt, text) VALUES (?, ?, ?, ?)"
_CASE_SQL = f"INSERT INTO cases ({CASE_COLS}) VALUES ({', '.join('?' * 16)})"
_PARTICIPANT_SQL = "INSERT INTO participants (id, created_at) VALUES (?, ?)"
_PERSONAL_SQL = (
    "INSERT INTO personal_data (participant_id, name, contact, date_of_birth, health_notes) "
    "VALUES (?, ?, ?, ?, ?)"
)
_STAFF_SQL = "INSERT INTO staff (id, name, role, active) VALUES (?, ?, ?, ?)"

# A valid staff id (no "@@" markers: ids are validated), unlikely to occur anywhere else.
COACH = "zqCOACHSENTINELqz"
COACH_NAME = "@@COACHNAME@@"
# The coach a reassigned case passes to (the rich population's: case i's goes to coach i+1).
COACH2 = "zqCOACHTWOSENTINELqz"
LEAD = "lead"


def coach_id(k: int) -> str:
    return f"coach-{k:05d}"


def coaches_for(n: int) -> int:
    return max(1, -(-n // CASELOAD))


def coach_of(num: int, n: int) -> str:
    """The coach of case number `num` in a population of `n`."""
    return coach_id(num % coaches_for(n))


def offset_days(num: int) -> int:
    return (num * 2654435761 % 2**32) % SPREAD_DAYS


def day(n: int) -> dt.datetime:
    return T0 - dt.timedelta(days=n)


# On top of the least evidence: the sizes a real service's records have.
EXTRA: dict[str, dict[str, Any]] = {
    "consent": {"employer_contact": True},
    "action_plan": {"summary": "Explore retail and admin roles; visit two employers"},
    "vocational_profile": {
        "job_goals": "retail assistant; stock control",
        "skills": "customer service; tills",
    },
    "disclosure_preference": {"level": "partial"},
}


def walk_template(flow: se_flow.SEFlow, case_id: str, actor: str, start: int = 30) -> None:
    """The template's history after the referral: to employer engagement, `start` days ago."""
    s = start
    flow.advance(case_id, "engage", actor=actor, effective_at=day(s - 1))
    # (place, recorded this many days after the start, moved on this many days after it)
    for place, recorded, moved in (("customer_engagement", 4, 5), ("vocational_profiling", 20, 29)):
        forward = LEAST_EVIDENCE[place]
        for kind, fields in forward.records:
            fields = {**fields, **EXTRA.get(kind, {})}
            flow.record(case_id, kind, fields, actor=actor, effective_at=day(s - recorded))
        flow.advance(case_id, forward.trigger, actor=actor, effective_at=day(s - moved))


def refer_template(
    flow: se_flow.SEFlow,
    actor: str,
    name: str,
    start: int = 30,
    referral: dict[str, Any] | None = None,
) -> se_flow.Case:
    return flow.refer(
        se_flow.PersonalDetails(name=name, contact="07700 900000"),
        source="Jobcentre Plus",
        referral=referral,
        coach=actor,
        actor=actor,
        effective_at=day(start),
    ).case


@dataclass
class _EventTemplate:
    row: dict[str, Any]
    body: str  # canonical JSON of the hashed body, as a %-format
    payload: str  # the stored payload text, as a %-format
    effective: dt.datetime


@dataclass
class Template:
    staff_events: list[_EventTemplate]
    events: list[_EventTemplate]
    records: dict[int, tuple[Any, ...]]  # index into events -> record row
    texts: dict[int, list[tuple[str, str, str]]]  # index into events -> (slot, salt, text)
    case: dict[str, Any]
    participant_created: dt.datetime


def _as_format(text: str, sentinels: dict[str, str]) -> str:
    out = text.replace("%", "%%")
    for sentinel, name in sentinels.items():
        out = out.replace(sentinel, f"%({name})s")
    return out


class _Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now


def _forward(
    flow: se_flow.SEFlow, case_id: str, place: str, recorded: int, moved: int, **extra: Any
) -> None:
    """`place`'s least evidence recorded `recorded` days before T0, moved on `moved` days
    before it (`extra`: fields by record kind)."""
    forward = LEAST_EVIDENCE[place]
    for kind, fields in forward.records:
        fields = {**fields, **EXTRA.get(kind, {}), **extra.get(kind, {})}
        flow.record(case_id, kind, fields, actor=COACH, effective_at=day(recorded))
    flow.advance(case_id, forward.trigger, actor=COACH, effective_at=day(moved))


def _contact(flow: se_flow.SEFlow, case_id: str, ago: int, where: str, actor: str) -> None:
    flow.record(
        case_id,
        "review",
        {"summary": "review", "location": where, "minutes": "45"},
        actor=actor,
        effective_at=day(ago),
    )


def walk_working(flow: se_flow.SEFlow, case_id: str, clock: _Clock) -> None:
    """Into work 120 days before T0 (its 13 weeks end in the quarter before T0), a second
    job 45 days before, reviews in the community, the office and by phone, employer contacts
    face to face and not."""
    flow.advance(case_id, "engage", actor=COACH, effective_at=day(169))
    _forward(flow, case_id, "customer_engagement", 166, 165)
    _forward(flow, case_id, "vocational_profiling", 160, 158)
    _forward(
        flow, case_id, "employer_engagement", 150, 140, employer_contact={"face_to_face": True}
    )
    offer = {"start_date": day(120).date().isoformat(), "job": "J1"}
    _forward(flow, case_id, "job_matching", 130, 120, job_offer=offer)
    flow.record(
        case_id,
        "job_start",
        {
            "employer": "Cafe",
            "role": "barista",
            "start_date": day(45).date().isoformat(),
            "hours_per_week": "10",
            "hourly_pay": "13",
            "job": "J2",
        },
        actor=COACH,
        effective_at=day(45),
    )
    for ago, where in ((40, "community"), (20, "office"), (10, "phone")):
        _contact(flow, case_id, ago, where, COACH)
    flow.record(
        case_id, "employer_contact", {"employer": "Bakery"}, actor=COACH, effective_at=day(30)
    )


def walk_reassigned(flow: se_flow.SEFlow, case_id: str, clock: _Clock) -> None:
    """Referred 58 days before T0, into work 35 days before (a first job start in the
    quarter) with contact every week of its first four, passed to the next coach 25 days
    before T0, who keeps in touch and records the job's end (a free-text reason)."""
    clock.now = day(25)
    flow.advance(case_id, "engage", actor=COACH, effective_at=day(57))
    _forward(flow, case_id, "customer_engagement", 55, 54)
    _forward(flow, case_id, "vocational_profiling", 52, 50)
    _forward(flow, case_id, "employer_engagement", 45, 40, employer_contact={"face_to_face": True})
    offer = {"start_date": day(35).date().isoformat(), "job": "J1"}
    _forward(flow, case_id, "job_matching", 38, 35, job_offer=offer)
    _contact(flow, case_id, 34, "phone", COACH)
    _contact(flow, case_id, 30, "community", COACH)
    flow.assign(case_id, COACH2, actor=LEAD, reason="caseload balance")
    clock.now = T0
    for ago, where in ((24, "community"), (18, "video"), (10, "office")):
        _contact(flow, case_id, ago, where, COACH2)
    flow.record(
        case_id,
        "job_end",
        {"reason": "shifts changed to nights", "end_date": day(5).date().isoformat()},
        actor=COACH2,
        effective_at=day(5),
    )


def walk_retained(flow: se_flow.SEFlow, case_id: str, clock: _Clock) -> None:
    """The plain template's history, of a client in work at referral (retention), who then
    moved away (closed on T0)."""
    walk_template(flow, case_id, COACH)
    flow.close(case_id, "moved_away", actor=COACH, effective_at=day(0))


WALKS = {"working": walk_working, "reassigned": walk_reassigned, "retained": walk_retained}
"""The rich population's histories beside the template's (`build_template(walk)`)."""


def build_template(walk: str | None = None) -> Template:
    """Walk the template case through the API and keep its rows as formats (`walk`: one of
    `WALKS`, starting further back; None: the plain template)."""
    clock = _Clock()
    with se_flow.open(":memory:", clock=clock) as flow:
        flow.add_staff(LEAD, "Team Leader", "team_leader", actor="setup")
        flow.add_staff(COACH, COACH_NAME, "coach", actor=LEAD)
        if walk is not None:
            flow.add_staff(COACH2, "Second coach", "coach", actor=LEAD)
            start = {"working": 170, "reassigned": 58}.get(walk, 30)
            referral = {"in_work_at_referral": "retention" if walk == "retained" else "no"}
            case = refer_template(flow, COACH, "@@NAME@@", start=start, referral=referral)
            WALKS[walk](flow, case.id, clock)
        else:
            case = refer_template(flow, COACH, "@@NAME@@")
            walk_template(flow, case.id, COACH)
        assert isinstance(flow.store, SQLiteStore)
        conn = flow.store.conn
        conn.row_factory = sqlite3.Row
        events = [dict(r) for r in conn.execute("SELECT * FROM events ORDER BY seq")]
        records = {r["seq"]: tuple(r) for r in conn.execute("SELECT * FROM records ORDER BY seq")}
        texts: dict[int, list[tuple[str, str, str]]] = {}
        for seq, slot, salt, text in conn.execute("SELECT * FROM texts ORDER BY seq, slot"):
            texts.setdefault(seq, []).append((slot, salt, text))
        case_row = dict(conn.execute(f"SELECT {CASE_COLS} FROM cases").fetchone())
        pid = case_row["participant_id"]
        created = dt.datetime.fromisoformat(
            conn.execute("SELECT created_at FROM participants").fetchone()[0]
        )

    sentinels = {
        '"@@SEQ@@"': "seq",
        "@@CASE@@": "case",
        "@@PREV@@": "prev",
        "@@EFF@@": "eff",
        "@@REC@@": "rec",
        "@@PID@@": "pid",
        COACH_NAME: "coach_name",
        COACH: "coach",
        COACH2: "coach2",
    }
    made = []
    for ev in events:
        effective = dt.datetime.fromisoformat(ev["effective_at"])
        payload = ev["payload"].replace(pid, "@@PID@@")
        # What se-flow hashes: an optional field (texts, a command id) only when it holds one.
        body = {k: ev[k] for k in hashed_fields(ev)}
        body.update(
            seq="@@SEQ@@",
            prev_hash="@@PREV@@",
            effective_at="@@EFF@@",
            recorded_at="@@REC@@",
            payload=payload,
        )
        if ev["case_id"] is not None:
            body["case_id"] = "@@CASE@@"
        made.append(
            _EventTemplate(
                row=ev,
                body=_as_format(canonical(body), sentinels),
                payload=_as_format(payload, sentinels),
                effective=effective,
            )
        )
    staff = 2 if walk is None else 3
    staff_events, case_events = made[:staff], made[staff:]
    record_at = {
        i: records[t.row["seq"]] for i, t in enumerate(case_events) if t.row["seq"] in records
    }
    # A text's salted hash does not depend on where its event sits: copied as they are.
    text_at = {i: texts[t.row["seq"]] for i, t in enumerate(case_events) if t.row["seq"] in texts}
    return Template(staff_events, case_events, record_at, text_at, case_row, created)


@dataclass
class Chain:
    seq: int = 0
    prev: str = GENESIS


def _seal(t: _EventTemplate, chain: Chain, values: dict[str, Any]) -> tuple[Any, ...]:
    chain.seq += 1
    values["seq"] = chain.seq
    values["prev"] = chain.prev
    digest = hashlib.sha256((t.body % values).encode("utf-8")).hexdigest()
    r = t.row
    row = (
        chain.seq,
        values["case"] if r["case_id"] is not None else None,
        r["kind"],
        r["trigger"],
        r["from_state"],
        r["to_state"],
        r["from_phase"],
        r["to_phase"],
        r["actor"]
        .replace(COACH, values.get("coach", ""))
        .replace(COACH2, values.get("coach2", "")),
        r["role"],
        values["eff"],
        values["rec"],
        r["reason"],
        r["guards"],
        r["override"],
        r["workflow_hash"],
        t.payload % values,
        chain.prev,
        digest,
        r["texts"],
        r.get("command_id"),
        r.get("command_hash"),
    )
    chain.prev = digest
    return row


def _check(row: tuple[Any, ...]) -> None:
    """The fast hash must be exactly se-flow's hash of the stored row."""
    stored = dict(zip(FIELDS, row, strict=True))
    if row_hash(stored) != stored["hash"]:
        raise AssertionError(f"population hash differs from se-flow's at event {stored['seq']}")


def _iso(t: dt.datetime | None) -> str | None:
    return t.isoformat() if t is not None else None


class Batch:
    def __init__(self) -> None:
        self.staff: list[tuple[Any, ...]] = []
        self.participants: list[tuple[Any, ...]] = []
        self.personal: list[tuple[Any, ...]] = []
        self.cases: list[tuple[Any, ...]] = []
        self.events: list[tuple[Any, ...]] = []
        self.records: list[tuple[Any, ...]] = []
        self.texts: list[tuple[Any, ...]] = []

    def write(self, conn: sqlite3.Connection) -> None:
        conn.executemany(_STAFF_SQL, self.staff)
        conn.executemany(_PARTICIPANT_SQL, self.participants)
        conn.executemany(_PERSONAL_SQL, self.personal)
        conn.executemany(_EVENT_SQL, self.events)
        conn.executemany(_RECORD_SQL, self.records)
        conn.executemany(_TEXT_SQL, self.texts)
        conn.executemany(_CASE_SQL, self.cases)


def generate(
    template: Template,
    n: int,
    *,
    chunk: int = 5000,
    first: int = 1,
    chain: Chain | None = None,
    variants: tuple[Template, ...] = (),
) -> Iterator[Batch]:
    """The rows of cases first..first+n-1 (and, when first is 1, of the staff), in batches.
    With `variants`, case i is made from `variants[i % len(variants)]` (the staff rows still
    from `template`)."""
    chain = chain or Chain()
    kinds = variants or (template,)
    ncoach = coaches_for(first + n - 1)
    shifted: dict[int, list[tuple[str, ...]]] = {}
    batch = Batch()
    if first == 1:
        lead_ev, coach_ev = template.staff_events
        batch.staff.append((LEAD, "Team Leader", "team_leader", 1))
        t0 = T0.isoformat()
        batch.events.append(_seal(lead_ev, chain, {"eff": t0, "rec": t0}))
        for k in range(ncoach):
            cid, cname = coach_id(k), f"Coach {k}"
            batch.staff.append((cid, cname, "coach", 1))
            staff_values = {"eff": t0, "rec": t0, "coach": cid, "coach_name": cname}
            batch.events.append(_seal(coach_ev, chain, staff_values))
        for row in batch.events:
            _check(row)
    for num in range(first, first + n):
        k = num % len(kinds)
        template = kinds[k]
        case_t = template.case
        off = offset_days(num)
        dates = shifted.get(off * len(kinds) + k)
        if dates is None:
            delta = dt.timedelta(days=off)
            dates = [((t.effective - delta).isoformat(),) * 2 for t in template.events]
            shifted[off * len(kinds) + k] = dates
        delta = dt.timedelta(days=off)
        case_id, pid, coach = f"C-{num}", f"P-{num:010x}", coach_id(num % ncoach)
        coach2 = coach_id((num + 1) % ncoach)
        values: dict[str, Any] = {"case": case_id, "pid": pid, "coach": coach, "coach2": coach2}
        for i, t in enumerate(template.events):
            values["eff"], values["rec"] = dates[i]
            row = _seal(t, chain, values)
            batch.events.append(row)
            rec = template.records.get(i)
            if rec is not None:
                batch.records.append(
                    (row[0], case_id, rec[2], rec[3], row[10], row[11], row[8], None)
                )
            for slot, salt, text in template.texts.get(i, ()):
                batch.texts.append((row[0], slot, salt, text))
        opened = _iso(dt.datetime.fromisoformat(case_t["opened_at"]) - delta)
        batch.participants.append((pid, opened))
        batch.personal.append((pid, f"Participant {num}", "07700 900000", None, None))
        last = case_t["last_contact_at"]
        due = case_t["review_due"]
        closed = case_t["closed_at"]
        batch.cases.append(
            (
                case_id,
                num,
                pid,
                case_t["state"],
                case_t["phase"],
                case_t["status"],
                case_t["version"],
                opened,
                _iso(dt.datetime.fromisoformat(case_t["stage_entered_at"]) - delta),
                coach2 if case_t["coach"] == COACH2 else coach,
                1,
                None,
                _iso(dt.datetime.fromisoformat(last) - delta) if last else None,
                (dt.date.fromisoformat(due) - delta).isoformat() if due else None,
                case_t["outcome"],
                _iso(dt.datetime.fromisoformat(closed) - delta) if closed else None,
            )
        )
        if num - first < len(kinds):
            for row in batch.events[-len(template.events) :]:
                _check(row)
        if len(batch.cases) >= chunk:
            yield batch
            batch = Batch()
    if batch.cases or batch.events:
        yield batch


def create_schema(path: Path) -> None:
    remove_db(path)
    se_flow.open(path).disconnect()


def populate(
    path: Path, n: int, template: Template | None = None, variants: tuple[Template, ...] = ()
) -> None:
    """Write a population of n cases to a new database at `path`, as fast as SQLite allows
    (no journal, no fsync while loading; WAL again at the end, as se-flow expects); with
    `variants`, case i made from `variants[i % len(variants)]`."""
    template = template or build_template()
    create_schema(path)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("PRAGMA cache_size = -262144")
        # Events and the tables they project are written side by side in bulk here, so the
        # triggers that want each staff or case change to follow its own event are lifted for
        # the load and put back after it.
        for name in THROUGH_THE_LOG:
            conn.execute(f"DROP TRIGGER {name}")
        done = 0
        for batch in generate(template, n, chunk=20000, variants=variants):
            conn.execute("BEGIN")
            batch.write(conn)
            conn.execute("COMMIT")
            done += len(batch.cases)
            if n >= 200_000 and done % 200_000 < 20000:
                log(f"population {n}: {done} cases written")
        for name, body in THROUGH_THE_LOG.items():
            conn.execute(f"CREATE TRIGGER {name} {body}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise RuntimeError(f"could not return {path} to WAL ({mode})")
    finally:
        conn.close()
    build_due_index(path)


def build_due_index(path: Path) -> None:
    """The due table of a database whose log was written raw, worked out from the log as the
    migration that made the table does (not part of any timing)."""
    store = SQLiteStore(path, se_flow.load_workflow(), synchronous="OFF")
    try:
        store.conn.execute("BEGIN IMMEDIATE")
        store._rebuild_due()
        store.conn.execute("COMMIT")
    finally:
        store.close()


def expected_events(n: int) -> int:
    return 1 + coaches_for(n) + EVENTS_PER_CASE * n


EVENTS_PER_CASE = 11


def _head(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0])
    finally:
        conn.close()


def population(folder: Path, n: int, *, pristine: bool = True) -> Path:
    """The population of n cases in `folder`, built once and reused.

    Writes change what later writes cost (a case's history grows), so a benchmark that
    writes asks for a `pristine` one: a population something has written to is rebuilt.
    Reads accept one that a write benchmark has touched (a few thousand events on top of
    n x 11 change nothing they measure)."""
    path = folder / f"population-{n}.db"
    marker = folder / f"population-{n}.ok"
    want = f"{VERSION}:{n}:{se_flow.load_workflow().hash}"
    if path.exists() and marker.exists() and marker.read_text() == want:
        if not pristine or _head(path) == expected_events(n):
            return path
        log(f"population of {n} cases was written to; rebuilding it")
    marker.unlink(missing_ok=True)
    log(f"building a population of {n} cases in {path} ...")
    populate(path, n)
    if _head(path) != expected_events(n):
        raise RuntimeError(f"population {path}: expected {expected_events(n)} events")
    marker.write_text(want)
    return path


# --- the rich population (the reports' benchmark) ----------------------------------------------

RICH_VERSION = "1"
RICH = (None, "working", "reassigned", "retained")
"""Case i follows `RICH[i % 4]`: the plain template (in employer engagement), a client in
work since 120 days before T0 with a second job, one into work 35 days before T0, passed to
the next coach 25 days before T0, whose job then ended, or the plain template's history of a
client in work at referral."""


def rich_population(folder: Path, n: int) -> Path:
    """A population of n cases with job starts, sustained jobs, employer contacts, contact
    locations and reassignments (`RICH`), built once and reused."""
    path = folder / f"population-rich-{n}.db"
    marker = folder / f"population-rich-{n}.ok"
    want = f"{VERSION}.{RICH_VERSION}:{n}:{se_flow.load_workflow().hash}"
    if path.exists() and marker.exists() and marker.read_text() == want:
        return path
    marker.unlink(missing_ok=True)
    log(f"building a rich population of {n} cases in {path} ...")
    variants = tuple(build_template(w) for w in RICH)
    populate(path, n, variants[0], variants)
    per = [len(v.events) for v in variants]
    expected = 1 + coaches_for(n) + sum(per[num % len(per)] for num in range(1, n + 1))
    if _head(path) != expected:
        raise RuntimeError(f"population {path}: expected {expected} events")
    marker.write_text(want)
    return path
