"""The signed, hash-chained privacy ledger: one JSON Lines file per institution and dataset.

Each line is one entry, written in the canonical JSON encoding (`canonical_json`) and
signed by the institution's Ed25519 key over the canonical encoding of every other field
(context `LEDGER_SIGNATURE_CONTEXT`). Each entry's ``prev_hash`` is the SHA-256 of the
previous line's bytes, so a verifier holding only the file and the institution's public
key detects any changed byte and any deleted, inserted, reordered or re-signed entry.

Notes
-----
Threat model: the ledger file lives on storage that others (the coordinator, an
operator) may be able to write. The institution's signing key does not leave its node.
A verifier trusts only the public key from the consortium manifest. Truncating the
ledger *at an entry boundary* is not detectable from the file alone; the auditor
compares the entry count and last hash with the server's run record.
"""

from __future__ import annotations

import base64
import binascii
import copy
import fcntl
import functools
import hashlib
import json
import math
import os
import re
import reprlib
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from fedrisk.privacy.mechanism import PoissonGaussian
from fedrisk.secure.signing import SignatureInvalid, sign, verify_signature

LEDGER_VERSION = 1
LEDGER_SIGNATURE_CONTEXT = b"fedrisk/ledger-entry/v1"
GENESIS_HASH = "00" * 32
ACCOUNTANTS = ("rdp", "prv")
INSTITUTION_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_TEMP_SUFFIX = ".tmp"
_FIELDS: dict[str, type] = {
    "version": int,
    "seq": int,
    "prev_hash": str,
    "time": str,
    "run_id": str,
    "round": int,
    "institution": str,
    "dataset_fingerprint": str,
    "mechanism": dict,
    "delta": float,
    "accountant": str,
    "epsilon": float,
    "budget": dict,
    "update_sha256": str,
    "signature": str,
}


def canonical_json(obj: object) -> bytes:
    """Encode ``obj`` as the ledger's canonical JSON (sorted keys, no spaces, ASCII).

    Raises
    ------
    ValueError
        If ``obj`` contains a NaN or infinity.
    TypeError
        If ``obj`` contains a value JSON cannot represent.
    """
    text = json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )
    return text.encode("ascii")


class LedgerTampered(Exception):
    """A ledger that does not verify, naming the first bad entry.

    Parameters
    ----------
    path : Path
        The ledger file.
    line : int
        1-based line number of the first bad entry.
    seq : int | None
        The entry's position (its expected ``seq``), or ``None`` if the line is not an
        entry at all (not JSON, torn).
    reason : str
        What is wrong, as a sentence fragment.
    """

    def __init__(self, path: Path, *, line: int, seq: int | None, reason: str) -> None:
        self.path = Path(path)
        self.line = line
        self.seq = seq
        self.reason = reason
        where = f"line {line}" if seq is None else f"entry {seq} (line {line})"
        super().__init__(f"ledger {self.path.name}, {where}: {reason}")

    def __reduce__(self) -> tuple[object, ...]:
        rebuild = functools.partial(
            type(self), self.path, line=self.line, seq=self.seq, reason=self.reason
        )
        return (rebuild, ())


class LedgerConflict(RuntimeError):
    """The ledger file changed on disk after a `LedgerWriter` read it (another writer?)."""


@dataclass(frozen=True)
class LedgerEntry:
    """One verified ledger entry; field names are the published JSON contract.

    Attributes
    ----------
    version : int
        `LEDGER_VERSION`.
    seq : int
        0-based position in the ledger.
    prev_hash : str
        SHA-256 hex of the previous entry's line (without its newline); `GENESIS_HASH`
        for entry 0.
    time : str
        UTC ISO-8601 time of the entry.
    run_id, round : str, int
        The run and round that released the update.
    institution, dataset_fingerprint : str
        Whose ledger, for which dataset.
    mechanism : dict[str, object]
        ``PoissonGaussian.to_record()`` of the release (see `mechanism_obj`).
    delta, accountant, epsilon : float, str, float
        Cumulative ε over the whole ledger after this entry, at δ, by ``"rdp"`` or ``"prv"``.
    budget : dict[str, float]
        The institution's ``{"epsilon": …, "delta": …}`` budget.
    update_sha256 : str
        SHA-256 hex of the update sent to the server.
    signature : str
        Base64 Ed25519 signature over the canonical JSON of every other field.
    extras : dict[str, object]
        Further signed top-level fields, e.g. ``accountant_library``.
    """

    version: int
    seq: int
    prev_hash: str
    time: str
    run_id: str
    round: int
    institution: str
    dataset_fingerprint: str
    mechanism: dict[str, object]
    delta: float
    accountant: str
    epsilon: float
    budget: dict[str, float]
    update_sha256: str
    signature: str
    extras: dict[str, object] = field(default_factory=dict)

    @property
    def mechanism_obj(self) -> PoissonGaussian:
        """The released mechanism, decoded."""
        return PoissonGaussian.from_record(self.mechanism)

    def to_json(self) -> dict[str, object]:
        """Return the entry as its JSON object (extras as top-level fields)."""
        obj: dict[str, object] = {name: getattr(self, name) for name in _FIELDS}
        obj.update(self.extras)
        return copy.deepcopy(obj)

    def line_hash(self) -> str:
        """Return the SHA-256 hex of this entry's line: the next entry's ``prev_hash``."""
        return hashlib.sha256(canonical_json(self.to_json())).hexdigest()


