"""Appending to a ledger: `LedgerWriter`, with an exclusive lock and an atomic rewrite.

A writer verifies the existing ledger first and never appends to one that does not
verify. Each new entry is signed with the institution's Ed25519 key over the canonical
JSON of every other field and must pass exactly the checks a reader applies before
anything is written.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fedrisk.privacy.atomic_file import remove_stale_temporaries, write_atomically
from fedrisk.privacy.ledger_format import (
    ENTRY_FIELDS,
    LEDGER_SIGNATURE_CONTEXT,
    LEDGER_VERSION,
    EntryInvalid,
    LedgerEntry,
    canonical_json,
    check_identity,
)
from fedrisk.privacy.ledger_reader import (
    LedgerChain,
    check_entry,
    read_ledger_bytes,
    verify_chain,
)
from fedrisk.privacy.mechanism import PoissonGaussian
from fedrisk.secure.signing import sign


class LedgerConflict(RuntimeError):
    """The ledger file changed on disk after a `LedgerWriter` read it (another writer?)."""


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
        check_identity(institution, dataset_fingerprint)
        self._path = Path(path)
        self._key = signing_key
        self._institution = institution
        self._fingerprint = dataset_fingerprint
        self._raw = read_ledger_bytes(self._path)
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
        clash = sorted(set(obj) & set(ENTRY_FIELDS))
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
            entry = check_entry(obj, line, self._key.public_key())
            self._chain.check(entry)
        except EntryInvalid as exc:
            raise ValueError(f"ledger entry rejected: {exc}") from None
        self._commit(self._raw + line + b"\n")
        self._chain.add(entry, line)
        return entry

    def _verify(self, raw: bytes) -> LedgerChain:
        return verify_chain(
            self._path, raw, self._key.public_key(), self._institution, self._fingerprint
        )

    def _commit(self, data: bytes) -> None:
        dir_fd = os.open(self._path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(dir_fd, fcntl.LOCK_EX)
            on_disk = read_ledger_bytes(self._path)
            if on_disk != self._raw:
                self._verify(on_disk)  # raises LedgerTampered if it no longer verifies
                raise LedgerConflict(
                    f"ledger {self._path.name} changed on disk since it was read "
                    "(another writer?); open a new LedgerWriter and retry"
                )
            remove_stale_temporaries(self._path)  # left by a writer that crashed; we hold the lock
            write_atomically(self._path, data, dir_fd=dir_fd)
            self._raw = data
        finally:
            os.close(dir_fd)  # also releases the lock


def _as_float(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"`{name}` must be a float; got {type(value).__name__}")
    return float(value)
