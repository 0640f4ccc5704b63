"""A database URL is never shown with its password: `init`'s line, `verify-export`'s, error
messages (including the driver's own words, which may quote the URL)."""

from __future__ import annotations

import pytest

from se_flow._urls import shown_database, without_password


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ("postgresql://ada:s3cret@db.example/se", "postgresql://ada:***@db.example/se"),
        ("postgres://ada:s3cret@db.example:5432/se", "postgres://ada:***@db.example:5432/se"),
        ("postgresql://:s3cret@db.example/se", "postgresql://:***@db.example/se"),
        ("postgresql://ada:p%40ss@[::1/se", "postgresql://ada:***@[::1/se"),  # does not parse
        ("postgresql://ada@h/se?password=s3cret&sslmode=require",
         "postgresql://ada@h/se?password=***&sslmode=require"),
        ("postgresql://ada@db.example:5432/se", "postgresql://ada@db.example:5432/se"),
        ("postgresql://db.example:5432/se", "postgresql://db.example:5432/se"),
        ("/home/sam/caseload.db", "/home/sam/caseload.db"),
    ],
)  # fmt: skip
def test_a_database_is_shown_without_its_password(given: str, shown: str) -> None:
    assert shown_database(given) == shown


def test_text_quoting_a_url_or_its_password_is_masked() -> None:
    url = "postgresql://ada:p%40ssword@[::1/se"
    said = f'end of string reached in URI: "{url}"; password p@ssword'
    masked = without_password(said, url)
    assert "p%40ssword" not in masked and "p@ssword" not in masked
    assert masked == 'end of string reached in URI: "postgresql://ada:***@[::1/se"; password ***'
    # A password too short to hunt for in other words is still masked in the URL itself.
    short = "postgresql://ada:pw@h/se"
    assert without_password(f"cannot use {short}: pw", short) == (
        "cannot use postgresql://ada:***@h/se: pw"
    )
    assert without_password("nothing to hide", "/tmp/x.db") == "nothing to hide"
