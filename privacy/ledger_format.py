"""The ledger's entry format: constants, canonical JSON, `LedgerEntry` and field rules.

Every entry is one line of canonical JSON (`canonical_json`) holding the fields of
`ENTRY_FIELDS` plus signed extras. This module states what a well-formed entry is; the
chain and signature rules live in `fedrisk.privacy.ledger_reader`, appending in
`fedrisk.privacy.ledger_writer`.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import math
import re
import reprlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from fedrisk.privacy.mechanism import PoissonGaussian

#: Folder of a run directory that holds the institutions' verified ledgers.
LEDGERS_DIR = "ledgers"
#: A ledger file's name: ``ledger-<institution>-<first 16 hex of the fingerprint>.jsonl``.
LEDGER_FILE_NAME = re.compile(r"ledger-(?P<institution>.+)-(?P<fingerprint>[0-9a-f]{16})\.jsonl")

LEDGER_VERSION = 1
LEDGER_SIGNATURE_CONTEXT = b"fedrisk/ledger-entry/v1"
#: Domain label of a population's ledger identity (`population_fingerprint`).
POPULATION_DOMAIN = b"fedrisk/ledger-population/v1\x00"
GENESIS_HASH = "00" * 32
ACCOUNTANTS = ("rdp", "prv")
INSTITUTION_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
ENTRY_FIELDS: dict[str, type] = {
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
        obj: dict[str, object] = {name: getattr(self, name) for name in ENTRY_FIELDS}
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
    check_identity(institution, dataset_fingerprint)
    return Path(directory) / f"ledger-{institution}-{dataset_fingerprint[:16]}.jsonl"


def population_fingerprint(institution: str, population: str) -> str:
    """Return the ledger identity of one population of an institution's customers.

    A bank's ledger composes every release on one population, whatever table or
    schema order a run used: the identity depends only on the institution and the
    population its own policy names, never on anything the coordinator sends. The
    table each entry was trained on is recorded in the entry (``table_sha256``).

    Returns
    -------
    str
        64 lowercase hex digits (the entries' ``dataset_fingerprint``).
    """
    digest = hashlib.sha256(POPULATION_DOMAIN)
    for part in (institution, population):
        encoded = part.encode("utf-8")
        digest.update(str(len(encoded)).encode("ascii") + b":" + encoded)
    return digest.hexdigest()


class EntryInvalid(Exception):
    """Why an entry is invalid; the ledger modules turn it into LedgerTampered or ValueError.

    Internal to the ledger modules: never raised to callers of the public API.
    """


def check_entry_values(entry: LedgerEntry) -> None:
    """Check the values of an entry whose fields already have the right types.

    Parameters
    ----------
    entry : LedgerEntry
        The entry, as decoded from its line.

    Raises
    ------
    EntryInvalid
        Naming the first field out of its range or format.
    """
    for name in ("prev_hash", "update_sha256", "dataset_fingerprint"):
        if not _HEX64.fullmatch(getattr(entry, name)):
            raise EntryInvalid(
                f"`{name}` must be 64 lowercase hex digits; got {short_repr(getattr(entry, name))}"
            )
    if not INSTITUTION_PATTERN.fullmatch(entry.institution):
        pattern = INSTITUTION_PATTERN.pattern
        raise EntryInvalid(
            f"`institution` must match {pattern}; got {short_repr(entry.institution)}"
        )
    try:
        offset = datetime.fromisoformat(entry.time).utcoffset()
    except ValueError:
        offset = None
    if offset is None or offset.total_seconds() != 0:
        raise EntryInvalid(f"`time` must be ISO-8601 in UTC; got {short_repr(entry.time)}")
    if not entry.run_id:
        raise EntryInvalid("`run_id` must be non-empty; got ''")
    if entry.round < 0:
        raise EntryInvalid(f"`round` must be non-negative; got {entry.round}")
    if entry.accountant not in ACCOUNTANTS:
        raise EntryInvalid(
            f"`accountant` must be one of {ACCOUNTANTS}; got {short_repr(entry.accountant)}"
        )
    if set(entry.budget) != {"epsilon", "delta"}:
        raise EntryInvalid(
            f"`budget` must have exactly epsilon and delta; got {short_repr(sorted(entry.budget))}"
        )
    for name, value in (("delta", entry.delta), ("budget.delta", entry.budget["delta"])):
        if not isinstance(value, float) or not 0.0 < value < 1.0:
            raise EntryInvalid(f"`{name}` must be a float in (0, 1); got {value!r}")
    for name, value in (("epsilon", entry.epsilon), ("budget.epsilon", entry.budget["epsilon"])):
        if not isinstance(value, float) or not math.isfinite(value) or value < 0.0:
            raise EntryInvalid(f"`{name}` must be a finite non-negative float; got {value!r}")
    try:
        mechanism = entry.mechanism_obj
    except (ValueError, TypeError) as exc:
        raise EntryInvalid(str(exc)) from None
    if mechanism.to_record() != entry.mechanism:
        raise EntryInvalid(
            f"`mechanism` must be a PoissonGaussian record; got {short_repr(entry.mechanism)}"
        )


def check_identity(institution: str, fingerprint: str) -> None:
    """Check an institution id and a dataset fingerprint given by a caller.

    Parameters
    ----------
    institution : str
        Must match `INSTITUTION_PATTERN`.
    fingerprint : str
        Must be 64 lowercase hex digits.

    Raises
    ------
    ValueError
        If either is malformed.
    """
    if not isinstance(institution, str) or not INSTITUTION_PATTERN.fullmatch(institution):
        pattern = INSTITUTION_PATTERN.pattern
        raise ValueError(f"`institution` must match {pattern}; got {institution!r}")
    if not isinstance(fingerprint, str) or not _HEX64.fullmatch(fingerprint):
        raise ValueError(
            f"`dataset_fingerprint` must be 64 lowercase hex digits; got {fingerprint!r}"
        )


def short_repr(value: object) -> str:
    """Return a short ``repr`` of ``value`` for error messages.

    Values come from a possibly hostile file, so messages are kept short.
    """
    return reprlib.repr(value)