def ledger_path(directory: Path, *, institution: str, dataset_fingerprint: str) -> Path:
    """Return the ledger file of ``institution`` for one dataset inside ``directory``.

    Raises
    ------
    ValueError
        If ``institution`` or ``dataset_fingerprint`` is malformed.
    """
    _check_identity(institution, dataset_fingerprint)
    return Path(directory) / f"ledger-{institution}-{dataset_fingerprint[:16]}.jsonl"


def history(entries: Sequence[LedgerEntry]) -> list[PoissonGaussian]:
    """Return the mechanisms released, in ledger order (the accountant's history)."""
    return [entry.mechanism_obj for entry in entries]


def read_ledger(
    path: Path,
    public_key: Ed25519PublicKey,
    *,
    institution: str | None = None,
    dataset_fingerprint: str | None = None,
) -> list[LedgerEntry]:
    """Read and fully verify a ledger; a missing file is an empty ledger.

    Parameters
    ----------
    path : Path
        The ledger file.
    public_key : Ed25519PublicKey
        The institution's key from the consortium manifest.
    institution, dataset_fingerprint : str | None (default: None)
        When given, every entry must carry these; otherwise every entry must carry the
        first entry's.

    Returns
    -------
    list[LedgerEntry]
        The entries, in order.

    Raises
    ------
    LedgerTampered
        Naming the first entry that is torn, not canonical JSON, malformed, of an unknown
        version, wrongly signed, out of sequence, off the hash chain, for another
        institution or dataset, or that lowers ε or goes back a round within its run.
    TypeError
        If ``public_key`` is not an Ed25519 public key.
    """
    path = Path(path)
    return _verify(path, _read_bytes(path), public_key, institution, dataset_fingerprint).entries


