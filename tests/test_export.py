"""Exports for auditors: each table's content in each format against a known caseload, the
filters, pseudonymisation, the manifest, the export's own audit event and every refusal."""

from __future__ import annotations

import csv
import datetime as dt
import fcntl
import hashlib
import itertools
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import START

import se_flow
from se_flow import PersonalDetails, SEFlow
from se_flow._audit import FIELDS, verify_chain
from se_flow._sqlite import SQLiteStore

D = dt.date

PEOPLE = {
    "alex": PersonalDetails(
        name="Alex Doe",
        contact="alex.doe@example.org",
        date_of_birth=D(1990, 4, 12),
        health_notes="epilepsy, well controlled",
    ),
    "bea": PersonalDetails(
        name="Bea Smith",
        contact="07700 900456",
        date_of_birth=D(1985, 11, 3),
        health_notes="anxiety; prefers mornings",
    ),
    "cal": PersonalDetails(
        name="Cal Jones", contact="12 Mill Lane, Leeds", date_of_birth=D(2001, 1, 30)
    ),
}
PERSONAL_STRINGS = [
    text
    for p in PEOPLE.values()
    for text in (p.name, p.contact, str(p.date_of_birth), p.health_notes)
    if text and text != "None"
]
HEALTH = [p.health_notes for p in PEOPLE.values() if p.health_notes]


class Caseload:
    """Four cases, every date back-dated against the fixed clock (2026-06-01 09:00 UTC):

    - C-1 Alex (coach sam): a pause in vocational profiling, a job, the job lost (back to job
      matching), a second job, then career development; open.
    - C-2 Bea (coach kim): withdrew; reopened as C-3 (episode 2), open in customer engagement.
    - C-4 Cal (coach sam): paused in customer engagement.
    """

    def __init__(self, flow: SEFlow) -> None:
        self.flow = flow
        self.alex = self._alex()
        self.bea1, self.bea2 = self._bea()
        self.cal = self._cal()

    def rec(self, case_id: str, kind: str, day: D, actor: str = "sam", **fields: Any) -> None:
        self.flow.record(case_id, kind, fields, effective_at=day, actor=actor)

    def _alex(self) -> str:
        f = self.flow
        a = f.refer(PEOPLE["alex"], source="GP", coach="sam", effective_at=D(2026, 1, 5)).case.id
        f.advance(a, "engage", effective_at=D(2026, 1, 6))
        self.rec(
            a,
            "consent",
            D(2026, 1, 10),
            participation=True,
            data_processing=True,
            employer_contact=True,
        )
        self.rec(a, "first_meeting", D(2026, 1, 10), location="library")
        self.rec(a, "informed_choice", D(2026, 1, 10), decision="join")
        self.rec(a, "action_plan", D(2026, 1, 11), summary="retail or garden work")
        f.advance(a, "start_profiling", effective_at=D(2026, 1, 12))
        f.pause(a, reason="in hospital", review_date=D(2026, 6, 15), effective_at=D(2026, 1, 20))
        f.resume(a, effective_at=D(2026, 2, 3))
        self.rec(a, "vocational_profile", D(2026, 2, 5), job_goals="retail; garden work")
        self.rec(a, "disclosure_preference", D(2026, 2, 5), level="partial")
        self.rec(a, "benefits_advice", D(2026, 2, 6), offered=True)
        f.advance(a, "start_job_search", effective_at=D(2026, 2, 10))
        shop = "Corner Shop Ltd"
        self.rec(a, "employer_contact", D(2026, 2, 12), employer=shop)
        self.rec(a, "job_analysis", D(2026, 2, 14), employer=shop, role="Shop assistant")
        self.rec(a, "participant_agreement", D(2026, 2, 19), employer=shop, agrees=True)
        f.advance(a, "propose_match", effective_at=D(2026, 2, 20))
        self.rec(
            a,
            "job_offer",
            D(2026, 2, 25),
            employer=shop,
            role="Shop assistant",
            start_date="2026-03-02",
            hours_per_week="16",
            hourly_pay="12.80",
        )
        self.rec(a, "support_plan", D(2026, 2, 26), summary="weekly visits")
        f.advance(a, "start_job", effective_at=D(2026, 3, 2))
        self.rec(a, "job_end", D(2026, 3, 20), reason="the shop closed")
        f.advance(a, "end_job", effective_at=D(2026, 3, 20))
        self.rec(
            a,
            "job_offer",
            D(2026, 4, 6),
            employer="Green Garden Centre",
            role="Plant care",
            start_date="2026-04-13",
            hours_per_week="20",
            hourly_pay="12.90",
        )
        self.rec(a, "support_plan", D(2026, 4, 7), summary="weekly visits, then fortnightly")
        f.advance(a, "start_job", effective_at=D(2026, 4, 13))
        self.rec(
            a,
            "fading_plan",
            D(2026, 5, 4),
            steps="2026-06-15 fortnightly visits; 2026-08-01 phone only",
        )
        self.rec(a, "natural_support", D(2026, 5, 4), name="Pat, supervisor")
        f.advance(a, "begin_career_development", effective_at=D(2026, 5, 11))
        return a

    def _bea(self) -> tuple[str, str]:
        f = self.flow
        b = f.refer(
            PEOPLE["bea"], source="Jobcentre", coach="kim", actor="kim", effective_at=D(2026, 2, 1)
        ).case.id
        f.advance(b, "engage", actor="kim", effective_at=D(2026, 2, 2))
        f.withdraw(b, reason="started college", actor="kim", effective_at=D(2026, 2, 15))
        again = f.reopen(b, source="self", actor="kim", effective_at=D(2026, 4, 1)).case.id
        return b, again

    def _cal(self) -> str:
        f = self.flow
        c = f.refer(PEOPLE["cal"], source="GP", coach="sam", effective_at=D(2026, 5, 20)).case.id
        f.advance(c, "engage", effective_at=D(2026, 5, 21))
        f.pause(c, reason="family matters", review_date=D(2026, 6, 15), effective_at=D(2026, 5, 25))
        return c


