"""Every example runs, as a user would run it, and exits 0."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.py"))


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(example: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(example)], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_there_are_examples() -> None:
    assert EXAMPLES


def test_the_package_docstring_example_runs(tmp_path: Path) -> None:
    # What `help(se_flow)` shows first is what a developer pastes first.
    import textwrap

    import se_flow

    doc = se_flow.__doc__ or ""
    code = textwrap.dedent(doc.split("\n\n")[1])
    assert "se_flow.open(" in code
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "caseload.db").exists()
