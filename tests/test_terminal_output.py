"""What reaches a terminal from data: a name, reason, source, note or id holding terminal
escapes, bidi overrides or rich markup prints as written and changes nothing on the screen; a
note of the largest size renders as a bounded view pointing to --json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import staffed_db
from test_cli import CLI, walk

import se_flow
from se_flow._cli_text import safe
from se_flow._limits import MAX_TEXT

CLEAR_SCREEN = "\x1b[2J\x1b[31m"
HYPERLINK = "\x1b]8;;https://evil.example/\x07click\x1b]8;;\x07"
EVIL_NAME = f"Evil{CLEAR_SCREEN}Name"
# Staff ids and names refuse control characters at entry (test_staff_rules), so the coach is
# plain; everything a coach types about a case still carries the attacks.
EVIL_COACH = "kevin"
MARKUP_CONTACT = "[red]x[/red] [link=https://evil.example/]call[/link] :smile:"
EVIL_REASON = f"moving {HYPERLINK} \x9b31m csi \u202eesrever\u202c back\rover \x7fdel"
EVIL_NOTE = f"note {HYPERLINK} \x1bP tmux; \x1b\\ \u2066isolated\u2069"

# What must never reach a terminal from data: ESC, BEL, CR, DEL, a C1 byte, bidi controls.
RAW = ["\x1b", "\x07", "\r", "\x7f", "\x9b", "\u202e", "\u202c", "\u2066", "\u2069"]


def test_safe_escapes_every_control_but_newline_and_tab() -> None:
    unsafe = [chr(c) for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)] if chr(c) not in "\n\t"]
    unsafe += ["\u061c", "\u200e", "\u200f", *map(chr, range(0x202A, 0x202F))]
    unsafe += [*map(chr, range(0x2066, 0x206A)), "\ud800", "\udcff"]
    for ch in unsafe:
        out = safe(f"a{ch}b")
        assert ch not in out
        assert out == f"a\\x{ord(ch):02x}b" if ord(ch) < 0x100 else f"a\\u{ord(ch):04x}b"
    assert safe("one\ntwo\tthree") == "one\ntwo\tthree"
    assert safe("one\ntwo\tthree", one_line=True) == "one two three"
    assert safe("Zoë, 日本, emoji 🙂, [red]x[/red]") == "Zoë, 日本, emoji 🙂, [red]x[/red]"


@pytest.fixture
def evil(tmp_path: Path) -> tuple[CLI, str]:
    """A case whose name, contact, coach, reasons and notes all carry terminal attacks."""
    db = staffed_db(tmp_path / "caseload.db")
    with se_flow.open(db) as flow:
        flow.add_staff(EVIL_COACH, "Kevin", "coach", actor="ada")
        case = flow.refer(
            se_flow.PersonalDetails(name=EVIL_NAME, contact=MARKUP_CONTACT),
            source=f"GP {HYPERLINK}",
            referral={"notes": EVIL_NOTE},
            coach=EVIL_COACH,
            actor="sam",
        ).case
    walk(db, case.id, "customer_engagement", by=EVIL_COACH)
    with se_flow.open(db) as flow:
        flow.record(case.id, "note", text=EVIL_NOTE, actor=EVIL_COACH)
        flow.pause(case.id, reason=EVIL_REASON, review_date=case.opened_at.date(), actor="lee")
    return CLI(db), case.id


def clean(text: str) -> None:
    for raw in RAW:
        assert raw not in text, f"{raw!r} reached the terminal"


@pytest.mark.parametrize(
    "command", [["show", "{case}"], ["history", "{case}"], ["cases"], ["due", "--all"]]
)
def test_views_show_attacks_as_text_and_send_no_escapes(
    evil: tuple[CLI, str], command: list[str]
) -> None:
    run, case_id = evil
    result = run(*[a.replace("{case}", case_id) for a in command])
    assert result.exit_code == 0, result.output
    clean(result.output)
    if command[0] == "show":
        assert "Evil\\x1b[2J\\x1b[31mName" in result.stdout
        # Rich markup and emoji codes print literally.
        assert MARKUP_CONTACT in result.stdout
    if command[0] in ("show", "history"):
        assert "\\x1b]8;;https://evil.example/\\x07click" in result.stdout
        assert "\\x9b31m" in result.stdout
        assert "\\u202eesrever" in result.stdout
    if command[0] == "cases":
        assert f"{EVIL_COACH}  " in result.stdout  # the row is drawn
    if command[0] == "due":
        assert f"  {EVIL_COACH}\n" in result.stdout  # the row is drawn, coach last


def test_json_carries_the_text_exactly_with_c1_and_bidi_escaped(evil: tuple[CLI, str]) -> None:
    run, case_id = evil
    result = run("show", case_id, "--json")
    assert result.exit_code == 0, result.output
    for raw in ("\x9b", "\u202e", "\u2066"):
        assert raw not in result.stdout
    shown = json.loads(result.stdout)
    assert shown["participant"]["details"]["name"] == EVIL_NAME
    assert EVIL_REASON in [e["reason"] for e in shown["history"]]


def test_one_line_messages_and_errors_are_safe(evil: tuple[CLI, str]) -> None:
    run, case_id = evil
    result = run("resume", case_id, "--reason", f"back {CLEAR_SCREEN}\nerror: forged", actor="lee")
    assert result.exit_code == 0, result.output
    clean(result.output)
    result = run("record", case_id, "note", f"te{CLEAR_SCREEN}xt=1", "text=hi")
    assert result.exit_code == 5
    clean(result.stderr)
    assert "te\\x1b[2J\\x1b[31mxt" in result.stderr


def test_a_note_of_the_largest_size_renders_bounded(tmp_path: Path) -> None:
    db = tmp_path / "caseload.db"
    note = "x" * (MAX_TEXT - 10) + " the end"
    with se_flow.open(db, actor="ada") as flow:
        flow.add_staff("ada", "Ada Admin", "admin")
        case = flow.refer("Alex", source="GP").case
        flow.record(case.id, "note", text=note)
    run = CLI(db)
    for command in ("show", "history"):
        result = run(command, case.id, actor="ada")
        assert result.exit_code == 0, result.output
        # Before, the whole note was drawn (750 KB), taking 20 s at 3 MB.
        assert len(result.stdout) < 20_000
        assert "--json shows them all" in result.stdout
    whole = json.loads(run("show", case.id, "--json", actor="ada").stdout)
    assert [r["fields"]["text"] for r in whole["records"] if r["kind"] == "note"] == [note]