@pytest.fixture
def load(flow: SEFlow) -> Caseload:
    return Caseload(flow)


Day = tuple[int, int]


def sp(
    stage: str,
    phase: str | None,
    status: str,
    entered: Day,
    left: Day | None,
    days: int,
    trigger_in: str,
    trigger_out: str | None,
) -> tuple[Any, ...]:
    """One expected spell; days of 2026 as (month, day)."""
    return (
        stage,
        phase,
        status,
        D(2026, *entered),
        D(2026, *left) if left else None,
        days,
        trigger_in,
        trigger_out,
    )


CE, VP, EE, JM = (
    "customer_engagement",
    "vocational_profiling",
    "employer_engagement",
    "job_matching",
)
IWS, CD = "in_work_support", "career_development"


def spell_rows(load: Caseload) -> dict[str, list[tuple[Any, ...]]]:
    """What every stage history must say, per case."""
    return {
        load.alex: [
            sp("referred", None, "active", (1, 5), (1, 6), 1, "referral", "engage"),
            sp(CE, None, "active", (1, 6), (1, 12), 6, "engage", "start_profiling"),
            sp(VP, None, "active", (1, 12), (1, 20), 8, "start_profiling", "pause"),
            sp(VP, None, "paused", (1, 20), (2, 3), 14, "pause", "resume"),
            sp(VP, None, "active", (2, 3), (2, 10), 7, "resume", "start_job_search"),
            sp(EE, None, "active", (2, 10), (2, 20), 10, "start_job_search", "propose_match"),
            sp(JM, None, "active", (2, 20), (3, 2), 10, "propose_match", "start_job"),
            sp(IWS, IWS, "active", (3, 2), (3, 20), 18, "start_job", "end_job"),
            sp(JM, None, "active", (3, 20), (4, 13), 24, "end_job", "start_job"),
            sp(IWS, IWS, "active", (4, 13), (5, 11), 28, "start_job", "begin_career_development"),
            sp(IWS, CD, "active", (5, 11), None, 21, "begin_career_development", None),
        ],
        load.bea1: [
            sp("referred", None, "active", (2, 1), (2, 2), 1, "referral", "engage"),
            sp(CE, None, "active", (2, 2), (2, 15), 13, "engage", "withdraw"),
        ],
        load.bea2: [sp(CE, None, "active", (4, 1), None, 61, "reopen", None)],
        load.cal: [
            sp("referred", None, "active", (5, 20), (5, 21), 1, "referral", "engage"),
            sp(CE, None, "active", (5, 21), (5, 25), 4, "engage", "pause"),
            sp(CE, None, "paused", (5, 25), None, 7, "pause", None),
        ],
    }


# --- reading exports back --------------------------------------------------------------------


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def read_table(folder: Path, table: str, fmt: str) -> list[dict[str, Any]]:
    """Rows as typed values whatever the format (CSV text is typed back for comparison)."""
    if fmt == "json":
        rows: list[dict[str, Any]] = json.loads((folder / "export.json").read_text())["tables"][
            table
        ]
        return rows
    if fmt == "jsonl":
        return read_jsonl(folder / f"{table}.jsonl")
    out = []
    for row in read_csv(folder / f"{table}.csv"):
        typed: dict[str, Any] = {}
        for k, v in row.items():
            if v == "":
                typed[k] = None
            elif k in ("episode", "spell", "days", "seq_in", "seq_out", "seq") or k.startswith(
                "days_"
            ):
                typed[k] = int(v)
            else:
                typed[k] = v
        out.append(typed)
    return out


def stored_events(flow: SEFlow) -> list[dict[str, Any]]:
    return [dict(r) for r in flow.store.event_rows()]


def all_text(folder: Path) -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted(folder.iterdir()))


FORMATS = ["csv", "jsonl", "json"]


# --- content -----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_stage_histories_count_days_across_pauses_job_loss_and_reopen(
    load: Caseload, tmp_path: Path, fmt: str
) -> None:
    load.flow.export(tmp_path / "out", tables=["stage_histories"], fmt=fmt)
    rows = read_table(tmp_path / "out", "stage_histories", fmt)
    got: dict[str, list[tuple[Any, ...]]] = {}
    for row in rows:
        left = row["left"]
        got.setdefault(row["case_id"], []).append(
            (
                row["stage"],
                row["phase"],
                row["status"],
                dt.datetime.fromisoformat(row["entered"]).date(),
                dt.datetime.fromisoformat(left).date() if left else None,
                row["days"],
                row["trigger_in"],
                row["trigger_out"],
            )
        )
    assert got == spell_rows(load)
    # Spells are numbered per case and chain: each one ends with the event that starts the next.
    for case_rows in (
        [r for r in rows if r["case_id"] == c] for c in (load.alex, load.bea1, load.cal)
    ):
        assert [r["spell"] for r in case_rows] == list(range(1, len(case_rows) + 1))
        for before, after in itertools.pairwise(case_rows):
            assert before["seq_out"] == after["seq_in"]
            assert before["left"] == after["entered"]
    # The reopened episode is a new case for the same participant, numbered episode 2.
    bea = {r["case_id"]: r for r in rows if r["case_id"] in (load.bea1, load.bea2)}
    assert bea[load.bea1]["participant"] == bea[load.bea2]["participant"]
    assert (bea[load.bea1]["episode"], bea[load.bea2]["episode"]) == (1, 2)
    assert {r["actor"] for r in rows if r["case_id"] == load.bea1} == {"kim"}


