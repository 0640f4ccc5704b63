"""Every screen a coach reads fits an 80-column terminal and uses a wider one: rendered at 80
and 120 columns on the demo's caseload, no line is longer than the terminal, and every id a
coach types (case, participant, trigger, record kind, state) appears whole on one line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from rich.cells import cell_len
from typer.testing import CliRunner

import se_flow
from se_flow.cli import app


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("widths") / "demo.db"
    result = CliRunner().invoke(app, ["--db", str(db), "demo"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    return db


def screen(db: Path, columns: int, *args: str) -> list[str]:
    result = CliRunner().invoke(
        app, ["--db", str(db), "--as", "sam", *args], env={"COLUMNS": str(columns)}
    )
    assert result.exit_code in (0, 6), result.output
    return result.stdout.splitlines()


def whole(lines: list[str], word: str) -> bool:
    """Whether `word` appears on some line as a whole token (not cut, not run into another)."""
    pattern = re.compile(rf"(?<![\w-]){re.escape(word)}(?![\w-])")
    return any(pattern.search(line) for line in lines)


def ids_of(db: Path) -> tuple[se_flow.Workflow, list[se_flow.Case]]:
    with se_flow.open(db, create=False, read_only=True, actor="sam") as flow:
        return flow.workflow, flow.cases(status="all")


SCREENS = [
    ["due", "--all"],
    ["show", "C-1"],
    ["history", "C-1"],
    ["next", "C-5"],
    ["check", "C-5", "start_job"],
    ["check", "C-9", "pause"],
    ["check", "C-1", "close_disengaged"],
    ["next", "C-1"],
    ["workflow", "show"],
    ["cases"],
    ["team"],
]


@pytest.mark.parametrize("columns", [80, 120])
@pytest.mark.parametrize("command", SCREENS, ids=lambda c: " ".join(c))
def test_each_screen_fits_the_terminal(demo_db: Path, command: list[str], columns: int) -> None:
    lines = screen(demo_db, columns, *command)
    assert lines, command
    too_long = [line for line in lines if cell_len(line) > columns]
    assert not too_long, "\n".join(too_long)
    assert not any("…" in line and "C-" in line.split("…")[0][-3:] for line in lines)


@pytest.mark.parametrize("command", SCREENS, ids=lambda c: " ".join(c))
def test_ids_are_never_cut(demo_db: Path, command: list[str]) -> None:
    wf, cases = ids_of(demo_db)
    by_id = {c.id: c for c in cases}
    lines = screen(demo_db, 80, *command)
    text = "\n".join(lines)
    for case_id in re.findall(r"\bC-\d+", text):
        assert case_id in by_id, f"{case_id} is not a case: an id was cut"
    if command[0] in ("show", "next", "check", "history"):
        assert whole(lines, command[1])
    if command[0] == "show":
        assert whole(lines, by_id[command[1]].participant_id)
    if command[0] == "check":
        assert whole(lines, command[2])
    if command[0] == "next":
        with se_flow.open(demo_db, create=False, read_only=True, actor="sam") as flow:
            for check in flow.available(command[1]):
                assert whole(lines, check.trigger), check.trigger
    if command == ["workflow", "show"]:
        for trigger in wf.triggers:
            assert whole(lines, trigger), trigger
        for kind in wf.records:
            assert whole(lines, kind), kind
        for state in wf.states:
            assert whole(lines, state), state
    if command[0] == "cases":
        for case in cases:
            if case.is_open:
                assert whole(lines, case.id) and whole(lines, case.participant_id)


@pytest.mark.parametrize(
    "command", [["show", "C-1"], ["history", "C-1"], ["workflow", "show"]], ids=" ".join
)
def test_a_wider_terminal_is_used(demo_db: Path, command: list[str]) -> None:
    """What folds at 80 columns takes fewer lines at 120, and some line is longer than 80."""
    narrow, wide = screen(demo_db, 80, *command), screen(demo_db, 120, *command)
    assert len(wide) < len(narrow)
    assert max(cell_len(line) for line in wide) > 80


def test_the_demo_itself_fits_80_columns() -> None:
    result = CliRunner().invoke(app, ["demo"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    too_long = [line for line in lines if cell_len(line) > 80]
    assert not too_long, "\n".join(too_long)
    # The head hash whole on a line of its own, so it can be copied.
    assert any(re.fullmatch(r"\s*[0-9a-f]{64}\s*", line) for line in lines)


def test_every_column_left_at_80_has_a_header(demo_db: Path) -> None:
    # At 80 columns the review date gives way to its flag ("in 5d"), which then carries the
    # date's header: no column of values without one.
    head, *rows = screen(demo_db, 80, "cases")
    assert head.split()[-2:] == ["Review", "due"]
    assert not any(re.search(r"\d{4}-\d\d-\d\d", row) for row in rows)
    wide = screen(demo_db, 120, "cases")
    assert wide[0].split()[-2:] == ["Review", "due"] and re.search(r"\d{4}-\d\d-\d\d", wide[1])


def test_a_guard_reason_folds_under_itself(demo_db: Path) -> None:
    lines = screen(demo_db, 80, "next", "C-1")
    reasons = [i for i, line in enumerate(lines) if line.lstrip().startswith("✗")]
    assert reasons
    for i in reasons:
        j = i + 1
        while j < len(lines) and not lines[j].lstrip().startswith(("✗", "✓")):
            if lines[j].startswith("  ") and lines[j][2] != " ":
                break  # the next trigger's line
            assert lines[j].startswith(" " * 8), lines[j]
            j += 1


@pytest.mark.parametrize("columns", [50, 80])
@pytest.mark.parametrize(
    "command", [["check", "C-1", "close_disengaged"], ["check", "C-9", "start_profiling"]]
)
def test_a_checklist_folds_each_guard_under_its_title(
    demo_db: Path, command: list[str], columns: int
) -> None:
    # The terminal's own wrap would start the rest of a long guard line at the left edge,
    # where it reads as a line of its own: folded four cells in, under the guard's title.
    lines = screen(demo_db, columns, *command)
    assert not [line for line in lines if cell_len(line) > columns]
    marks = [i for i, line in enumerate(lines) if line.startswith(("  ✗ ", "  ✓ "))]
    assert marks and any(i + 1 not in marks for i in marks[:-1])  # some guard folds
    ends = [i for i, line in enumerate(lines) if line.startswith(("blocked", "ready"))]
    assert ends, lines
    for i in range(marks[0], ends[0]):
        assert i in marks or (lines[i].startswith("    ") and lines[i][4] != " "), lines[i]
    # The heading folds two in, its arrow leading where the case goes.
    for line in lines[1 : marks[0]]:
        assert line.startswith("  ") and not line.rstrip().endswith("→"), line


def test_next_says_a_reason_two_guards_share_once(demo_db: Path) -> None:
    # complete needs a final review held, and one saying fading finished or the participant
    # asked to end: with no final review both guards say so; the screen says it once.
    lines = screen(demo_db, 80, "next", "C-1")
    start = next(i for i, line in enumerate(lines) if line.startswith("  complete "))
    assert "missing 2" in lines[start]
    reasons = []
    for line in lines[start + 1 :]:
        if not line.startswith("      "):
            break
        reasons.append(line.strip())
    assert reasons == ["✗ no final review recorded since the last start_job (2 guards)"]


def test_a_count_stays_with_its_word_in_a_narrow_terminal(demo_db: Path) -> None:
    lines = screen(demo_db, 50, "next", "C-9")
    assert not [line for line in lines if cell_len(line) > 50]
    assert any(re.search(r"missing \d", line) for line in lines)
    assert not any(line.rstrip().endswith("missing") for line in lines)
    assert lines[1].startswith("  ")  # the heading folds under itself


def test_a_long_override_reason_folds_after_the_move(demo_db: Path, tmp_path: Path) -> None:
    import shutil

    db = tmp_path / "copy.db"
    shutil.copyfile(demo_db, db)

    def run(who: str, *args: str) -> list[str]:
        result = CliRunner().invoke(
            app, ["--db", str(db), "--as", who, *args], env={"COLUMNS": "80"}
        )
        assert result.exit_code == 0, result.output
        return result.stdout.splitlines()

    run("sam", "record", "C-9", "first_meeting", "location=library")
    run("sam", "record", "C-9", "informed_choice", "decision=join")
    reason = "Agreed by phone with Ivan at the library; the coach writes it up on Monday " * 3
    lines = run("lee", "advance", "C-9", "start_profiling", "--override", reason.strip())
    assert not [line for line in lines if cell_len(line) > 80], lines
    start = next(i for i, line in enumerate(lines) if line.startswith("  override by lee"))
    assert lines[start + 1].startswith("    ") and "Monday" in lines[start + 1]
