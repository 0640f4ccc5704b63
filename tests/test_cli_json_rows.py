"""`dumps_rows`, the due list's fast JSON, writes exactly what `dumps` writes."""

from __future__ import annotations

from typing import Any

import hypothesis.strategies as st
from hypothesis import given

from se_flow._cli_text import dumps, dumps_rows

_plain = st.one_of(
    st.text(),
    st.none(),
    st.booleans(),
    st.integers(),
    st.lists(st.text(), max_size=3),
    st.lists(st.text(), max_size=3).map(tuple),
)
_any = st.one_of(_plain, st.floats(allow_nan=False), st.dictionaries(st.text(), st.integers()))


@given(st.lists(st.dictionaries(st.text(), _plain, max_size=6), max_size=5))
def test_plain_rows_are_written_as_dumps_writes_them(rows: list[dict[str, Any]]) -> None:
    assert dumps_rows(rows) == dumps(rows)


@given(st.lists(st.dictionaries(st.text(), _any, max_size=4), max_size=4))
def test_any_other_value_takes_the_general_path(rows: list[dict[str, Any]]) -> None:
    assert dumps_rows(rows) == dumps(rows)


def test_text_a_terminal_acts_on_is_escaped() -> None:
    text = dumps_rows([{"title": "a\u202eb\x85", "commands": ["se-flow record C-1 \u2066x"]}])
    assert "\u202e" not in text and "\\u202e" in text and "\\u2066" in text
    assert text == dumps([{"title": "a\u202eb\x85", "commands": ["se-flow record C-1 \u2066x"]}])