def test_active_days_exclude_the_pause(load: Caseload, tmp_path: Path) -> None:
    load.flow.export(tmp_path / "out", tables="stage_histories")
    rows = read_table(tmp_path / "out", "stage_histories", "csv")
    profiling = [r for r in rows if r["stage"] == "vocational_profiling"]
    active = sum(r["days"] for r in profiling if r["status"] == "active")
    paused = sum(r["days"] for r in profiling if r["status"] == "paused")
    assert (active, paused) == (15, 14)


@pytest.mark.parametrize("fmt", FORMATS)
def test_events_are_the_log_exactly_and_the_chain_verifies_from_the_file(
    load: Caseload, tmp_path: Path, fmt: str
) -> None:
    flow = load.flow
    head = flow.store.head()
    manifest = flow.export(tmp_path / "out", tables=["events"], fmt=fmt)
    # (read_table types CSV back: an empty cell is NULL, seq a number.)
    rows = read_table(tmp_path / "out", "events", fmt)
    expected = stored_events(flow)[: head[0]]
    assert rows == expected
    assert list(rows[0]) == list(FIELDS)
    checked = verify_chain(rows)
    assert checked.ok and (checked.head_seq, checked.head_hash) == head == manifest.chain_head


def test_events_keep_text_exactly_including_commas_quotes_newlines_and_accents(
    flow: SEFlow, tmp_path: Path
) -> None:
    case = flow.refer("Zoë Ångström", source="GP").case
    awkward = 'said "no, not yet"\nthen, later: café; 100% sure'
    flow.record(case.id, "note", text=awkward)
    for fmt in FORMATS:
        flow.export(tmp_path / fmt, tables=["events", "texts"], fmt=fmt)
        assert se_flow.verify_export(tmp_path / fmt).ok
    # A free text is kept apart from its event: exported exactly in the texts table.
    rows = read_csv(tmp_path / "csv" / "texts.csv")
    assert rows[-1]["text"] == awkward
    lines = read_jsonl(tmp_path / "jsonl" / "events.jsonl")
    assert lines == stored_events(flow)[: len(lines)]
    assert read_jsonl(tmp_path / "jsonl" / "texts.jsonl")[-1]["text"] == awkward


@pytest.mark.parametrize("fmt", FORMATS)
def test_client_list_has_current_clients_with_job_details(
    load: Caseload, tmp_path: Path, fmt: str
) -> None:
    flow = load.flow
    flow.export(tmp_path / "out", tables=["clients"], fmt=fmt)
    rows = {r["case_id"]: r for r in read_table(tmp_path / "out", "clients", fmt)}
    assert list(rows) == [load.alex, load.bea2, load.cal]  # C-2 is closed
    alex = rows[load.alex]
    assert alex == {
        "participant": flow.case(load.alex).participant_id,
        "case_id": load.alex,
        "episode": 1,
        "coach": "sam",
        "referral_date": "2026-01-05",
        "stage": "in_work_support",
        "phase": "career_development",
        "status": "active",
        "stage_entered": "2026-04-13",
        "days_in_programme": 147,
        "days_in_stage": 49,
        "review_due": flow.case(load.alex).review_due.isoformat(),  # type: ignore[union-attr]
        # The job now, not the one lost in March.
        "employer": "Green Garden Centre",
        "job_role": "Plant care",
        "job_start_date": "2026-04-13",
        "hours_per_week": "20",
        "hourly_pay": "12.90",
    }
    bea = rows[load.bea2]
    assert (bea["episode"], bea["coach"], bea["referral_date"], bea["days_in_programme"]) == (
        2,
        "kim",
        "2026-04-01",
        61,
    )
    assert bea["employer"] is None and bea["hourly_pay"] is None
    assert (rows[load.cal]["status"], rows[load.cal]["stage"]) == ("paused", "customer_engagement")


def test_client_list_shows_a_job_offer_corrected_after_the_job_started(
    load: Caseload, tmp_path: Path
) -> None:
    # The offer the job was taken up on, corrected in May (the pay was wrong): the client list
    # shows the corrected offer, as the case's outcomes do, not an empty job.
    flow = load.flow
    offer = [r for r in flow.records(load.alex) if r.kind == "job_offer"][-1]
    flow.record(
        load.alex,
        "job_offer",
        {
            "employer": "Green Garden Centre",
            "role": "Plant care",
            "start_date": "2026-04-13",
            "hours_per_week": "20",
            "hourly_pay": "13.10",
        },
        supersedes=offer.seq,
        effective_at=D(2026, 5, 20),
        actor="sam",
    )
    flow.export(tmp_path / "out", tables=["clients"])
    (alex,) = [
        r for r in read_table(tmp_path / "out", "clients", "csv") if r["case_id"] == load.alex
    ]
    assert (alex["employer"], alex["hours_per_week"], alex["hourly_pay"]) == (
        "Green Garden Centre",
        "20",
        "13.10",
    )
    # A second correction of the first (the start date): still the job the case is in.
    corrected = [r for r in flow.records(load.alex) if r.kind == "job_offer"][-1]
    flow.record(
        load.alex,
        "job_offer",
        {**corrected.fields, "start_date": "2026-04-14"},
        supersedes=corrected.seq,
        effective_at=D(2026, 5, 21),
        actor="sam",
    )
    flow.export(tmp_path / "again", tables=["clients"])
    (alex,) = [
        r for r in read_table(tmp_path / "again", "clients", "csv") if r["case_id"] == load.alex
    ]
    assert (alex["job_start_date"], alex["hourly_pay"]) == ("2026-04-14", "13.10")


