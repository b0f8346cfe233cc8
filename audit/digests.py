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
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from fedrisk.privacy.ledger import LedgerEntry

#: ``(round, institution)`` → SHA-256 hex of the update the server received.
ServerRecord = dict[tuple[int, str], str]


class MetricsUnreadable(ValueError):
    """``metrics.jsonl`` is not the coordinator's record of rounds."""


def read_server_record(path: Path) -> ServerRecord:
    """Read the update digests the coordinator recorded in ``metrics.jsonl``.

    Raises
    ------
    MetricsUnreadable
        Naming the path and line if a line is not a JSON object with an integer
        ``round`` and, if present, an object ``update_sha256`` of strings.
    OSError
        If the file cannot be read.
    """
    record: ServerRecord = {}
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
            record[(round_, str(institution))] = digest
    return record


def latest_run(entries: Sequence[LedgerEntry]) -> list[LedgerEntry]:
    """Return the entries of the ledger's latest run (the last entry's ``run_id``)."""
    if not entries:
        return []
    run_id = entries[-1].run_id
    return [entry for entry in entries if entry.run_id == run_id]


def entry_mismatches(entries: Sequence[LedgerEntry], server: ServerRecord) -> list[str]:
    """Return one sentence per latest-run entry whose digest the server does not confirm."""
    problems = []
    for entry in latest_run(entries):
        where = f"entry {entry.seq} (run {entry.run_id}, round {entry.round})"
        received = server.get((entry.round, entry.institution))
        if received is None:
            problems.append(f"{where}: server has no record of this update")
        elif received != entry.update_sha256:
            problems.append(
                f"{where}: update_sha256 {entry.update_sha256[:16]}… differs from the "
                f"server's record {received[:16]}…"
            )
    return problems


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
        for (round_, name) in sorted(server)
        if name == institution and round_ not in rounds
    ]
