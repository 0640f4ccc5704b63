"""What a command loads at start-up, checked by name rather than by time (no test asserts a
time): the everyday commands (`cases`, `due`, `show`, `next`) never import what only other
commands need (reports, exports, outcomes, PostgreSQL, the memory store, the stage-file
shapes and cattrs); and the shipped workflow, kept built in the user's cache folder, is read
back only while it is exactly what its files and se-flow's code build."""

from __future__ import annotations

import datetime as dt
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

import se_flow
from se_flow._loader import _load_workflow, _WorkflowCache

# Loaded by some command, never by the everyday ones: each of these costing start-up time.
ONLY_FOR_OTHER_COMMANDS = (
    "se_flow._report",
    "se_flow._report_render",
    "se_flow._report_out",
    "se_flow._export",
    "se_flow._verify_export",
    "se_flow._checkpoint_file",
    "se_flow._postgres",
    "se_flow._memory",
    "se_flow._outcomes",
    "se_flow._cli_demo",
    "se_flow._schema",
    "se_flow.contract",
    "cattrs",
    "psycopg",
    "sqlite_utils",
    "pydantic",
    "hypothesis",
)

# Runs the CLI in a fresh interpreter, then writes the names of the modules it loaded.
PROBE = """
import json, sys
out, sys.argv = sys.argv[1], ["se-flow", *sys.argv[2:]]
from se_flow.cli import main
try:
    code = main()
except SystemExit as exc:
    code = exc.code
with open(out, "w", encoding="utf-8") as f:
    json.dump(sorted(sys.modules), f)
sys.exit(code)
"""


def _run(args: list[str], tmp: Path, db: Path) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SE_FLOW_")}
    env.update({"COLUMNS": "100", "XDG_CACHE_HOME": str(tmp / "cache")})
    out = tmp / "modules.json"
    out.unlink(missing_ok=True)
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(out), "--db", str(db), "--as", "sam", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done, set(json.loads(out.read_text(encoding="utf-8")))


def _caseload(path: Path) -> Path:
    with se_flow.open(path, actor="ada") as flow:
        flow.add_staff("ada", "Ada Admin", "admin")
        flow.add_staff("sam", "Sam Coach", "coach")
        for name in ("Alex Doe", "Bo Roe"):
            case = flow.refer(name, source="GP", coach="sam", actor="sam").case
        flow.advance(case.id, "engage", actor="sam")
    return path


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return _caseload(tmp_path / "caseload.db")