def test_json_bundle_holds_every_table_and_is_plain_json(load: Caseload, tmp_path: Path) -> None:
    manifest = load.flow.export(tmp_path / "out", fmt="json")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["export.json", "manifest.json"]
    bundle = json.loads((tmp_path / "out" / "export.json").read_text())
    assert list(bundle["tables"]) == ["stage_histories", "events", "texts", "clients"]
    assert {k: len(v) for k, v in bundle["tables"].items()} == manifest.rows
    assert manifest.rows["stage_histories"] == sum(len(v) for v in spell_rows(load).values())


# --- filters -----------------------------------------------------------------------------


def cases_in(folder: Path) -> dict[str, set[str]]:
    return {
        table: {r["case_id"] or "-" for r in read_csv(folder / f"{table}.csv")}
        for table in ("stage_histories", "events", "clients")
    }


def test_filters_by_coach_stage_status_and_case(load: Caseload, tmp_path: Path) -> None:
    flow = load.flow
    flow.export(tmp_path / "kim", coach="kim")
    assert cases_in(tmp_path / "kim") == {
        "stage_histories": {load.bea1, load.bea2},
        "events": {load.bea1, load.bea2},
        "clients": {load.bea2},
    }
    flow.export(tmp_path / "ce", stage="customer_engagement")
    assert cases_in(tmp_path / "ce") == {
        "stage_histories": {load.bea2, load.cal},
        "events": {load.bea2, load.cal},
        "clients": {load.bea2, load.cal},
    }
    # Asking for a status lists those clients, closed ones included.
    flow.export(tmp_path / "closed", status="closed")
    assert cases_in(tmp_path / "closed") == {
        "stage_histories": {load.bea1},
        "events": {load.bea1},
        "clients": {load.bea1},
    }
    flow.export(tmp_path / "one", case_id=load.alex, status="active")
    assert cases_in(tmp_path / "one") == {t: {load.alex} for t in cases_in(tmp_path / "one")}
    flow.export(tmp_path / "none", case_id=load.alex, coach="kim")
    assert cases_in(tmp_path / "none") == {t: set() for t in ("stage_histories", "events")} | {
        "clients": set()
    }


def test_date_range_keeps_events_in_it_spells_overlapping_it_and_clients_referred_in_it(
    load: Caseload, tmp_path: Path
) -> None:
    flow = load.flow
    manifest = flow.export(tmp_path / "out", since="2026-03-02", until=D(2026, 4, 1))
    out = tmp_path / "out"
    lo = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
    hi = dt.datetime(2026, 4, 2, tzinfo=dt.UTC)  # until a date covers its whole day
    expected = [e["seq"] for e in stored_events(flow) if lo <= e_at(e) < hi]
    events = read_csv(out / "events.csv")
    assert [int(e["seq"]) for e in events] == expected and expected
    spells = read_csv(out / "stage_histories.csv")
    assert [(r["case_id"], r["spell"]) for r in spells] == [
        (load.alex, "7"),  # ended on 2 March, the first day of the range
        (load.alex, "8"),
        (load.alex, "9"),
        (load.bea2, "1"),  # began on 1 April, the last day
    ]
    assert [r["case_id"] for r in read_csv(out / "clients.csv")] == [load.bea2]
    assert manifest.filters["since"] == "2026-03-02" and manifest.filters["until"] == "2026-04-01"


def e_at(event: dict[str, Any]) -> dt.datetime:
    return dt.datetime.fromisoformat(event["effective_at"])


def test_time_bounds_are_instants_when_given_times(load: Caseload, tmp_path: Path) -> None:
    flow = load.flow
    noon = dt.datetime(2026, 3, 20, 0, 0, tzinfo=dt.UTC)
    flow.export(tmp_path / "out", tables=["events"], since=noon, until=noon)
    events = read_csv(tmp_path / "out" / "events.csv")
    assert events and {e["effective_at"] for e in events} == {noon.isoformat()}


# --- pseudonymisation ----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_default_exports_hold_no_personal_data(load: Caseload, tmp_path: Path, fmt: str) -> None:
    load.flow.export(tmp_path / "out", fmt=fmt, actor="ava")  # an auditor may export
    text = all_text(tmp_path / "out")
    assert load.flow.case(load.alex).participant_id in text
    leaked = [s for s in PERSONAL_STRINGS if s in text]
    assert not leaked


@pytest.mark.parametrize("fmt", FORMATS)
def test_admin_may_add_name_contact_and_birth_date_but_never_health_notes(
    load: Caseload, tmp_path: Path, fmt: str
) -> None:
    manifest = load.flow.export(tmp_path / "out", fmt=fmt, include_personal_data=True, actor="ada")
    assert manifest.include_personal_data
    clients = {r["case_id"]: r for r in read_table(tmp_path / "out", "clients", fmt)}
    alex = clients[load.alex]
    assert (alex["name"], alex["contact"], alex["date_of_birth"]) == (
        "Alex Doe",
        "alex.doe@example.org",
        "1990-04-12",
    )
    assert clients[load.cal]["date_of_birth"] == "2001-01-30"
    text = all_text(tmp_path / "out")
    assert not [s for s in HEALTH if s in text]
    # Only the client list carries it.
    for table in ("stage_histories", "events"):
        assert "name" not in read_table(tmp_path / "out", table, fmt)[0]


