"""The external checkpoint file: an append-only record of the log's head, kept away from the
database, so a database rolled back to an older copy is caught by anyone holding it.

One line of JSON per checkpoint (`Checkpoint.to_json`, the head event's seal included on a
sealing database) plus `prev`, the SHA-256 of the line before it (64 zeros for the first): a
line edited, removed or put back in another order breaks the chain of lines, so the file
itself shows it was changed other than by appending. se-flow only ever opens it with
`O_APPEND`, under an exclusive lock, after checking the whole file.

Refused (`CheckpointFileRefused`, exit 5), nothing written: a symbolic link or anything but a
regular file; a file group or others may write (anyone could rewrite it); a file that is not
ours (a line that is not an se-flow checkpoint, or a checkpoint of another database); a file
that was changed other than by appending (its chain of lines broken, a seq going back, a
partial last line).

What it cannot do by itself: stop the machine's owner from rewriting the whole file
consistently. Put it where the database's users cannot write except by appending: on Linux,
`chattr +a FILE` as root (the kernel then refuses anything but appending, even to its owner);
or on another machine's share, or a WORM store. `protection()` says which of these se-flow can
see.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from ._audit import GENESIS, Checkpoint
from .errors import CheckpointFileRefused, InvalidInput

__all__ = ["CheckpointFile"]

_FORMAT = 1
# Linux's FS_IOC_GETFLAGS and FS_APPEND_FL (linux/fs.h): the append-only attribute.
_FS_IOC_GETFLAGS = 0x80086601
_FS_APPEND_FL = 0x20


def _line_hash(line: str) -> str:
    return hashlib.sha256(line.encode("utf-8")).hexdigest()


class CheckpointFile:
    """An external checkpoint file at `path` (created on the first append if missing)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()

    def _refuse(self, why: str) -> CheckpointFileRefused:
        return CheckpointFileRefused(str(self.path), why)

    def _check_file(self, st: os.stat_result) -> None:
        if stat.S_ISLNK(st.st_mode):
            raise self._refuse("it is a symbolic link: name the file itself")
        if not stat.S_ISREG(st.st_mode):
            raise self._refuse("it is not a regular file")
        if stat.S_IMODE(st.st_mode) & 0o022:
            raise self._refuse(
                f"group or others may write it (mode {stat.S_IMODE(st.st_mode):o}), so anyone "
                f"could rewrite it: not an append-only record; `chmod go-w {self.path}`"
            )

    def read(self, store_id: str | None = None) -> list[Checkpoint]:
        """Every checkpoint in the file, checked line by line (and, given `store_id`, each
        one this database's). Raises `CheckpointFileRefused`."""
        try:
            st = self.path.lstat()
        except FileNotFoundError:
            raise self._refuse("it does not exist") from None
        except OSError as exc:
            raise self._refuse(f"it cannot be read ({exc.strerror or exc})") from None
        self._check_file(st)
        try:
            with self.path.open("rb") as f:
                return list(self._parse(f, store_id))
        except OSError as exc:
            raise self._refuse(f"it cannot be read ({exc.strerror or exc})") from None

    def _parse(self, f: IO[bytes], store_id: str | None) -> Iterator[Checkpoint]:
        prev, last_seq = GENESIS, -1
        for number, raw in enumerate(f, start=1):
            if not raw.endswith(b"\n"):
                raise self._refuse(
                    f"line {number} is cut short (no end of line): it was changed other than "
                    "by appending whole lines"
                )
            try:
                line = raw[:-1].decode("utf-8")
                data = json.loads(line)
                if not isinstance(data, dict) or data.get("se_flow_checkpoint") != _FORMAT:
                    raise ValueError("no se_flow_checkpoint mark")
                kept = Checkpoint.from_json(data)
            except (UnicodeDecodeError, ValueError, InvalidInput) as exc:
                raise self._refuse(
                    f"line {number} is not an se-flow checkpoint ({exc}): not a checkpoint "
                    "file of ours"
                ) from None
            if store_id is not None and kept.store_id != store_id:
                raise self._refuse(
                    f"line {number} is a checkpoint of database {kept.store_id}, not of this "
                    f"one ({store_id}): not this database's checkpoint file"
                )
            if data.get("prev") != prev:
                raise self._refuse(
                    f"line {number} does not follow line {number - 1} (its prev hash differs): "
                    "the file was changed other than by appending (a line edited, removed or "
                    "moved)"
                )
            if kept.seq < last_seq:
                raise self._refuse(
                    f"line {number} is of event {kept.seq}, before line {number - 1}'s event "
                    f"{last_seq}: the file was changed other than by appending"
                )
            prev, last_seq = _line_hash(line), kept.seq
            yield kept

    def append(self, kept: Checkpoint) -> int:
        """Append `kept` after checking the whole file; returns its line number. A new file is
        made (mode 644: anyone may read a checkpoint, only its owner append). Raises
        `CheckpointFileRefused`."""
        flags = os.O_WRONLY | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(self.path, flags | os.O_CREAT, 0o644)
        except OSError as exc:
            if self.path.is_symlink():
                raise self._refuse("it is a symbolic link: name the file itself") from None
            raise self._refuse(f"it cannot be opened ({exc.strerror or exc})") from None
        try:
            with contextlib.suppress(ImportError):
                import fcntl

                # Two appenders at once would both chain to the same last line.
                fcntl.flock(fd, fcntl.LOCK_EX)
            self._check_file(os.fstat(fd))
            lines = self.read(kept.store_id)
            if lines and kept.seq < lines[-1].seq:
                raise self._refuse(
                    f"its last checkpoint is of event {lines[-1].seq}, later than this "
                    f"database's head {kept.seq}: the database was rolled back since (check it "
                    f"with `se-flow audit verify --checkpoints {self.path}`)"
                )
            prev = GENESIS
            with self.path.open("rb") as f:
                for raw in f:
                    prev = _line_hash(raw[:-1].decode("utf-8"))
            line = json.dumps(
                {"se_flow_checkpoint": _FORMAT, **kept.to_json(), "prev": prev},
                separators=(",", ":"),
            )
            try:
                os.write(fd, (line + "\n").encode("utf-8"))
                os.fsync(fd)
            except OSError as exc:
                raise self._refuse(f"it cannot be written ({exc.strerror or exc})") from None
            return len(lines) + 1
        finally:
            os.close(fd)

    def protection(self) -> str | None:
        """What keeps the file append-only beyond se-flow's own checks, if se-flow can see it:
        the kernel's append-only attribute (`chattr +a`); None if not set or not known."""
        try:
            import array
            import fcntl
        except ImportError:  # pragma: no cover - not Unix
            return None
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            return None
        try:
            buf = array.array("l", [0])
            fcntl.ioctl(fd, _FS_IOC_GETFLAGS, buf, True)
        except OSError:
            return None
        finally:
            os.close(fd)
        if buf[0] & _FS_APPEND_FL:
            return "the kernel keeps it append-only (chattr +a)"
        return None
