"""The signed, hash-chained privacy ledger: one JSON Lines file per institution and dataset.

Each line is one entry, written in the canonical JSON encoding (`canonical_json`) and
signed by the institution's Ed25519 key over the canonical encoding of every other field
(context `LEDGER_SIGNATURE_CONTEXT`). Each entry's ``prev_hash`` is the SHA-256 of the
previous line's bytes, so a verifier holding only the file and the institution's public
key detects any changed byte and any deleted, inserted, reordered or re-signed entry.

This module is the ledger's public face; the work is done in
`fedrisk.privacy.ledger_format` (the entry and its field rules),
`fedrisk.privacy.ledger_reader` (verification) and `fedrisk.privacy.ledger_writer`
(appending).

Notes
-----
Threat model: the ledger file lives on storage that others (the coordinator, an
operator) may be able to write. The institution's signing key does not leave its node.
A verifier trusts only the public key from the consortium manifest. Truncating the
ledger *at an entry boundary* is not detectable from the file alone; the auditor
compares the entry count and last hash with the server's run record.
"""

from fedrisk.privacy.ledger_format import (
    ACCOUNTANTS,
    GENESIS_HASH,
    INSTITUTION_PATTERN,
    LEDGER_SIGNATURE_CONTEXT,
    LEDGER_VERSION,
    LedgerEntry,
    LedgerTampered,
    canonical_json,
    ledger_path,
)
from fedrisk.privacy.ledger_reader import history, read_ledger
from fedrisk.privacy.ledger_writer import LedgerConflict, LedgerWriter

__all__ = [
    "ACCOUNTANTS",
    "GENESIS_HASH",
    "INSTITUTION_PATTERN",
    "LEDGER_SIGNATURE_CONTEXT",
    "LEDGER_VERSION",
    "LedgerConflict",
    "LedgerEntry",
    "LedgerTampered",
    "LedgerWriter",
    "canonical_json",
    "history",
    "ledger_path",
    "read_ledger",
]