@pytest.fixture(scope="module")
def warm(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A caseload and a cache folder the first start of all has kept the workflow in."""
    folder = tmp_path_factory.mktemp("warm")
    db = _caseload(folder / "caseload.db")
    _run(["cases"], folder, db)
    return folder, db


@pytest.mark.parametrize(
    "args",
    [
        ["cases"],
        ["cases", "--help"],
        ["cases", "--json"],
        ["due"],
        ["show", "C-2"],
        ["next", "C-2"],
    ],
    ids=" ".join,
)
def test_the_everyday_commands_load_only_what_they_use(
    args: list[str], warm: tuple[Path, Path]
) -> None:
    done, loaded = _run(args, *warm)
    assert done.stdout.strip()
    assert "se_flow._sqlite" in loaded and "se_flow._workflow" in loaded
    assert sorted(loaded.intersection(ONLY_FOR_OTHER_COMMANDS)) == []


def test_importing_the_package_loads_no_store_and_no_workflow() -> None:
    probe = "import json, sys, se_flow; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    loaded = set(json.loads(done.stdout))
    # Each public name loads its module when first used (`se_flow.__getattr__`).
    later = {"se_flow._api", "se_flow._sqlite", "se_flow._loader", "se_flow._workflow"}
    assert sorted(loaded & {*later, *ONLY_FOR_OTHER_COMMANDS}) == []
    assert "se_flow.errors" in loaded


def test_the_first_start_builds_the_workflow_and_the_next_reads_it(
    tmp_path: Path, db: Path
) -> None:
    _, first = _run(["cases"], tmp_path, db)
    assert "cattrs" in first  # built from the stage files
    kept = list((tmp_path / "cache" / "se-flow").glob("workflow-*.pickle"))
    assert len(kept) == 1 and kept[0].stat().st_mode & 0o777 == 0o600
    done, second = _run(["cases"], tmp_path, db)
    assert "cattrs" not in second and "se_flow._schema" not in second
    assert "Alex Doe" in done.stdout  # the coach's own caseload, names and all


def _stages(tmp_path: Path) -> Path:
    folder = tmp_path / "stages"
    shutil.copytree(se_flow.default_stages_dir(), folder, ignore=shutil.ignore_patterns("*.py*"))
    return folder


def _same(a: se_flow.Workflow, b: se_flow.Workflow) -> None:
    # Every field of the workflow (Workflow itself compares by identity), and its machine.
    for field in attrs.fields(type(a)):
        if field.name not in ("machine", "calendar"):
            assert getattr(a, field.name) == getattr(b, field.name), field.name
    # The calendar compares by identity too (it keeps an index of working days it grows).
    assert (a.calendar is None) == (b.calendar is None)
    if a.calendar is not None and b.calendar is not None:
        for name in ("id", "title", "years", "closed"):
            assert getattr(a.calendar, name) == getattr(b.calendar, name), name
        day = dt.date(2026, 12, 24)
        assert a.calendar.add(day, 3) == b.calendar.add(day, 3)
    for state in a.states:
        assert a.machine.get_triggers(state) == b.machine.get_triggers(state)
        assert a.available(state, None) == b.available(state, None)
    assert a.describe() == b.describe()


def test_the_kept_workflow_is_the_one_its_files_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    folder = _stages(tmp_path)
    cache = _WorkflowCache(folder)
    built = cache.load()
    assert cache._read(cache._file(), cache._key()) is not None, "not kept"
    read = cache.load()
    assert read is not built
    _same(read, _load_workflow(folder))
    # The shipped workflow too, through the public call.
    _same(se_flow.load_workflow(), _load_workflow(se_flow.default_stages_dir()))


def test_a_changed_stage_file_is_built_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    folder = _stages(tmp_path)
    before = _WorkflowCache(folder).load()
    stage = folder / "01_customer_engagement.toml"
    text = stage.read_text(encoding="utf-8")
    title = before.states["customer_engagement"].title
    assert f'"{title}"' in text
    stage.write_text(text.replace(f'"{title}"', '"Getting to know you"', 1), encoding="utf-8")
    after = _WorkflowCache(folder).load()
    assert after.states["customer_engagement"].title == "Getting to know you"
    assert after.hash != before.hash
    _same(after, _load_workflow(folder))
    # And a fault in a file is reported as before, never hidden by what was kept.
    stage.write_text(text + "\n[[transitions]]\n", encoding="utf-8")
    with pytest.raises(se_flow.WorkflowInvalid):
        _WorkflowCache(folder).load()


class _Planted:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("touch planted",))


def test_a_file_that_is_not_a_workflow_is_never_run_and_is_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    folder = _stages(tmp_path)
    cache = _WorkflowCache(folder)
    cache.load()
    file, key = cache._file(), cache._key()
    file.write_bytes(key + pickle.dumps(_Planted()))
    _same(cache.load(), _load_workflow(folder))
    assert not (tmp_path / "planted").exists()
    # Rebuilt and kept again: the planted file is gone.
    assert cache._read(file, key) is not None


def test_a_file_others_may_write_is_not_trusted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    folder = _stages(tmp_path)
    cache = _WorkflowCache(folder)
    cache.load()
    file, key = cache._file(), cache._key()
    assert cache._read(file, key) is not None
    file.chmod(0o666)
    assert cache._read(file, key) is None
    file.chmod(0o600)
    file.write_bytes(file.read_bytes()[:-10])  # torn
    assert cache._read(file, key) is None


def test_a_cache_folder_that_cannot_be_made_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked = tmp_path / "a file"
    blocked.write_text("not a folder", encoding="utf-8")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    folder = _stages(tmp_path)
    _same(_WorkflowCache(folder).load(), _load_workflow(folder))
    assert blocked.read_text(encoding="utf-8") == "not a folder"


def test_a_write_prints_its_lines_without_loading_the_views(db: Path, tmp_path: Path) -> None:
    # A write says a few lines, folded to the terminal: rich and the views (tens of ms at
    # start-up) are for screens, not for "C-1: engaged ... now at ...".
    done, loaded = _run(["advance", "C-1", "engage"], tmp_path, db)
    assert "now at" in done.stdout
    assert "rich.console" not in loaded and "se_flow._cli_render" not in loaded
