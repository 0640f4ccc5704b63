"""Forward-secure sealing: each event's hash is sealed with an HMAC under a key that evolves
one-way every epoch, so whoever steals the machine's key today cannot reseal yesterday.

The idea is systemd-journald's Forward Secure Sealing and Bellare–Yee forward integrity,
reduced to what `hmac`/`hashlib` give (no new dependency: an HMAC-SHA256 chain needs nothing
more):

- At `init` a random 32-byte **seed** is made. The **verification key** an auditor keeps is
  the seed plus the three numbers needed to use it: the first sealed event (`start_seq`), the
  first epoch (`start_epoch`) and the epoch length in seconds. As text:
  `<64 hex>/<start_seq>-<start_epoch>-<epoch_seconds>`; to read out, the hex in groups of 4
  (`abcd-ef01-.../1-20605-86400`); both parse. The numbers live in the key so that nothing an
  auditor relies on is taken from the database they are checking.
- Epoch `e` is `floor(unix seconds / epoch_seconds)` of the event's `recorded_at` (a UTC day
  by default: epochs turn at midnight UTC). The key of the first epoch is
  `k = HMAC-SHA256(seed, "se-flow seal key 0")` (the seed itself is never on the machine
  after `init`), and `k_{e+1} = HMAC-SHA256(k_e, "evolve")`: knowing `k_e` gives every later
  key and no earlier one.
- An event's seal is `HMAC-SHA256(k_epoch, "<hash>|<seq>|<epoch>")`, kept in its own table
  (`seals`), not in the hashed row: the SHA-256 chain, its readers and exports are unchanged.
- A `check` value, `HMAC-SHA256(seed, "se-flow verification key check|<store id>")`, kept in
  the database, tells a wrong key (or another database's) from an altered first event.

Where things live: the seals in the store's `seals` table, written in the event's own
transaction; the settings (`Sealing`) in the store's `meta`, not as an event in the log (the
auditor takes them from their key, never from the database; an event would need its own kind
through the engine and the replay). The epoch of a seal is the epoch of its event's
`recorded_at`: a writer whose clock is behind the key file's epoch is refused rather than
sealing under a later epoch (the key cannot go back). Every store seals the same way
(`begin_sealing`, `seal_event`).

`SealCheck` is what `verify --key` runs over the events the chain walk accepted: every event
from `start_seq` on must have a seal, in nondecreasing epochs, each epoch the one its
`recorded_at` falls in, each MAC right; a seal for an event the log no longer has means the
tail was cut. What it cannot prove: events sealed in the epoch whose key was stolen, and later
ones (the thief holds those keys); and a cut tail whose seals were cut too (a later checkpoint
catches that). Pure: no I/O and no clock.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from attrs import frozen

from .errors import InvalidInput

__all__ = [
    "DAY",
    "MAX_EPOCH_SECONDS",
    "MIN_EPOCH_SECONDS",
    "SEED_BYTES",
    "SealCheck",
    "SealRow",
    "Sealing",
    "VerificationKey",
    "begin_sealing",
    "check_epoch_seconds",
    "epoch_of",
    "evolve",
    "first_key",
    "seal_event",
    "seal_mac",
    "seal_verifies",
]

SEED_BYTES = 32
DAY = 86_400
# An epoch shorter than a minute would make the key evolve millions of times across a gap; one
# longer than a year would leave a stolen key good for too long.
MIN_EPOCH_SECONDS = 60
MAX_EPOCH_SECONDS = 366 * DAY

_UNIX = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def check_epoch_seconds(seconds: int) -> int:
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        raise InvalidInput(f"seal epoch: expected whole seconds, got {seconds!r}")
    if not MIN_EPOCH_SECONDS <= seconds <= MAX_EPOCH_SECONDS:
        raise InvalidInput(
            f"seal epoch: {seconds} seconds is outside {MIN_EPOCH_SECONDS}..{MAX_EPOCH_SECONDS} "
            "(a minute to a year; the default is a day, 86400)"
        )
    return seconds


def epoch_of(at: dt.datetime, epoch_seconds: int) -> int:
    """The epoch a moment falls in (whole epochs since 1970-01-01 UTC). Whole seconds in
    integers, not `timestamp()`'s float, which can round a moment just before a boundary onto
    it."""
    if at.tzinfo is None:
        raise InvalidInput(f"{at.isoformat()} has no time zone")
    since = at - _UNIX
    return (since.days * DAY + since.seconds) // epoch_seconds


def epoch_start(epoch: int, epoch_seconds: int) -> dt.datetime:
    return _UNIX + dt.timedelta(seconds=epoch * epoch_seconds)


def first_key(seed: bytes) -> bytes:
    """The sealing key of the first epoch (what the key file starts with)."""
    return hmac.new(seed, b"se-flow seal key 0", hashlib.sha256).digest()


def evolve(key: bytes, steps: int = 1) -> bytes:
    """The key `steps` epochs later: one-way, so an old key cannot be had back from it."""
    for _ in range(steps):
        key = hmac.new(key, b"evolve", hashlib.sha256).digest()
    return key


def seal_mac(key: bytes, event_hash: str, seq: int, epoch: int) -> str:
    # hmac.digest: the one-shot C path, a few times faster than hmac.new(...).hexdigest()
    # on every sealed write, and the same MAC.
    return hmac.digest(key, f"{event_hash}|{seq}|{epoch}".encode(), "sha256").hex()


def _check_value(seed: bytes, store_id: str) -> str:
    message = f"se-flow verification key check|{store_id}".encode()
    return hmac.new(seed, message, hashlib.sha256).hexdigest()


_KEY_TEXT = re.compile(r"([0-9a-f]{64})/(\d+)-(\d+)-(\d+)")


@frozen(repr=False)
class VerificationKey:
    """What the auditor keeps: the seed and where sealing began. Its repr hides the seed."""

    seed: bytes
    start_seq: int
    start_epoch: int
    epoch_seconds: int

    def __repr__(self) -> str:
        return f"VerificationKey(start_seq={self.start_seq}, start_epoch={self.start_epoch}, …)"

    @property
    def text(self) -> str:
        return f"{self.seed.hex()}/{self.start_seq}-{self.start_epoch}-{self.epoch_seconds}"

    @property
    def spoken(self) -> str:
        """The same key in groups of 4, to read out or copy by hand."""
        hexed = self.seed.hex()
        groups = "-".join(hexed[i : i + 4] for i in range(0, len(hexed), 4))
        return f"{groups}/{self.start_seq}-{self.start_epoch}-{self.epoch_seconds}"

    @classmethod
    def parse(cls, text: str) -> VerificationKey:
        """A key as `text` or `spoken` gives it (spaces and the dashes between groups
        ignored). Raises `InvalidInput`."""
        seed_part, slash, rest = text.strip().lower().partition("/")
        seed_hex = re.sub(r"[\s-]", "", seed_part)
        found = _KEY_TEXT.fullmatch(f"{seed_hex}/{rest.strip()}") if slash else None
        if found is None:
            raise InvalidInput(
                "verification key: expected 64 hex digits (groups of 4 may be split by dashes), "
                "then /START_SEQ-START_EPOCH-EPOCH_SECONDS, as `se-flow init` printed it"
            )
        start_seq, start_epoch, seconds = (int(found.group(i)) for i in (2, 3, 4))
        if start_seq < 1:
            raise InvalidInput("verification key: the first sealed event is 1 or later")
        try:
            check_epoch_seconds(seconds)
        except InvalidInput as exc:
            raise InvalidInput(f"verification key: {exc.message}") from None
        return cls(bytes.fromhex(found.group(1)), start_seq, start_epoch, seconds)

    def check_value(self, store_id: str) -> str:
        return _check_value(self.seed, store_id)


@frozen
class Sealing:
    """What a database keeps about its own sealing (`meta`): not trusted by an auditor, who
    has the same numbers in their key; it tells a writer to seal and a reader that seals
    exist."""

    start_seq: int
    start_epoch: int
    epoch_seconds: int
    check: str

    @classmethod
    def begin(cls, key: VerificationKey, store_id: str) -> Sealing:
        return cls(key.start_seq, key.start_epoch, key.epoch_seconds, key.check_value(store_id))

    def to_json(self) -> dict[str, Any]:
        return {
            "start_seq": self.start_seq,
            "start_epoch": self.start_epoch,
            "epoch_seconds": self.epoch_seconds,
            "check": self.check,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Sealing:
        return cls(
            int(data["start_seq"]),
            int(data["start_epoch"]),
            int(data["epoch_seconds"]),
            str(data["check"]),
        )

    def describe(self) -> str:
        length = "a UTC day" if self.epoch_seconds == DAY else f"{self.epoch_seconds} s"
        return f"this database seals its events from event {self.start_seq} (epoch: {length})"


@frozen
class SealRow:
    seq: int
    epoch: int
    mac: str


def begin_sealing(
    seed: bytes, head_seq: int, now: dt.datetime, epoch_seconds: int, store_id: str
) -> tuple[VerificationKey, Sealing]:
    """Sealing from the event after `head_seq` on, in the epoch of `now`: the verification key
    (for the auditor) and the settings the store keeps. Every store begins with this."""
    check_epoch_seconds(epoch_seconds)
    key = VerificationKey(seed, head_seq + 1, epoch_of(now, epoch_seconds), epoch_seconds)
    return key, Sealing.begin(key, store_id)


def seal_event(
    sealing: Sealing,
    key_for: Callable[[int, int], bytes],
    seq: int,
    event_hash: str,
    recorded_at: dt.datetime,
) -> SealRow:
    """The seal of one event, under the key of its epoch (`key_for(epoch, epoch_seconds)`:
    the store's `SealKeys`, which evolves and erases as the epoch moves on). Every store seals
    with this."""
    epoch = epoch_of(recorded_at, sealing.epoch_seconds)
    key = key_for(epoch, sealing.epoch_seconds)
    return SealRow(seq, epoch, seal_mac(key, event_hash, seq, epoch))


def seal_verifies(key: VerificationKey, seal: SealRow, event_hash: str) -> bool:
    """Whether `seal` is the seal the key's holder would have made for this event: for a
    checkpoint, which carries its head's seal, checked without the database."""
    if seal.epoch < key.start_epoch or seal.seq < key.start_seq:
        return False
    k = evolve(first_key(key.seed), seal.epoch - key.start_epoch)
    return hmac.compare_digest(seal_mac(k, event_hash, seal.seq, seal.epoch), seal.mac)


def _tail(of: VerificationKey | Sealing) -> str:
    """What follows the slash in a key's text: where sealing began, and the epoch's length."""
    return f"{of.start_seq}-{of.start_epoch}-{of.epoch_seconds}"


WRONG_KEY = "this key does not verify this database's seals (a wrong key, or another database's)"


class SealCheck:
    """The seals checked against the events, in seq order: `feed` each event the chain walk
    accepted, then `finish`. Keys are derived as the epochs advance (one HMAC per epoch)."""

    def __init__(
        self,
        key: VerificationKey,
        seals: Iterable[SealRow],
        *,
        store_id: str,
        stored: Sealing | None,
    ) -> None:
        self.key = key
        self._seals: Iterator[SealRow] = iter(seals)
        self._next: SealRow | None = next(self._seals, None)
        self._epoch = key.start_epoch
        self._epoch_key = first_key(key.seed)
        self.checked = 0
        self.first_epoch: int | None = None
        self.last_epoch: int | None = None
        self.bad_seq: int | None = None
        self.bad_epoch: int | None = None
        self.problem: str | None = None
        self._key_checked = stored is not None
        if stored is not None and not hmac.compare_digest(stored.check, key.check_value(store_id)):
            self.problem = WRONG_KEY
        elif stored is not None and _tail(stored) != _tail(key):
            # The seed is this database's: only the part after the slash differs, which a
            # typo does far more often than a forger (whose seals would fail anyway). Both
            # readings are named; the seals are not checked against a tail the key disowns.
            self.problem = (
                f"this key is this database's, but its /{_tail(key)} is not where the "
                f"database's sealing began (/{_tail(stored)} by its settings): check the key "
                "against what `se-flow init` printed; if it matches, the sealing settings were "
                "rewritten behind se-flow's back"
            )

    def _fail(self, seq: int | None, epoch: int | None, why: str) -> str:
        self.bad_seq, self.bad_epoch, self.problem = seq, epoch, why
        return why

    def _key(self, epoch: int) -> bytes:
        if epoch > self._epoch:
            self._epoch_key = evolve(self._epoch_key, epoch - self._epoch)
            self._epoch = epoch
        return self._epoch_key

    def feed(self, seq: int, event_hash: str, recorded_at: str) -> str | None:
        """Check the seal of the event at `seq` (hash and recorded_at as the row keeps
        them); the problem in words if it does not hold."""
        if self.problem is not None:
            return self.problem
        while self._next is not None and self._next.seq < seq:
            # The chain walk accepted every seq up to here, so this seal is from before
            # sealing began (by the key): it cannot be told from a forgery.
            stray = self._next
            return self._fail(
                stray.seq,
                stray.epoch,
                f"a seal for event {stray.seq}, before sealing began at event "
                f"{self.key.start_seq}: the seals table was written behind se-flow's back",
            )
        if seq < self.key.start_seq:
            return None
        found = self._next
        if found is None or found.seq != seq:
            return self._fail(
                seq,
                None,
                f"event {seq} has no seal: it was written without the sealing key (inserted "
                "behind se-flow's back) or its seal was removed",
            )
        self._next = next(self._seals, None)
        epoch = found.epoch
        try:
            recorded = epoch_of(dt.datetime.fromisoformat(recorded_at), self.key.epoch_seconds)
        except (TypeError, ValueError):
            recorded = None
        if epoch < self._epoch or epoch < self.key.start_epoch:
            return self._fail(
                seq,
                epoch,
                f"event {seq} is sealed in epoch {epoch}, before an earlier event's epoch "
                f"{self._epoch}: the events were reordered, or the seal was forged",
            )
        mac = seal_mac(self._key(epoch), event_hash, seq, epoch)
        if not hmac.compare_digest(mac, found.mac):
            if self.checked == 0 and not self._key_checked:
                why = f"the first sealed event's seal does not match: {WRONG_KEY}, or event "
                why += f"{seq} was altered"
            else:
                when = epoch_start(epoch, self.key.epoch_seconds).isoformat()
                why = (
                    f"event {seq}'s seal (epoch {epoch}, from {when}) does not match: the event "
                    "was altered, inserted, removed or moved after it was sealed"
                )
            return self._fail(seq, epoch, why)
        if recorded != epoch:
            return self._fail(
                seq,
                epoch,
                f"event {seq} was sealed in epoch {epoch} but says it was recorded in epoch "
                f"{recorded}: its time was rewritten, or it was sealed later with a stolen key",
            )
        self.checked += 1
        if self.first_epoch is None:
            self.first_epoch = epoch
        self.last_epoch = epoch
        return None

    def finish(self, head_seq: int) -> str | None:
        """After the last event: a seal left over is for an event the log no longer has."""
        if self.problem is not None:
            return self.problem
        if self._next is not None:
            extra = self._next
            return self._fail(
                extra.seq,
                extra.epoch,
                f"event {extra.seq} was sealed but the log ends at event {head_seq}: the tail "
                "of the log was cut off",
            )
        return None

    def summary(self) -> str:
        if not self.checked:
            return "seals checked with the verification key: no sealed events yet"
        span = (
            f"epoch {self.first_epoch}"
            if self.first_epoch == self.last_epoch
            else f"epochs {self.first_epoch} to {self.last_epoch}"
        )
        return (
            f"seals verified with the verification key: {self.checked} events sealed in {span}"
            " were neither altered, removed, inserted nor reordered"
        )