@pytest.mark.parametrize("actor", ["sam", "lee", "ava"])
def test_only_an_admin_may_export_personal_data(load: Caseload, tmp_path: Path, actor: str) -> None:
    head = load.flow.store.head()
    with pytest.raises(se_flow.PermissionDenied, match="only an admin") as refused:
        load.flow.export(tmp_path / "out", include_personal_data=True, actor=actor)
    assert refused.value.exit_code == 7
    assert not (tmp_path / "out").exists() and not leftovers(tmp_path)
    assert load.flow.store.head() == head


def test_permission_is_checked_again_when_the_export_is_logged(
    load: Caseload, tmp_path: Path
) -> None:
    """An admin demoted while their export runs gets no personal data out."""
    flow = load.flow
    flow.add_staff("eve", "Eve Admin", "admin", actor="ada")
    other = se_flow.open(tmp_path / "t.db", clock=lambda: START, actor="eve")

    def demote(table: str, rows: int) -> None:
        if table == "clients" and rows == 0:
            other.add_staff("ada", "Ada Admin", "coach")

    head = flow.store.head()
    try:
        with pytest.raises(se_flow.PermissionDenied, match="only an admin"):
            flow.export(tmp_path / "out", include_personal_data=True, actor="ada", progress=demote)
    finally:
        other.disconnect()
    assert not (tmp_path / "out").exists() and not leftovers(tmp_path)
    assert flow.store.head()[0] == head[0] + 1  # only the demotion


def test_inactive_staff_may_not_export(flow: SEFlow, tmp_path: Path) -> None:
    flow.add_staff("sam", "Sam Coach", "coach", active=False, actor="ada")
    with pytest.raises(se_flow.PermissionDenied, match="no longer active"):
        flow.export(tmp_path / "out", actor="sam")
    with pytest.raises(se_flow.PermissionDenied, match="nobody is not on the staff list"):
        flow.export(tmp_path / "out", actor="nobody")


# --- manifest and audit event --------------------------------------------------------------


def test_manifest_records_the_request_counts_hashes_and_chain_head(
    load: Caseload, tmp_path: Path
) -> None:
    flow = load.flow
    head = flow.store.head()
    manifest = flow.export(tmp_path / "out", tables=["events", "clients"], fmt="jsonl", coach="sam")
    on_disk = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert on_disk == manifest.to_json()
    assert on_disk["request"] == {
        "tables": ["events", "clients"],
        "format": "jsonl",
        "filters": {
            "since": None,
            "until": None,
            "case_id": None,
            "coach": "sam",
            "stage": None,
            "status": None,
        },
        "include_personal_data": False,
    }
    assert on_disk["chain_head"] == {"seq": head[0], "hash": head[1]}
    assert on_disk["store_id"] == flow.store.store_id()
    assert on_disk["workflow"]["hash"] == flow.workflow.hash
    assert on_disk["se_flow_version"] == se_flow.__version__
    assert on_disk["created_at"] == START.isoformat()
    assert (on_disk["actor"], on_disk["role"]) == ("sam", "coach")
    for name, entry in on_disk["files"].items():
        data = (tmp_path / "out" / name).read_bytes()
        assert entry == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    for table, info in on_disk["tables"].items():
        assert info["rows"] == len(read_jsonl(tmp_path / "out" / info["file"])), table
    assert manifest.rows["clients"] == 2  # Alex and Cal; Cal is paused but still a client


def test_every_export_is_an_audit_event(load: Caseload, tmp_path: Path) -> None:
    flow = load.flow
    before = flow.store.head()
    manifest = flow.export(
        tmp_path / "out", include_personal_data=True, actor="ada", stage="closed"
    )
    event = flow.events(after_seq=before[0])[0]
    assert len(flow.events(after_seq=before[0])) == 1
    assert (event.kind, event.case_id, event.actor, event.role) == ("export", None, "ada", "admin")
    assert (event.seq, event.hash) == manifest.audit_event
    payload = dict(event.payload)
    assert payload["export_id"] == manifest.export_id
    assert payload["personal_data"] is True
    assert payload["tables"] == ["stage_histories", "events", "texts", "clients"]
    assert payload["format"] == "csv"
    assert payload["filters"]["stage"] == "closed"
    assert payload["files"] == {n: f["sha256"] for n, f in manifest.files.items()}
    assert payload["chain_head"] == {"seq": before[0], "hash": before[1]}
    assert flow.verify().ok
    # The next export includes the previous one's event, and still verifies from the file.
    flow.export(tmp_path / "again", tables=["events"])
    kinds = [r["kind"] for r in read_csv(tmp_path / "again" / "events.csv")]
    assert kinds[-1] == "export"
    assert se_flow.verify_export(tmp_path / "again").ok


def test_progress_reports_each_table_as_it_goes(load: Caseload, tmp_path: Path) -> None:
    calls: list[tuple[str, int]] = []
    manifest = load.flow.export(tmp_path / "out", progress=lambda t, n: calls.append((t, n)))
    for table, rows in manifest.rows.items():
        seen = [n for t, n in calls if t == table]
        assert seen[0] == 0 and seen[-1] == rows and seen == sorted(seen)


