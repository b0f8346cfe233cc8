"""The round loop's figures as a checkpoint keeps them (`Checkpoint.loop`), and back.

The checkpoint keeps the model and the strategy's state itself (see
`fedrisk.server.checkpoint`); this is the loop's own part: rounds completed, the last
metrics, refusals, institution-level privacy and secure aggregation's tallies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fedrisk.server.checkpoint import Checkpoint
    from fedrisk.server.rounds import LoopResult


def loop_state(result: LoopResult) -> dict[str, object]:
    """Return the figures of ``result`` a checkpoint keeps (JSON-ready)."""
    return {
        "rounds_completed": result.rounds_completed,
        "last_central": result.last_central,
        "last_federated": result.last_federated,
        "refusals": result.refusals,
        "institution_level": result.institution_level,
        "secagg": result.secagg,
    }


def restore_loop(result: LoopResult, checkpoint: Checkpoint) -> None:
    """Put the model and the loop's figures of ``checkpoint`` back on ``result``.

    Refusals are added to ``result.refusals`` in place: the loop shares that dictionary
    as its record of institutions that can no longer train.
    """
    loop = checkpoint.loop
    result.arrays = checkpoint.model_record()
    result.rounds_completed = int(loop["rounds_completed"])  # type: ignore[call-overload]
    result.last_central = dict(loop["last_central"])  # type: ignore[call-overload]
    result.last_federated = dict(loop["last_federated"])  # type: ignore[call-overload]
    result.institution_level = dict(loop["institution_level"])  # type: ignore[call-overload]
    result.secagg = dict(loop["secagg"])  # type: ignore[call-overload]
    result.refusals.update(dict(loop["refusals"]))  # type: ignore[call-overload]
