"""Comparing the ledgers' update digests with the coordinator's record (``metrics.jsonl``).

The coordinator writes one JSON line per round to ``metrics.jsonl`` with
``"update_sha256": {"<institution>": "<hex>"}`` for every update it received. The
auditor reads that file directly (``fedrisk.audit`` never imports the server).

Notes
-----
``metrics.jsonl`` records one run and carries no run id, while a ledger spans every run
on its dataset. Only the entries of a ledger's **latest** run are compared: each must
match the server's digest for its (round, institution), and one with no server record
fails ("server has no record of this update"). Conversely, an update the server
received that no latest-run entry accounts for fails too: that is how truncation of a
ledger exactly at an entry boundary shows. Entries of earlier runs are not compared.

A resumed run may receive a released round again, masked anew under secure aggregation
(`fedrisk.privacy.resend`): the server then also records, under ``resent``, the bank's
signed statement linking the new digest to the ledger entry. The new digest is accepted
only if that statement verifies with the bank's manifest key and names the entry, its
digest and the digest the server received.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from fedrisk.privacy.ledger import LedgerEntry
from fedrisk.privacy.resend import ResendInvalid, ResendStatement


@dataclass(frozen=True)
class ServerRecord:
    """What the coordinator recorded of the updates it received.

    Attributes
    ----------
    digests : dict[tuple[int, str], str]
        ``(round, institution)`` → SHA-256 hex of the update the server received.
    resent : dict[tuple[int, str], ResendStatement]
        ``(round, institution)`` → the bank's statement for a released round sent again.
    """

    digests: dict[tuple[int, str], str] = field(default_factory=dict)
    resent: dict[tuple[int, str], ResendStatement] = field(default_factory=dict)


class MetricsUnreadable(ValueError):
    """``metrics.jsonl`` is not the coordinator's record of rounds."""


def read_server_record(path: Path) -> ServerRecord:
    """Read the update digests the coordinator recorded in ``metrics.jsonl``.

    Raises
    ------
    MetricsUnreadable
        Naming the path and line if a line is not a JSON object with an integer
        ``round`` and, if present, an object ``update_sha256`` of strings and an object
        ``resent`` of well-formed resend statements.
    OSError
        If the file cannot be read.
    """
    record = ServerRecord()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            raise MetricsUnreadable(f"{path}, line {number}: not valid JSON") from None
        digests = obj.get("update_sha256", {}) if isinstance(obj, dict) else None
        round_ = obj.get("round") if isinstance(obj, dict) else None
        if (
            not isinstance(round_, int)
            or not isinstance(digests, dict)
            or not all(isinstance(v, str) for v in digests.values())
        ):
            raise MetricsUnreadable(
                f"{path}, line {number}: `round` must be an integer and `update_sha256` "
                f"an object of hex strings; got {line[:80]!r}"
            )
        for institution, digest in digests.items():
            record.digests[(round_, str(institution))] = digest
        resent = obj.get("resent", {})
        try:
            if not isinstance(resent, dict):
                raise ResendInvalid(f"`resent` must be an object; got {resent!r}")
            for institution, statement in resent.items():
                if not isinstance(statement, dict):
                    raise ResendInvalid(f"`resent.{institution}` must be an object")
                record.resent[(round_, str(institution))] = ResendStatement.from_json(statement)
        except ResendInvalid as err:
            raise MetricsUnreadable(f"{path}, line {number}: {err}") from None
    return record


def latest_run(entries: Sequence[LedgerEntry]) -> list[LedgerEntry]:
    """Return the entries of the ledger's latest run (the last entry's ``run_id``)."""
    if not entries:
        return []
    run_id = entries[-1].run_id
    return [entry for entry in entries if entry.run_id == run_id]


def entry_mismatches(
    entries: Sequence[LedgerEntry], server: ServerRecord, public_key: Ed25519PublicKey
) -> list[str]:
    """Return one sentence per latest-run entry whose digest the server does not confirm.

    ``public_key`` is the institution's key from the manifest, for resend statements.
    """
    problems = []
    for entry in latest_run(entries):
        where = f"entry {entry.seq} (run {entry.run_id}, round {entry.round})"
        key = (entry.round, entry.institution)
        received = server.digests.get(key)
        if received is None:
            problems.append(f"{where}: server has no record of this update")
        elif received != entry.update_sha256:
            statement = server.resent.get(key)
            if statement is None:
                problems.append(
                    f"{where}: update_sha256 {entry.update_sha256[:16]}… differs from the "
                    f"server's record {received[:16]}…"
                )
            else:
                problems += _resend_problems(where, entry, received, statement, public_key)
    return problems


def _resend_problems(
    where: str,
    entry: LedgerEntry,
    received: str,
    statement: ResendStatement,
    public_key: Ed25519PublicKey,
) -> list[str]:
    """Why a resend statement does not account for ``received``, if it does not."""
    try:
        statement.verify(public_key)
    except ResendInvalid as err:
        return [f"{where}: {err}"]
    expected = {
        "run_id": entry.run_id,
        "institution": entry.institution,
        "ledger_seq": entry.seq,
        "ledger_sha256": entry.update_sha256,
        "sent_sha256": received,
    }
    wrong = [name for name, value in expected.items() if getattr(statement, name) != value]
    if wrong:
        return [
            f"{where}: the resend statement does not match the entry and the server's "
            f"record ({', '.join(wrong)})"
        ]
    return []


def unrecorded_updates(
    institution: str, ledgers: Sequence[Sequence[LedgerEntry]], server: ServerRecord
) -> list[str]:
    """Return one sentence per update the server received that no ledger entry accounts for.

    Parameters
    ----------
    institution : str
        Whose updates.
    ledgers : Sequence[Sequence[LedgerEntry]]
        The institution's verified ledgers (their latest runs are searched).
    server : ServerRecord
        The coordinator's record.
    """
    rounds = {entry.round for entries in ledgers for entry in latest_run(entries)}
    return [
        f"round {round_}: the server received an update from {institution} that no ledger "
        "entry accounts for (ledger truncated?)"
        for (round_, name) in sorted(server.digests)
        if name == institution and round_ not in rounds
    ]
