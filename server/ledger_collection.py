"""Collect every institution's signed privacy ledger at the end of a run.

The ledgers live with the institutions (their node's state folder); the coordinator
asks each node for its copy (``query.ledger``), verifies it against the consortium
manifest (signatures, hash chain, institution) and keeps it in ``RUN_DIR/ledgers/`` so
that ``fedrisk audit RUN_DIR`` works from the run directory alone. A ledger that does
not verify is not kept; the institution's summary entry says why.
"""

from __future__ import annotations

import os
from pathlib import Path

from flwr.app import ConfigRecord, Message, RecordDict
from flwr.serverapp import Grid

from fedrisk.privacy.ledger_format import LEDGER_FILE_NAME, LEDGERS_DIR, LedgerTampered
from fedrisk.privacy.ledger_reader import verify_chain
from fedrisk.privacy.manifest import ConsortiumManifest
from fedrisk.server.bank_query import ask_every_bank
from fedrisk.strategies import messages


def collect_ledgers(
    grid: Grid,
    node_of: dict[str, int],
    manifest: ConsortiumManifest,
    run_dir: Path,
    *,
    timeout: float,
) -> dict[str, dict[str, object]]:
    """Ask every institution for its ledger, verify it and keep it under ``run_dir``.

    Parameters
    ----------
    grid : Grid
        The run's grid.
    node_of : dict[str, int]
        Node id of every institution that joined the run.
    manifest : ConsortiumManifest
        The public keys ledgers are verified with.
    run_dir : Path
        The run directory; verified ledgers go to ``run_dir/ledgers/``.
    timeout : float
        Seconds to wait for the replies.

    Returns
    -------
    dict[str, dict[str, object]]
        Per institution: ``ledger`` (path relative to ``run_dir``), ``ledger_entries``
        and ``ledger_verified``; or ``ledger_verified: False`` and ``ledger_error``.
    """
    out_dir = run_dir / LEDGERS_DIR
    out_dir.mkdir(exist_ok=True)

    def read(reply: Message, institution: str) -> dict[str, object]:
        try:
            return _keep(reply, institution, manifest, out_dir)
        except LedgerTampered as err:
            raise messages.MalformedMessage(str(err)) from err

    kept, failures = ask_every_bank(
        grid,
        node_of,
        RecordDict({messages.LEDGER: ConfigRecord()}),
        messages.LEDGER_MESSAGE_TYPE,
        read,
        timeout=timeout,
    )
    return {
        name: kept[name]
        if name in kept
        else {"ledger_verified": False, "ledger_error": failures[name]}
        for name in node_of
    }


def _keep(
    reply: Message, institution: str, manifest: ConsortiumManifest, out_dir: Path
) -> dict[str, object]:
    if reply.has_error():
        raise messages.MalformedMessage(
            f"{institution}'s node could not send its ledger: "
            f"{messages.error_summary(reply.error.reason)}"
        )
    record = messages.config_of(reply.content, messages.LEDGER)
    name, content = record.get(messages.LEDGER_FILE), record.get(messages.LEDGER_CONTENT)
    if not isinstance(name, str) or not isinstance(content, bytes):
        raise messages.MalformedMessage(
            f"{institution}'s ledger reply must carry `{messages.LEDGER_FILE}` (str) and "
            f"`{messages.LEDGER_CONTENT}` (bytes)"
        )
    match = LEDGER_FILE_NAME.fullmatch(name)
    if match is None or match["institution"] != institution:
        raise messages.MalformedMessage(
            f"{institution}'s ledger file name must be ledger-{institution}-<16 hex>.jsonl; "
            f"got {name!r}"
        )
    path = out_dir / name
    entries = verify_chain(
        path, content, manifest.public_key(institution), institution, None
    ).entries
    tmp = path.with_name(f".{name}.tmp")
    tmp.write_bytes(content)
    os.replace(tmp, path)
    return {
        "ledger": f"{LEDGERS_DIR}/{name}",
        "ledger_entries": len(entries),
        "ledger_verified": True,
    }
