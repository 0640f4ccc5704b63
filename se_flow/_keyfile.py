"""The sealing key file: the one secret a sealing machine keeps, outside the database.

It holds only the current epoch's key (JSON: `store_id`, `epoch`, `epoch_seconds`, `key` as
hex), mode 600, beside the database by default (`<db>.sealkey`). When a write falls in a later
epoch the key is evolved (`_seal.evolve`) and the file replaced: written to a temporary file in
the same folder, fsynced, renamed over the old one, the folder fsynced, so the old key is gone
once the rename is durable. Writers hold the database's write lock while they do this, so two
processes never evolve it at once.

Refused (`SealKeyUnusable`, exit 10), with nothing written: a missing file; a file group or
others may read or write (anyone who reads it can forge today's seals: refusing beats a warning
nobody reads); one made for another database; one at a later epoch than the event to seal (the
clock went back, or the file came from the future: the key cannot go back).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import stat
from pathlib import Path

from ._seal import SEED_BYTES, evolve, first_key
from .errors import SealKeyUnusable

__all__ = ["SealKeyFile"]


class SealKeyFile:
    """A sealing key file (`se_flow.ports.SealKeys`), read when a write needs it: a
    read-only user never needs it. Re-read only when the file changed on disk (another
    process evolved it). The facade makes one for the store it opens."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self.store_id = ""
        self._seen: tuple[int, int, int] | None = None
        self._epoch = 0
        self._key = b""

    def new_seed(self) -> bytes:
        return secrets.token_bytes(SEED_BYTES)

    def create(self, store_id: str, seed: bytes, epoch: int, epoch_seconds: int) -> None:
        """Write the first key file; never over an existing one (it may be another
        database's only key)."""
        if self.path.exists():
            raise SealKeyUnusable(
                str(self.path), "it already exists: not overwriting a sealing key"
            )
        self.store_id = store_id
        self._write(first_key(seed), epoch, epoch_seconds)

    def discard(self) -> None:
        """Take back a key file `create` made, when what it was made for was not kept."""
        self.path.unlink(missing_ok=True)
        self._seen = None

    def key_for(self, store_id: str, epoch: int, epoch_seconds: int) -> bytes:
        """The key of `epoch`, evolving the file forward to it first if it is behind."""
        self.store_id = store_id
        self._load()
        if epoch < self._epoch:
            raise SealKeyUnusable(
                str(self.path),
                f"it is at epoch {self._epoch} but this event falls in epoch {epoch}: the "
                "clock is behind the key (it went back, or the key file came from the "
                "future), and a sealing key cannot go back",
            )
        if epoch > self._epoch:
            self._write(evolve(self._key, epoch - self._epoch), epoch, epoch_seconds)
        return self._key

    def _load(self) -> None:
        where = str(self.path)
        try:
            # os.stat on the text path: every sealed write does this, pathlib's wrapping not.
            st = os.stat(where)
        except FileNotFoundError:
            raise SealKeyUnusable(
                where,
                "it is missing, and this database seals its events, so writes are refused "
                "(reading and `audit verify` work without it); give its path with --key-file "
                "or se_flow.open(..., seal_key=...)",
            ) from None
        except OSError as exc:
            raise SealKeyUnusable(where, f"it cannot be read ({exc.strerror or exc})") from None
        if stat.S_IMODE(st.st_mode) & 0o077:
            raise SealKeyUnusable(
                where,
                f"others than its owner may read or change it (mode "
                f"{stat.S_IMODE(st.st_mode):o}), and whoever reads it can forge today's seals; "
                f"make it private with `chmod 600 {where}`",
            )
        seen = (st.st_ino, st.st_mtime_ns, st.st_size)
        if seen == self._seen:
            return
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            store_id, epoch, key = data["store_id"], data["epoch"], bytes.fromhex(data["key"])
            if not isinstance(epoch, int) or len(key) != 32:
                raise ValueError("bad epoch or key length")
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
            raise SealKeyUnusable(where, f"it is not a sealing key file ({exc})") from None
        if store_id != self.store_id:
            raise SealKeyUnusable(
                where,
                f"it belongs to database {store_id}, not to this one ({self.store_id})",
            )
        self._seen, self._epoch, self._key = seen, epoch, key

    def _write(self, key: bytes, epoch: int, epoch_seconds: int) -> None:
        text = json.dumps(
            {
                "se_flow_sealing_key": 1,
                "store_id": self.store_id,
                "epoch": epoch,
                "epoch_seconds": epoch_seconds,
                "key": key.hex(),
            }
        )
        folder = self.path.resolve().parent
        temp = folder / f".{self.path.name}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            try:
                os.write(fd, text.encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, self.path)
            dir_fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                temp.unlink()
            raise SealKeyUnusable(
                str(self.path), f"it cannot be written ({exc.strerror or exc})"
            ) from None
        st = self.path.stat()
        self._seen, self._epoch, self._key = (st.st_ino, st.st_mtime_ns, st.st_size), epoch, key
