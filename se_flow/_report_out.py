"""Putting a report's file (or an SEQF pack's folder) in place, whole or not at all.

A file is written to a hidden temporary file beside its target, flushed to disk, then linked
into place (a link never replaces a file, so one made meanwhile is not overwritten) or, with
`force`, renamed over the old one, which is kept aside until the caller's audit event commits.
A pack is a folder written the same way. `undo` puts back what was there (used when the audit
event fails), so a refused or failed report leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

from attrs import frozen

from .errors import InvalidInput, StoreError

__all__ = ["PACK_MANIFEST", "Placed", "check_target", "place_file", "place_pack"]

PACK_MANIFEST = "seqf.json"
_FILE_MODE = 0o600
_DIR_MODE = 0o700


@frozen
class Placed:
    """What was written (name to SHA-256) and how to take it back."""

    sha256: Mapping[str, str]
    undo: Callable[[], None]
    keep: Callable[[], None]


def check_target(path: Path, *, force: bool, folder: bool) -> None:
    """Refuse an existing target without `force` (a pack's: a non-empty folder that is not an
    earlier pack), a symbolic link, and a missing parent folder."""
    if path.is_symlink():
        raise InvalidInput(f"--out {path} is a symbolic link: name the file itself", field="out")
    if not path.parent.is_dir():
        raise InvalidInput(f"no folder {path.parent} to write {path.name} into", field="out")
    if folder:
        if path.exists() and not path.is_dir():
            raise InvalidInput(f"{path} exists and is not a folder", field="out")
        if path.is_dir() and any(path.iterdir()):
            if not force:
                raise InvalidInput(
                    f"folder {path} exists and is not empty: use --force to replace an earlier "
                    "SEQF pack",
                    field="out",
                )
            if not (path / PACK_MANIFEST).is_file():
                raise InvalidInput(
                    f"folder {path} holds no earlier SEQF pack ({PACK_MANIFEST}): --force "
                    "replaces only one",
                    field="out",
                )
        return
    if path.exists():
        if not force:
            raise InvalidInput(f"{path} exists: use --force to replace it", field="out")
        if not path.is_file():
            raise InvalidInput(f"{path} exists and is not a file", field="out")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def place_file(path: Path, text: str, *, force: bool) -> Placed:
    data = text.encode("utf-8")
    tmp = Path(tempfile.mktemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    aside: Path | None = None
    try:
        _write(tmp, data)
        if force and path.exists():
            aside = Path(tempfile.mktemp(prefix=f".{path.name}.old-", dir=path.parent))
            os.replace(path, aside)
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise InvalidInput(f"{path} exists: use --force to replace it", field="out") from None
        finally:
            tmp.unlink(missing_ok=True)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if aside is not None and not path.exists():
            os.replace(aside, path)
        if isinstance(exc, OSError) and not isinstance(exc, InvalidInput | StoreError):
            raise StoreError(f"could not write {path}: {exc.strerror or exc}") from exc
        raise

    def undo() -> None:
        path.unlink(missing_ok=True)
        if aside is not None:
            os.replace(aside, path)

    def keep() -> None:
        if aside is not None:
            aside.unlink(missing_ok=True)

    return Placed({path.name: _sha(data)}, undo, keep)


def place_pack(folder: Path, files: Mapping[str, str], *, force: bool) -> Placed:
    """A folder of `files` (name to text), placed in one rename."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    aside: Path | None = None
    shas: dict[str, str] = {}
    try:
        tmp.chmod(_DIR_MODE)
        for name, text in files.items():
            data = text.encode("utf-8")
            _write(tmp / name, data)
            shas[name] = _sha(data)
        if folder.exists():
            aside = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old-", dir=folder.parent))
            aside.rmdir()
            os.replace(folder, aside)
        os.replace(tmp, folder)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if aside is not None and not folder.exists():
            os.replace(aside, folder)
        if isinstance(exc, OSError) and not isinstance(exc, InvalidInput | StoreError):
            raise StoreError(f"could not write {folder}: {exc.strerror or exc}") from exc
        raise

    def undo() -> None:
        shutil.rmtree(folder, ignore_errors=True)
        if aside is not None:
            os.replace(aside, folder)

    def keep() -> None:
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)

    return Placed(shas, undo, keep)
