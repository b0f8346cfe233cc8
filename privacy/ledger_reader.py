"""Reading a ledger: parsing, signature and hash-chain verification, `read_ledger`.

A verifier holding only the file and the institution's public key checks every line:
canonical JSON, the fields of `ENTRY_FIELDS`, the Ed25519 signature (context
`LEDGER_SIGNATURE_CONTEXT`), ``seq`` and ``prev_hash`` against the previous entry, one
institution and dataset throughout, ε never decreasing and rounds never going back
within a run. The first failure raises `LedgerTampered` naming the entry.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from fedrisk.privacy.ledger_format import (
    ENTRY_FIELDS,
    GENESIS_HASH,
    LEDGER_SIGNATURE_CONTEXT,
    LEDGER_VERSION,
    EntryInvalid,
    LedgerEntry,
    LedgerTampered,
    canonical_json,
    check_entry_values,
    short_repr,
)
from fedrisk.privacy.mechanism import PoissonGaussian
from fedrisk.secure.signing import SignatureInvalid, verify_signature


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
    return verify_chain(
        path, read_ledger_bytes(path), public_key, institution, dataset_fingerprint
    ).entries


class LedgerChain:
    """The verified entries so far, and what the next one must satisfy.

    Internal to the ledger modules: `LedgerWriter` extends one entry by entry.

    Parameters
    ----------
    institution, fingerprint : str | None
        The institution and dataset every entry must carry; ``None`` takes the first
        entry's.
    """

    def __init__(self, institution: str | None, fingerprint: str | None) -> None:
        self.entries: list[LedgerEntry] = []
        self.last_hash = GENESIS_HASH
        self.institution = institution
        self.fingerprint = fingerprint
        self.last_round: dict[str, int] = {}

    def check(self, entry: LedgerEntry) -> None:
        """Check that ``entry`` may follow the entries so far.

        Raises
        ------
        EntryInvalid
            If it is out of sequence, off the hash chain, for another institution or
            dataset, lowers ε, or goes back a round within its run.
        """
        if entry.seq != len(self.entries):
            seq = len(self.entries)
            raise EntryInvalid(
                f"`seq` must be {seq}; got {entry.seq} (entry deleted, inserted or moved)"
            )
        if entry.prev_hash != self.last_hash:
            raise EntryInvalid(
                "`prev_hash` must be the SHA-256 of the previous entry; got another hash"
            )
        if self.institution is not None and entry.institution != self.institution:
            got = short_repr(entry.institution)
            raise EntryInvalid(f"`institution` must be {self.institution!r}; got {got}")
        if self.fingerprint is not None and entry.dataset_fingerprint != self.fingerprint:
            got = entry.dataset_fingerprint
            raise EntryInvalid(f"`dataset_fingerprint` must be {self.fingerprint}; got {got}")
        if self.entries and entry.epsilon < self.entries[-1].epsilon:
            was = self.entries[-1].epsilon
            raise EntryInvalid(f"`epsilon` must not decrease (was {was}); got {entry.epsilon}")
        last_round = self.last_round.get(entry.run_id)
        if last_round is not None and entry.round < last_round:
            raise EntryInvalid(
                f"`round` must not decrease within run {entry.run_id!r} (was {last_round}); "
                f"got {entry.round}"
            )

    def add(self, entry: LedgerEntry, line: bytes) -> None:
        """Append a checked ``entry`` whose line (without newline) is ``line``."""
        self.entries.append(entry)
        self.last_hash = hashlib.sha256(line).hexdigest()
        self.last_round[entry.run_id] = entry.round
        self.institution = entry.institution
        self.fingerprint = entry.dataset_fingerprint


def read_ledger_bytes(path: Path) -> bytes:
    """Return the bytes of the ledger file ``path``; a missing file is empty."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def verify_chain(
    path: Path,
    raw: bytes,
    public_key: Ed25519PublicKey,
    institution: str | None,
    fingerprint: str | None,
) -> LedgerChain:
    """Verify the ledger bytes ``raw`` read from ``path`` and return the chain.

    Parameters
    ----------
    path : Path
        The ledger file, for error messages.
    raw : bytes
        Its contents.
    public_key : Ed25519PublicKey
        The institution's key.
    institution, fingerprint : str | None
        As for `read_ledger`.

    Returns
    -------
    LedgerChain
        The verified entries.

    Raises
    ------
    LedgerTampered
        Naming the first bad line or entry.
    TypeError
        If ``public_key`` is not an Ed25519 public key.
    """
    if not isinstance(public_key, Ed25519PublicKey):
        raise TypeError(
            f"`public_key` must be an Ed25519PublicKey; got {type(public_key).__name__}"
        )
    lines = raw.split(b"\n")
    torn = lines.pop()  # b"" when the file ends with a newline, as every complete one does
    chain = LedgerChain(institution, fingerprint)
    for number, line in enumerate(lines, start=1):
        try:
            obj = _parse(line)
        except EntryInvalid as exc:
            raise LedgerTampered(path, line=number, seq=None, reason=str(exc)) from None
        try:
            entry = check_entry(obj, line, public_key)
            chain.check(entry)
        except EntryInvalid as exc:
            raise LedgerTampered(path, line=number, seq=number - 1, reason=str(exc)) from None
        chain.add(entry, line)
    if torn:
        reason = "incomplete last entry (torn write)"
        raise LedgerTampered(path, line=len(lines) + 1, seq=None, reason=reason)
    return chain