# --- refusals ------------------------------------------------------------------------------


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"fmt": "xlsx"}, "'xlsx'"),
        ({"tables": ["events", "notes"]}, "'notes'"),
        ({"tables": []}, "no tables"),
        ({"stage": "nowhere"}, "'nowhere'"),
        ({"status": "sleeping"}, "'sleeping'"),
        ({"since": "last tuesday"}, "'last tuesday'"),
        ({"since": "2026-05-01", "until": "2026-04-01"}, "after until"),
        ({"until": dt.datetime(2026, 5, 1, 12, 0)}, "no time zone"),
    ],
)
def test_bad_requests_are_refused_naming_what_is_wrong(
    load: Caseload, tmp_path: Path, kwargs: dict[str, Any], named: str
) -> None:
    head = load.flow.store.head()
    with pytest.raises(se_flow.InvalidExportRequest, match=named) as refused:
        load.flow.export(tmp_path / "out", **kwargs)
    assert refused.value.exit_code == 5
    assert not (tmp_path / "out").exists() and not leftovers(tmp_path)
    assert load.flow.store.head() == head


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [({"coach": "zed"}, se_flow.StaffNotFound), ({"case_id": "C-99"}, se_flow.CaseNotFound)],
)
def test_an_export_for_no_one_or_no_case_is_not_found(
    load: Caseload, tmp_path: Path, kwargs: dict[str, Any], error: type[se_flow.NotFound]
) -> None:
    head = load.flow.store.head()
    with pytest.raises(error) as refused:
        load.flow.export(tmp_path / "out", **kwargs)
    assert refused.value.exit_code == 4 and next(iter(kwargs.values())) in str(refused.value)
    assert not (tmp_path / "out").exists() and not leftovers(tmp_path)
    assert load.flow.store.head() == head


def test_an_existing_folder_is_refused_unless_forced(flow: SEFlow, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(se_flow.InvalidExportRequest, match="exists and is not empty"):
        flow.export(out)
    # force replaces an earlier export, never a folder of other files.
    with pytest.raises(se_flow.InvalidExportRequest, match="not an se-flow export"):
        flow.export(out, force=True)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    assert not leftovers(tmp_path)


def test_force_replaces_an_earlier_export_whole(flow: SEFlow, tmp_path: Path) -> None:
    out = tmp_path / "out"
    flow.export(out, fmt="csv")
    with pytest.raises(se_flow.InvalidExportRequest, match="exists"):
        flow.export(out, fmt="jsonl")
    flow.export(out, fmt="jsonl", force=True)
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "clients.jsonl",
        "events.jsonl",
        "manifest.json",
        "stage_histories.jsonl",
        "texts.jsonl",
    ]
    assert flow.verify_export(out).ok
    assert not leftovers(tmp_path)


