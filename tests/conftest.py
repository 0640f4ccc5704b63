"""Shared fixtures: a fixed clock, a staffed flow on a fresh database, and the steps that walk
a case through the workflow. The helpers themselves live in `helpers.py`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import Clock, Steps

import se_flow


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def flow(tmp_path: Path, clock: Clock) -> Iterator[se_flow.SEFlow]:
    """A fresh database with an admin `ada`, a team leader `lee`, coaches `sam` and `kim` and
    an auditor `ava`; calls that name no actor act as `sam`."""
    with se_flow.open(tmp_path / "t.db", clock=clock, actor="sam") as f:
        f.add_staff("ada", "Ada Admin", "admin", actor="ada")
        f.add_staff("lee", "Lee Leader", "team_leader", actor="ada")
        f.add_staff("sam", "Sam Coach", "coach", actor="ada")
        f.add_staff("kim", "Kim Coach", "coach", actor="ada")
        f.add_staff("ava", "Ava Auditor", "auditor", actor="ada")
        yield f


@pytest.fixture
def steps(flow: se_flow.SEFlow) -> Steps:
    return Steps(flow)