def _parse(line: bytes) -> dict[str, object]:
    def no_constants(name: str) -> object:
        raise EntryInvalid(f"not valid JSON ({name} is not allowed)")

    def no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
        obj = dict(pairs)
        if len(obj) != len(pairs):
            raise EntryInvalid("not valid JSON (duplicate key)")
        return obj

    try:
        obj = json.loads(
            line.decode("ascii"), parse_constant=no_constants, object_pairs_hook=no_duplicates
        )
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise EntryInvalid("not valid JSON (corrupted or truncated line)") from None
    if not isinstance(obj, dict):
        raise EntryInvalid(f"entry must be a JSON object; got {type(obj).__name__}")
    return obj


def check_entry(obj: dict[str, object], line: bytes, public_key: Ed25519PublicKey) -> LedgerEntry:
    """Check one parsed entry and its signature, and decode it.

    Parameters
    ----------
    obj : dict[str, object]
        The entry's JSON object.
    line : bytes
        The line it was parsed from (must be its canonical encoding).
    public_key : Ed25519PublicKey
        The institution's key.

    Returns
    -------
    LedgerEntry
        The decoded entry.

    Raises
    ------
    EntryInvalid
        If a field is missing, mistyped or out of range, the version is unknown, the
        encoding not canonical or the signature does not verify.
    """
    missing = [name for name in ENTRY_FIELDS if name not in obj]
    if missing:
        raise EntryInvalid(f"entry must have fields {missing}; got keys {short_repr(sorted(obj))}")
    for name, kind in ENTRY_FIELDS.items():
        if isinstance(obj[name], bool) or not isinstance(obj[name], kind):
            raise EntryInvalid(
                f"`{name}` must be of type {kind.__name__}; got {short_repr(obj[name])}"
            )
    if obj["version"] != LEDGER_VERSION:
        raise EntryInvalid(f"`version` must be {LEDGER_VERSION}; got {short_repr(obj['version'])}")
    if canonical_json(obj) != line:
        raise EntryInvalid("entry must be in canonical JSON encoding; got other bytes")
    unsigned = {name: value for name, value in obj.items() if name != "signature"}
    try:
        verify_signature(
            public_key,
            _decode_signature(str(obj["signature"])),
            canonical_json(unsigned),
            context=LEDGER_SIGNATURE_CONTEXT,
        )
    except SignatureInvalid:
        raise EntryInvalid("signature does not verify") from None
    extras = {name: value for name, value in obj.items() if name not in ENTRY_FIELDS}
    core = {name: obj[name] for name in ENTRY_FIELDS}
    entry = LedgerEntry(**core, extras=extras)  # type: ignore[arg-type]
    check_entry_values(entry)
    return entry


def _decode_signature(text: str) -> bytes:
    try:
        signature = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise EntryInvalid("`signature` must be base64; got other text") from None
    if base64.b64encode(signature).decode("ascii") != text:
        raise EntryInvalid("`signature` must be canonical base64; got other text")
    return signature