def test_an_empty_folder_is_used_without_force(flow: SEFlow, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    flow.export(tmp_path / "out")
    assert flow.verify_export(tmp_path / "out").ok


def test_a_missing_parent_or_a_file_in_the_way_is_refused(flow: SEFlow, tmp_path: Path) -> None:
    with pytest.raises(se_flow.InvalidExportRequest, match="does not exist"):
        flow.export(tmp_path / "no" / "such" / "out")
    (tmp_path / "out").write_text("x")
    with pytest.raises(se_flow.InvalidExportRequest, match="not a folder"):
        flow.export(tmp_path / "out", force=True)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permissions")
def test_an_unwritable_folder_is_refused(flow: SEFlow, tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(se_flow.InvalidExportRequest, match="cannot write"):
            flow.export(locked / "out")
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o755)


def test_an_unwritable_folder_is_refused_clearly(
    flow: SEFlow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As the OS answers for a read-only folder (the test may run as root, who may write).
    def refuse(*args: Any, **kwargs: Any) -> str:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("se_flow._export.tempfile.mkdtemp", refuse)
    head = flow.store.head()
    with pytest.raises(se_flow.InvalidExportRequest, match=r"cannot write to folder.*denied"):
        flow.export(tmp_path / "out")
    assert not (tmp_path / "out").exists() and flow.store.head() == head


def test_a_failure_midway_leaves_nothing_behind_and_logs_nothing(
    load: Caseload, tmp_path: Path
) -> None:
    head = load.flow.store.head()

    def cancel(table: str, rows: int) -> None:
        if table == "clients":
            raise KeyboardInterrupt  # the user pressed Ctrl-C on the progress bar

    with pytest.raises(KeyboardInterrupt):
        load.flow.export(tmp_path / "out", progress=cancel)
    assert not (tmp_path / "out").exists() and not leftovers(tmp_path)
    assert load.flow.store.head() == head


def test_a_disk_error_midway_is_a_store_error_and_leaves_nothing(
    load: Caseload, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = iter(range(100))

    def full(f: Any) -> None:
        if next(calls) == 1:
            raise OSError(28, "No space left on device")

    monkeypatch.setattr("se_flow._export._seal_file", full)
    head = load.flow.store.head()
    with pytest.raises(se_flow.StoreError, match="No space left") as failed:
        load.flow.export(tmp_path / "out")
    assert failed.value.exit_code == 10
    assert not (tmp_path / "out").exists() and not leftovers(tmp_path)
    assert load.flow.store.head() == head


def test_a_previous_export_survives_a_failed_forced_replacement(
    load: Caseload, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    load.flow.export(out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def cancel(table: str, rows: int) -> None:
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError):
        load.flow.export(out, force=True, fmt="jsonl", progress=cancel)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert not leftovers(tmp_path)


def test_export_reads_one_moment_of_the_log(load: Caseload, tmp_path: Path) -> None:
    """Writes by another connection during an export do not leak into it."""
    flow = load.flow
    other = se_flow.open(tmp_path / "t.db", clock=lambda: START, actor="kim")
    head = flow.store.head()
    wrote: list[int] = []

    def meanwhile(table: str, rows: int) -> None:
        if table == "clients" and not wrote:
            other.record(load.bea2, "note", text="written during the export")
            wrote.append(1)

    try:
        manifest = flow.export(tmp_path / "out", progress=meanwhile)
    finally:
        other.disconnect()
    assert wrote and manifest.chain_head == head
    events = read_csv(tmp_path / "out" / "events.csv")
    assert int(events[-1]["seq"]) == head[0]
    assert flow.verify().ok


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
@pytest.mark.parametrize("fmt", ["csv", "jsonl", "json"])
@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_an_export_is_readable_by_its_owner_only(
    load: Caseload, tmp_path: Path, fmt: str, umask: int
) -> None:
    out = tmp_path / "out"
    old = os.umask(umask)
    try:
        load.flow.export(out, fmt=fmt, include_personal_data=True, actor="ada")
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == 0o700
    modes = {p.name: p.stat().st_mode & 0o777 for p in out.iterdir()}
    assert "manifest.json" in modes and len(modes) > 1
    assert set(modes.values()) == {0o600}, modes


# --- kills, full disks and leftovers -----------------------------------------------------

KILLED_MIDWAY = """
import os, signal, sys
import se_flow

def progress(table, rows):
    if table == "events":
        os.kill(os.getpid(), signal.SIGKILL)  # as the OOM killer or a power cut would

with se_flow.open(sys.argv[1], actor="sam") as flow:
    flow.export(sys.argv[2], progress=progress)
"""

KILLED_BEFORE_THE_EVENT = """
import os, signal, sys
import se_flow

with se_flow.open(sys.argv[1], actor="sam") as flow:
    flow.store.write = lambda decide: os.kill(os.getpid(), signal.SIGKILL)
    flow.export(sys.argv[2], force=True, fmt="jsonl")
"""

DISK_FULL = """
import resource, signal, sys
import se_flow

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # so a write past the limit fails, not kills
with se_flow.open(sys.argv[1], actor="sam") as flow:
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[3]), resource.RLIM_INFINITY))
    try:
        flow.export(sys.argv[2])
    except se_flow.SEFlowError as exc:
        print(type(exc).__name__, exc.exit_code, exc)
"""


def child(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=120
    )


posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX signals and limits")


@posix_only
def test_a_killed_export_leaves_a_work_folder_the_next_export_removes(
    load: Caseload, tmp_path: Path
) -> None:
    flow, out = load.flow, tmp_path / "out"
    head = flow.store.head()
    done = child(KILLED_MIDWAY, str(tmp_path / "t.db"), str(out))
    assert done.returncode == -signal.SIGKILL, done.stderr
    left = leftovers(tmp_path)
    assert len(left) == 1 and left[0].startswith(".out.tmp-")
    assert not out.exists() and flow.store.head() == head

    flow.export(out)
    assert leftovers(tmp_path) == []
    assert flow.verify_export(out).ok


@posix_only
def test_a_kill_before_the_event_leaves_an_export_the_log_disowns_and_the_next_sweeps(
    load: Caseload, tmp_path: Path
) -> None:
    flow, out = load.flow, tmp_path / "out"
    flow.export(out)
    head = flow.store.head()
    done = child(KILLED_BEFORE_THE_EVENT, str(tmp_path / "t.db"), str(out))
    assert done.returncode == -signal.SIGKILL, done.stderr
    # The new export was placed, its event never committed: the log says so.
    assert flow.store.head() == head
    assert "the log holds no audit event for this export" in " ".join(
        flow.verify_export(out).problems
    )
    assert [n[: len(".out.old-")] for n in leftovers(tmp_path)] == [".out.old-"]

    flow.export(out, force=True)
    assert leftovers(tmp_path) == []
    assert flow.verify_export(out).ok


@posix_only
def test_a_full_disk_during_an_export_logs_nothing_and_leaves_nothing(
    load: Caseload, tmp_path: Path
) -> None:
    # A real write failure (the file size limit), in a child so the limit binds only there.
    flow, out = load.flow, tmp_path / "out"
    flow.record(load.bea2, "note", text="n" * 200_000)
    head = flow.store.head()
    done = child(DISK_FULL, str(tmp_path / "t.db"), str(out), str(64 * 1024))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("StoreError 10 "), done.stdout
    assert "File too large" in done.stdout and "nothing was written" in done.stdout
    assert flow.store.head() == head
    assert not out.exists() and leftovers(tmp_path) == []


def test_a_full_disk_writing_the_manifest_logs_nothing(
    load: Caseload, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Once "nothing was written" was said here while an export event naming the files was
    # already in the log.
    def full(folder: Path, manifest: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("se_flow._export._write_manifest", full)
    head = load.flow.store.head()
    with pytest.raises(se_flow.StoreError, match="nothing was written"):
        load.flow.export(tmp_path / "out")
    assert load.flow.store.head() == head
    assert not (tmp_path / "out").exists() and not leftovers(tmp_path)


@pytest.mark.parametrize("earlier", [False, True])
def test_when_the_event_cannot_be_committed_the_export_is_taken_away(
    load: Caseload, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, earlier: bool
) -> None:
    flow, out = load.flow, tmp_path / "out"
    if earlier:
        flow.export(out)
    before = {p.name: p.read_bytes() for p in out.iterdir()} if earlier else None
    head = flow.store.head()
    placed: list[bool] = []

    def full(decide: Any) -> Any:
        placed.append((out / "manifest.json").is_file())
        raise se_flow.StoreError("database or disk is full")

    monkeypatch.setattr(flow.store, "write", full)
    with pytest.raises(se_flow.StoreError, match="disk is full"):
        flow.export(out, force=True, fmt="jsonl")
    assert placed == [True]  # the files were in place before the commit was tried
    monkeypatch.undo()
    assert flow.store.head() == head and not leftovers(tmp_path)
    if before is None:
        assert not out.exists()
    else:
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before
        assert flow.verify_export(out).ok


def test_an_export_whose_manifest_could_not_name_its_event_still_verifies(
    load: Caseload, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(out_dir: Path, manifest: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("se_flow._export._name_the_event", full)
    with pytest.raises(se_flow.StoreError, match="was written and logged as audit event"):
        load.flow.export(tmp_path / "out")
    on_disk = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert on_disk["audit_event"] is None
    assert load.flow.events()[-1].payload["export_id"] == on_disk["export_id"]
    assert load.flow.verify_export(tmp_path / "out").ok


def test_the_sweep_leaves_alone_what_is_not_a_dead_exports(flow: SEFlow, tmp_path: Path) -> None:
    mine = tmp_path / ".out.tmp-abcd1234"  # named like ours, but someone's files
    mine.mkdir()
    (mine / "thesis.docx").write_text("mine")
    other = tmp_path / ".review.tmp-abcd1234"  # another target's
    other.mkdir()
    (other / "events.csv").write_text("seq\n")
    busy = tmp_path / ".out.tmp-live0000"  # a live export's, locked
    busy.mkdir()
    (busy / "events.csv").write_text("seq\n")
    fd = os.open(busy, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        flow.export(tmp_path / "out")
    finally:
        os.close(fd)
    assert (mine / "thesis.docx").read_text() == "mine"
    assert (other / "events.csv").is_file() and (busy / "events.csv").is_file()


def test_a_folder_changed_while_being_replaced_is_kept_not_deleted(
    load: Caseload, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow, out = load.flow, tmp_path / "out"
    flow.export(out)
    write = flow.store.write

    def meanwhile(decide: Any) -> Any:
        # Someone saves a file into the earlier export after it was checked.
        (aside,) = tmp_path.glob(".out.old-*")
        (aside / "late-notes.txt").write_text("mine")
        return write(decide)

    monkeypatch.setattr(flow.store, "write", meanwhile)
    flow.export(out, force=True, fmt="jsonl")
    (kept,) = tmp_path.glob(".out.kept-*")
    assert (kept / "late-notes.txt").read_text() == "mine"
    assert flow.verify_export(out).ok


def _caseload_of(n: int, path: Path) -> SEFlow:
    flow = se_flow.open(path, clock=lambda: START, actor="ada")
    flow.add_staff("ada", "Ada Admin", "admin")
    flow.add_staff("sam", "Sam Coach", "coach")
    for i in range(n):
        case = flow.refer(
            PersonalDetails(name=f"P {i}"), source="GP", coach="sam", actor="sam"
        ).case
        flow.advance(case.id, "engage", actor="sam")
        if i % 2:
            flow.pause(case.id, reason="away", review_date=D(2026, 7, 1), actor="sam")
    return flow


def test_stage_histories_are_read_in_a_bounded_number_of_queries(tmp_path: Path) -> None:
    reads: dict[int, list[str]] = {}
    for n in (1, 50):
        with _caseload_of(n, tmp_path / f"{n}.db") as flow:
            assert isinstance(flow.store, SQLiteStore)
            statements: list[str] = []
            flow.store.conn.set_trace_callback(statements.append)
            manifest = flow.export(tmp_path / f"out-{n}", tables=["stage_histories"])
            assert manifest.rows["stage_histories"] == n * 2 + n // 2
            # The reads inside the export's one read snapshot.
            start, end = statements.index("BEGIN"), statements.index("ROLLBACK")
            reads[n] = statements[start + 1 : end]
    assert len(reads[50]) == len(reads[1]) <= 5, reads[50]


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
@pytest.mark.parametrize("where", [0, 1, 2])
def test_a_formula_cell_anywhere_in_a_chunk_is_escaped_and_the_rest_kept(
    start: str, where: int
) -> None:
    """A CSV chunk is searched once as text for a cell that could start a formula; whatever
    the cell's place (first on its line, between others, last; bare or quoted), it is found."""
    import io

    from se_flow._export import _Table, _write_csv

    plain = [("C-1", "2026-05-01T09:00:00+00:00", 3, None, 'say "hi", then go')] * 5
    risky = [f"{start}x", f"{start}x,y", f"{start}x\ny"]
    for cell in risky:
        row = ["C-2", "ok", 4]
        row.insert(where, cell)
        table = _Table("stage_histories", ("a", "b", "c", "d"), iter([*plain, tuple(row)]))
        out = io.StringIO(newline="")
        assert _write_csv(out, table, None) == 6
        back = list(csv.reader(io.StringIO(out.getvalue(), newline="")))
        assert back[1:6] == [["C-1", "2026-05-01T09:00:00+00:00", "3", "", 'say "hi", then go']] * 5
        assert back[6][where] == "'" + cell
