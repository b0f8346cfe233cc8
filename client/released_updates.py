"""The node's copy of the update it released last, so a resumed run never spends twice.

When the coordinator crashes after a bank trained a round but before it aggregated
it, the bank's ledger already holds the round (the privacy was spent) and the resumed
coordinator asks for the same round again. The bank then sends the very update it
released, kept here beside its ledger, instead of training again: the ledger gets no
second entry and the resumed run gets the update the uninterrupted run would have
used. The copy is of an already released (noised) update, so keeping it on the
bank's own disk reveals nothing new. Under secure aggregation the kept update is masked
again under the resumed run's keys, and the bank signs a
`fedrisk.privacy.resend.ResendStatement` linking the new message to its ledger entry.

Files: ``released-<institution>/update.npz`` (no pickle) and ``update.json`` (run id,
round, rows, loss, the digest of the global model it was trained from, and the digest
of the message sent: the update itself, or its masked form under secure aggregation),
written in that order, each atomically; only the latest release is kept.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from flwr.app import Array, ArrayRecord

ARRAYS_FILE = "update.npz"
META_FILE = "update.json"


@dataclass(frozen=True)
class ReleasedUpdate:
    """An update a node released, and what it was trained from."""

    run_id: str
    round: int
    arrays: ArrayRecord
    n_examples: int
    loss: float
    received_sha256: str
    sent_sha256: str


def released_dir(ledger_file: Path, institution: str) -> Path:
    """Return the folder beside an institution's ledger that keeps its latest release."""
    return ledger_file.parent / f"released-{institution}"


def keep(folder: Path, update: ReleasedUpdate) -> None:
    """Keep ``update`` as the node's latest release (replacing the previous one)."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{ARRAYS_FILE}.tmp.npz"
    tensors = {name: np.asarray(array.numpy()) for name, array in update.arrays.items()}
    np.savez(tmp, **tensors)  # type: ignore[arg-type]  # numpy's stub types **kwds as allow_pickle
    os.replace(tmp, folder / ARRAYS_FILE)
    meta = {
        "run_id": update.run_id,
        "round": update.round,
        "order": list(tensors),
        "n_examples": update.n_examples,
        "loss": update.loss,
        "received_sha256": update.received_sha256,
        "sent_sha256": update.sent_sha256,
    }
    tmp_meta = folder / f".{META_FILE}.tmp"
    tmp_meta.write_text(json.dumps(meta, sort_keys=True), encoding="utf-8")
    os.replace(tmp_meta, folder / META_FILE)


def find(folder: Path, *, run_id: str, server_round: int) -> ReleasedUpdate | None:
    """Return the kept release of ``server_round`` of ``run_id``, or None if another is kept."""
    try:
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        if meta.get("run_id") != run_id or meta.get("round") != server_round:
            return None
        with np.load(folder / ARRAYS_FILE, allow_pickle=False) as archive:
            arrays = ArrayRecord({name: Array(archive[name]) for name in meta["order"]})
        return ReleasedUpdate(
            run_id=run_id,
            round=server_round,
            arrays=arrays,
            n_examples=int(meta["n_examples"]),
            loss=float(meta["loss"]),
            received_sha256=str(meta["received_sha256"]),
            sent_sha256=str(meta["sent_sha256"]),
        )
    except (OSError, ValueError, KeyError):
        return None
