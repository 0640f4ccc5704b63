"""The whole due list a page at a time (`SEFlow.due_pages`): what `se-flow due` without
`--limit` writes, so a team's list of any size is never held whole.

Joined, the pages are the whole list (`due_for`), item for item and in its order, however
small the pages and wherever they cut it: reviews and both kinds of standard rows (deadlines
and schedule windows) are read in (day, case) order, and a page ends where the first of
them to stop early stopped."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import Clock, Steps
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pg import pg_server, pg_url
from test_cli import CLI, ok

import se_flow
from se_flow._memory import MemoryStore

__all__ = ["pg_server", "pg_url"]  # fixtures

STAGES = ("employer_engagement", "job_matching", "in_work_support", "vocational_profiling")


def _team(flow: se_flow.SEFlow, clock: Clock, n: int) -> se_flow.SEFlow:
    """`n` cases for sam and kim, referred seven hours apart in each stage (a fifth only
    referred), ten days before today: reviews, deadlines and schedule windows all due."""
    flow.add_staff("ada", "Ada Admin", "admin", actor="ada")
    for coach in ("sam", "kim"):
        flow.add_staff(coach, coach.title(), "coach", actor="ada")
    steps = Steps(flow)
    for i in range(n):
        coach = ("sam", "kim")[i % 2]
        case = steps.refer(coach=coach, actor=coach)
        if i % 5:
            steps.to(STAGES[i % len(STAGES)], case)
        clock.advance(hours=7)
    clock.advance(days=10)
    return flow


@pytest.fixture(scope="module")
def flows(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, se_flow.SEFlow]]:
    clocks = {"sqlite": Clock(), "memory": Clock()}
    path = tmp_path_factory.mktemp("due-pages") / "t.db"
    wf = se_flow.load_workflow()
    with contextlib.ExitStack() as stack:
        on_file = stack.enter_context(se_flow.open(path, clock=clocks["sqlite"], actor="ada"))
        in_memory = se_flow.SEFlow(MemoryStore(wf), wf, clock=clocks["memory"], actor="ada")
        yield {
            "sqlite": _team(on_file, clocks["sqlite"], 60),
            "memory": _team(in_memory, clocks["memory"], 60),
        }


def _joined(flow: se_flow.SEFlow, size: int, **kw: object) -> list[se_flow.DueItem]:
    return [i for page in flow.due_pages(page_size=size, **kw) for i in page.items.items]  # type: ignore[arg-type]


@pytest.mark.parametrize("store", ["sqlite", "memory"])
def test_the_pages_joined_are_the_whole_list_in_its_order(
    flows: dict[str, se_flow.SEFlow], store: str
) -> None:
    flow = flows[store]
    for kw in ({"within_days": 60}, {"within_days": 0}, {"overdue": True}, {"coach": "kim"}):
        whole = flow.due_for(everyone=True, **kw).items.items
        assert len(whole) > 30, kw
        if kw == {"within_days": 60}:
            # Reviews, deadlines and a schedule's windows (follow-along), each a range read.
            names = {i.name for i in whole}
            assert {"review", "ipes_first_meeting", "ips_follow_along"} <= names, names
        for size in (1, 2, 5, 64, 1000):
            pages = list(flow.due_pages(everyone=True, page_size=size, **kw))
            assert [i for p in pages for i in p.items.items] == list(whole), (kw, size)
            # Small pages do cut the list (it is not read whole and handed out in slices),
            # and none is empty; pages of more rows than a range holds are the whole list.
            assert len(pages) > 1 if size <= 5 else len(pages) >= 1, (kw, size)
            assert all(p.items.items for p in pages), (kw, size)
            assert len(pages) == 1 or size < 1000


def test_the_pages_joined_are_the_whole_list_on_postgresql(pg_url: str) -> None:
    clock = Clock()
    with se_flow.open(pg_url, clock=clock, actor="ada") as flow:
        _team(flow, clock, 20)
        for kw in ({"within_days": 60}, {"overdue": True}, {"coach": "sam"}):
            whole = flow.due_for(everyone=True, **kw).items.items
            assert len(whole) > 10, kw
            for size in (1, 3, 50):
                assert _joined(flow, size, everyone=True, **kw) == list(whole), (kw, size)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    size=st.integers(1, 90),
    within=st.sampled_from([0, 3, 21, 400]),
    coach=st.sampled_from([None, "sam", "kim"]),
)
def test_any_page_size_gives_the_whole_list(
    flows: dict[str, se_flow.SEFlow], size: int, within: int, coach: str | None
) -> None:
    flow = flows["sqlite"]
    whole = flow.due_for(everyone=True, coach=coach, within_days=within).items.items
    assert _joined(flow, size, everyone=True, coach=coach, within_days=within) == list(whole)


def test_a_coach_pages_their_own_list_and_names_come_with_each_page(
    flows: dict[str, se_flow.SEFlow],
) -> None:
    flow = flows["sqlite"]
    pages = list(flow.due_pages(page_size=4, names=True, within_days=60, actor="sam"))
    assert len(pages) > 1 and {p.coach for p in pages} == {"sam"}
    for page in pages:
        assert {i.case_id for i in page.items.items} == set(page.names)
    whole = flow.due_for(within_days=60, actor="sam", names=True)
    assert [i for p in pages for i in p.items.items] == list(whole.items.items)


def test_bad_page_sizes_and_days_are_refused_naming_the_field(
    flows: dict[str, se_flow.SEFlow],
) -> None:
    flow = flows["sqlite"]
    for kw, field in (({"page_size": 0}, "page_size"), ({"within_days": -1}, "within_days")):
        with pytest.raises(se_flow.InvalidInput, match=field):
            next(flow.due_pages(**kw))  # type: ignore[arg-type]


def test_the_cli_writes_the_whole_list_as_the_api_gives_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(dt.datetime.now(dt.UTC) - dt.timedelta(days=30))
    path = tmp_path / "t.db"
    with se_flow.open(path, clock=clock, actor="ada") as flow:
        _team(flow, clock, 12)
    with se_flow.open(path, actor="ada") as flow:
        whole = flow.due_for(everyone=True, within_days=60).items.items
    assert len(whole) > 10
    # Pages of three rows: the list is written in several.
    monkeypatch.setattr(se_flow._api, "PAGE_SIZE", 3)
    cli = CLI(path)
    out = ok(cli("due", "--all", "--within", "60", "--json", actor="ada"))
    assert json.loads(out) == [i.to_json() for i in whole]
    table = ok(cli("due", "--all", "--within", "60", actor="ada", env={"COLUMNS": "80"}))
    assert all(len(line) <= 80 for line in table.splitlines())
    assert {i.case_id for i in whole} <= set(table.split())