class LedgerWriter:
    """Appends signed entries to one institution's ledger for one dataset.

    Every append rewrites the whole file to a temporary file in the same directory,
    fsyncs it, renames it over the ledger and fsyncs the directory, all under an
    exclusive ``flock`` on the directory (POSIX): a crash at any point leaves either the
    old or the new complete ledger, never a torn one.

    Parameters
    ----------
    path : Path
        The ledger file (see `ledger_path`); created on the first append.
    signing_key : Ed25519PrivateKey
        The institution's key; the existing ledger is verified with its public key.
    institution : str
        The institution's id in the manifest.
    dataset_fingerprint : str
        SHA-256 hex of the training table (`fedrisk.data.fingerprint`).

    Raises
    ------
    LedgerTampered
        If the existing ledger does not verify; nothing is ever appended to it.
    TypeError
        If ``signing_key`` is not an Ed25519 private key.
    ValueError
        If ``institution`` or ``dataset_fingerprint`` is malformed.
    """

    def __init__(
        self,
        path: Path,
        *,
        signing_key: Ed25519PrivateKey,
        institution: str,
        dataset_fingerprint: str,
    ) -> None:
        if not isinstance(signing_key, Ed25519PrivateKey):
            raise TypeError(
                f"`signing_key` must be an Ed25519PrivateKey; got {type(signing_key).__name__}"
            )
        _check_identity(institution, dataset_fingerprint)
        self._path = Path(path)
        self._key = signing_key
        self._institution = institution
        self._fingerprint = dataset_fingerprint
        self._raw = _read_bytes(self._path)
        self._chain = self._verify(self._raw)

    @property
    def path(self) -> Path:
        """The ledger file."""
        return self._path

    @property
    def entries(self) -> tuple[LedgerEntry, ...]:
        """The verified entries, oldest first."""
        return tuple(self._chain.entries)

    def append(
        self,
        *,
        run_id: str,
        round: int,
        mechanism: PoissonGaussian,
        delta: float,
        accountant: str,
        epsilon: float,
        budget_epsilon: float,
        budget_delta: float,
        update_sha256: str,
        extras: Mapping[str, object] | None = None,
        now: datetime | None = None,
    ) -> LedgerEntry:
        """Sign one entry and append it durably.

        Parameters
        ----------
        run_id : str
            The run that released the update.
        round : int
            The round within the run (non-decreasing within a run).
        mechanism : PoissonGaussian
            What the round released.
        delta : float
            The δ at which ``epsilon`` is stated.
        accountant : str
            ``"rdp"`` or ``"prv"`` (a ``str`` Enum works too).
        epsilon : float
            Cumulative ε over the whole ledger after this entry (non-decreasing).
        budget_epsilon, budget_delta : float
            The institution's budget for this dataset.
        update_sha256 : str
            SHA-256 hex of the update sent to the server.
        extras : Mapping[str, object] | None (default: None)
            Further JSON fields (e.g. ``accountant_library``); signed like the rest.
        now : datetime | None (default: None)
            Timezone-aware time of the entry (a test seam); defaults to the current time.

        Returns
        -------
        LedgerEntry
            The entry as written.

        Raises
        ------
        ValueError
            If an argument is malformed or would break the ledger's rules; nothing is written.
        LedgerConflict
            If the file changed on disk since it was read but still verifies.
        LedgerTampered
            If the file changed on disk since it was read and no longer verifies.
        OSError
            If the ledger cannot be written; the ledger on disk is then left as it was.
        """
        if isinstance(accountant, Enum):
            accountant = accountant.value
        if not isinstance(mechanism, PoissonGaussian):
            raise TypeError(
                f"`mechanism` must be a PoissonGaussian; got {type(mechanism).__name__}"
            )
        when = datetime.now(UTC) if now is None else now
        if when.utcoffset() is None:
            raise ValueError(f"`now` must be timezone-aware; got {when!r}")
        obj: dict[str, object] = dict(extras or {})
        clash = sorted(set(obj) & set(_FIELDS))
        if clash:
            raise ValueError(f"`extras` must not redefine ledger fields; got {clash}")
        obj.update(
            version=LEDGER_VERSION,
            seq=len(self._chain.entries),
            prev_hash=self._chain.last_hash,
            time=when.astimezone(UTC).isoformat(timespec="microseconds"),
            run_id=run_id,
            round=round,
            institution=self._institution,
            dataset_fingerprint=self._fingerprint,
            mechanism=mechanism.to_record(),
            delta=_as_float(delta, "delta"),
            accountant=accountant,
            epsilon=_as_float(epsilon, "epsilon"),
            budget={
                "epsilon": _as_float(budget_epsilon, "budget_epsilon"),
                "delta": _as_float(budget_delta, "budget_delta"),
            },
            update_sha256=update_sha256,
        )
        obj = json.loads(canonical_json(obj))  # as a reader will see it (tuples → lists, …)
        signature = sign(self._key, canonical_json(obj), context=LEDGER_SIGNATURE_CONTEXT)
        obj["signature"] = base64.b64encode(signature).decode("ascii")
        line = canonical_json(obj)
        try:  # validate-then-commit: the new entry must pass exactly what a reader checks
            entry = _check_entry(obj, line, self._key.public_key())
            self._chain.check(entry)
        except _Invalid as exc:
            raise ValueError(f"ledger entry rejected: {exc}") from None
        self._commit(self._raw + line + b"\n")
        self._chain.add(entry, line)
        return entry

    def _verify(self, raw: bytes) -> _Chain:
        return _verify(
            self._path, raw, self._key.public_key(), self._institution, self._fingerprint
        )

    def _commit(self, data: bytes) -> None:
        directory = self._path.parent
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(dir_fd, fcntl.LOCK_EX)
            on_disk = _read_bytes(self._path)
            if on_disk != self._raw:
                self._verify(on_disk)  # raises LedgerTampered if it no longer verifies
                raise LedgerConflict(
                    f"ledger {self._path.name} changed on disk since it was read "
                    "(another writer?); open a new LedgerWriter and retry"
                )
            prefix = f".{self._path.name}."
            for stale in directory.iterdir():  # left by a writer that crashed; we hold the lock
                if stale.name.startswith(prefix) and stale.name.endswith(_TEMP_SUFFIX):
                    stale.unlink(missing_ok=True)
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=prefix, suffix=_TEMP_SUFFIX)
            try:
                os.fchmod(fd, 0o644)  # a ledger is public: signed, and holds no secrets
                with os.fdopen(fd, "wb") as file:
                    file.write(data)
                    file.flush()
                    os.fsync(file.fileno())
                os.replace(tmp, self._path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            os.fsync(dir_fd)
            self._raw = data
        finally:
            os.close(dir_fd)  # also releases the lock


class _Invalid(Exception):
    """Internal: why an entry is invalid; becomes LedgerTampered or ValueError."""


class _Chain:
    """Internal: the verified entries so far, and what the next one must satisfy."""

    def __init__(self, institution: str | None, fingerprint: str | None) -> None:
        self.entries: list[LedgerEntry] = []
        self.last_hash = GENESIS_HASH
        self.institution = institution
        self.fingerprint = fingerprint
        self.last_round: dict[str, int] = {}

    def check(self, entry: LedgerEntry) -> None:
        if entry.seq != len(self.entries):
            seq = len(self.entries)
            raise _Invalid(
                f"`seq` must be {seq}; got {entry.seq} (entry deleted, inserted or moved)"
            )
        if entry.prev_hash != self.last_hash:
            raise _Invalid(
                "`prev_hash` must be the SHA-256 of the previous entry; got another hash"
            )
        if self.institution is not None and entry.institution != self.institution:
            got = _short(entry.institution)
            raise _Invalid(f"`institution` must be {self.institution!r}; got {got}")
        if self.fingerprint is not None and entry.dataset_fingerprint != self.fingerprint:
            got = entry.dataset_fingerprint
            raise _Invalid(f"`dataset_fingerprint` must be {self.fingerprint}; got {got}")
        if self.entries and entry.epsilon < self.entries[-1].epsilon:
            was = self.entries[-1].epsilon
            raise _Invalid(f"`epsilon` must not decrease (was {was}); got {entry.epsilon}")
        last_round = self.last_round.get(entry.run_id)
        if last_round is not None and entry.round < last_round:
            raise _Invalid(
                f"`round` must not decrease within run {entry.run_id!r} (was {last_round}); "
                f"got {entry.round}"
            )

    def add(self, entry: LedgerEntry, line: bytes) -> None:
        self.entries.append(entry)
        self.last_hash = hashlib.sha256(line).hexdigest()
        self.last_round[entry.run_id] = entry.round
        self.institution = entry.institution
        self.fingerprint = entry.dataset_fingerprint


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def _verify(
    path: Path,
    raw: bytes,
    public_key: Ed25519PublicKey,
    institution: str | None,
    fingerprint: str | None,
) -> _Chain:
    if not isinstance(public_key, Ed25519PublicKey):
        raise TypeError(
            f"`public_key` must be an Ed25519PublicKey; got {type(public_key).__name__}"
        )
    lines = raw.split(b"\n")
    torn = lines.pop()  # b"" when the file ends with a newline, as every complete one does
    chain = _Chain(institution, fingerprint)
    for number, line in enumerate(lines, start=1):
        try:
            obj = _parse(line)
        except _Invalid as exc:
            raise LedgerTampered(path, line=number, seq=None, reason=str(exc)) from None
        try:
            entry = _check_entry(obj, line, public_key)
            chain.check(entry)
        except _Invalid as exc:
            raise LedgerTampered(path, line=number, seq=number - 1, reason=str(exc)) from None
        chain.add(entry, line)
    if torn:
        reason = "incomplete last entry (torn write)"
        raise LedgerTampered(path, line=len(lines) + 1, seq=None, reason=reason)
    return chain


def _parse(line: bytes) -> dict[str, object]:
    def no_constants(name: str) -> object:
        raise _Invalid(f"not valid JSON ({name} is not allowed)")

    def no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
        obj = dict(pairs)
        if len(obj) != len(pairs):
            raise _Invalid("not valid JSON (duplicate key)")
        return obj

    try:
        obj = json.loads(
            line.decode("ascii"), parse_constant=no_constants, object_pairs_hook=no_duplicates
        )
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise _Invalid("not valid JSON (corrupted or truncated line)") from None
    if not isinstance(obj, dict):
        raise _Invalid(f"entry must be a JSON object; got {type(obj).__name__}")
    return obj


def _check_entry(obj: dict[str, object], line: bytes, public_key: Ed25519PublicKey) -> LedgerEntry:
    missing = [name for name in _FIELDS if name not in obj]
    if missing:
        raise _Invalid(f"entry must have fields {missing}; got keys {_short(sorted(obj))}")
    for name, kind in _FIELDS.items():
        if isinstance(obj[name], bool) or not isinstance(obj[name], kind):
            raise _Invalid(f"`{name}` must be of type {kind.__name__}; got {_short(obj[name])}")
    if obj["version"] != LEDGER_VERSION:
        raise _Invalid(f"`version` must be {LEDGER_VERSION}; got {_short(obj['version'])}")
    if canonical_json(obj) != line:
        raise _Invalid("entry must be in canonical JSON encoding; got other bytes")
    unsigned = {name: value for name, value in obj.items() if name != "signature"}
    try:
        verify_signature(
            public_key,
            _decode_signature(str(obj["signature"])),
            canonical_json(unsigned),
            context=LEDGER_SIGNATURE_CONTEXT,
        )
    except SignatureInvalid:
        raise _Invalid("signature does not verify") from None
    extras = {name: value for name, value in obj.items() if name not in _FIELDS}
    core = {name: obj[name] for name in _FIELDS}
    entry = LedgerEntry(**core, extras=extras)  # type: ignore[arg-type]
    _check_values(entry)
    return entry


def _decode_signature(text: str) -> bytes:
    try:
        signature = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise _Invalid("`signature` must be base64; got other text") from None
    if base64.b64encode(signature).decode("ascii") != text:
        raise _Invalid("`signature` must be canonical base64; got other text")
    return signature


def _check_values(entry: LedgerEntry) -> None:
    for name in ("prev_hash", "update_sha256", "dataset_fingerprint"):
        if not _HEX64.fullmatch(getattr(entry, name)):
            raise _Invalid(
                f"`{name}` must be 64 lowercase hex digits; got {_short(getattr(entry, name))}"
            )
    if not INSTITUTION_PATTERN.fullmatch(entry.institution):
        pattern = INSTITUTION_PATTERN.pattern
        raise _Invalid(f"`institution` must match {pattern}; got {_short(entry.institution)}")
    try:
        offset = datetime.fromisoformat(entry.time).utcoffset()
    except ValueError:
        offset = None
    if offset is None or offset.total_seconds() != 0:
        raise _Invalid(f"`time` must be ISO-8601 in UTC; got {_short(entry.time)}")
    if not entry.run_id:
        raise _Invalid("`run_id` must be non-empty; got ''")
    if entry.round < 0:
        raise _Invalid(f"`round` must be non-negative; got {entry.round}")
    if entry.accountant not in ACCOUNTANTS:
        raise _Invalid(f"`accountant` must be one of {ACCOUNTANTS}; got {_short(entry.accountant)}")
    if set(entry.budget) != {"epsilon", "delta"}:
        raise _Invalid(
            f"`budget` must have exactly epsilon and delta; got {_short(sorted(entry.budget))}"
        )
    for name, value in (("delta", entry.delta), ("budget.delta", entry.budget["delta"])):
        if not isinstance(value, float) or not 0.0 < value < 1.0:
            raise _Invalid(f"`{name}` must be a float in (0, 1); got {value!r}")
    for name, value in (("epsilon", entry.epsilon), ("budget.epsilon", entry.budget["epsilon"])):
        if not isinstance(value, float) or not math.isfinite(value) or value < 0.0:
            raise _Invalid(f"`{name}` must be a finite non-negative float; got {value!r}")
    try:
        mechanism = entry.mechanism_obj
    except (ValueError, TypeError) as exc:
        raise _Invalid(str(exc)) from None
    if mechanism.to_record() != entry.mechanism:
        raise _Invalid(
            f"`mechanism` must be a PoissonGaussian record; got {_short(entry.mechanism)}"
        )


def _check_identity(institution: str, fingerprint: str) -> None:
    if not isinstance(institution, str) or not INSTITUTION_PATTERN.fullmatch(institution):
        pattern = INSTITUTION_PATTERN.pattern
        raise ValueError(f"`institution` must match {pattern}; got {institution!r}")
    if not isinstance(fingerprint, str) or not _HEX64.fullmatch(fingerprint):
        raise ValueError(
            f"`dataset_fingerprint` must be 64 lowercase hex digits; got {fingerprint!r}"
        )


def _short(value: object) -> str:
    return reprlib.repr(value)  # values read from a possibly hostile file: keep messages short


def _as_float(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"`{name}` must be a float; got {type(value).__name__}")
    return float(value)
