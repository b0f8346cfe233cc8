"""The SecAgg+ neighbour graph of a round, and each institution's share threshold.

Bell et al. (CCS 2020) replace the complete graph of SecAgg with a sparse regular
graph: here a ring over a permutation of the round's participants, each connected to
``degree / 2`` participants on either side. The permutation is drawn from a public
seed (SHA-256 of the run tag, the round and the sorted participant ids), so every
institution computes the same graph itself and the coordinator cannot choose it.
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Sequence

import numpy as np

from fedrisk.strategies.secagg.wire import GRAPH_LABEL


def neighbours(
    participants: Sequence[int], *, degree: int, run_tag: str, round: int
) -> dict[int, tuple[int, ...]]:
    """Each participant's neighbours (sorted node ids) in this round's graph.

    Parameters
    ----------
    participants : Sequence[int]
        Distinct node ids taking part in the round.
    degree : int
        Neighbours per participant (even); 0, or at least ``len(participants) - 1``,
        gives the complete graph.
    run_tag, round
        Bind the public permutation to the run and round.

    Raises
    ------
    ValueError
        If node ids repeat or ``degree`` is negative or odd.
    """
    ids = sorted(participants)
    if len(set(ids)) != len(ids):
        raise ValueError(f"`participants` must be distinct node ids; got {ids}")
    if degree < 0 or degree % 2:
        raise ValueError(f"`degree` must be 0 or a positive even number; got {degree}")
    if degree == 0 or degree >= len(ids) - 1:
        return {node: tuple(n for n in ids if n != node) for node in ids}
    order = np.random.default_rng(_public_seed(ids, run_tag=run_tag, round=round)).permutation(
        len(ids)
    )
    ring = [ids[i] for i in order]
    half = degree // 2
    size = len(ring)
    return {
        node: tuple(
            sorted(ring[(position + step) % size] for step in range(-half, half + 1) if step)
        )
        for position, node in enumerate(ring)
    }


def auto_threshold(holders: int) -> int:
    """Return the automatic share threshold: strictly above two thirds of ``holders``.

    ``⌊2·holders/3⌋ + 1`` is Bonawitz et al.'s bound for an active coordinator (CCS 2017,
    the variant with the consistency round): two disjoint groups of honest holders,
    each reaching the threshold together with ``k`` colluding ones, need
    ``2·threshold ≤ holders + k``, so with this threshold ``k`` must be at least a third
    of the holders.
    """
    return 2 * holders // 3 + 1


def least_threshold(holders: int, fraction: float) -> int:
    """Return the least threshold above ``fraction`` of ``holders``: ``⌊fraction·holders⌋+1``."""
    return math.floor(fraction * holders) + 1


def threshold_for(holders: int, configured: int) -> int:
    """Self-mask shares needed to unmask one institution whose seed has ``holders`` shares.

    An institution keeps one share of its self-mask seed and gives one to each
    neighbour, so ``holders`` is its degree plus one. ``configured`` of 0 picks
    `auto_threshold` (above two thirds). An explicit threshold may be lower, down to a
    strict majority (see `fedrisk.conf.secagg.SecAggConfig` for what that gives up); at
    or below half, a coordinator could collect a threshold of shares of one secret from
    one half of the holders and of another from the other.

    Raises
    ------
    ValueError
        If no valid threshold exists (fewer than 3 holders) or the configured one is
        not in ``(holders / 2, holders]``.
    """
    threshold = configured or auto_threshold(holders)
    if holders < 3 or not (holders / 2 < threshold <= holders):
        raise ValueError(
            f"the share threshold must exceed half of the {holders} share holders and not "
            f"exceed them (and there must be at least 3); got {threshold}"
        )
    return threshold


def _public_seed(ids: list[int], *, run_tag: str, round: int) -> int:
    digest = hashlib.sha256(
        GRAPH_LABEL
        + b"\x00"
        + run_tag.encode("utf-8")
        + b"\x00"
        + struct.pack(">I", round)
        + b"".join(struct.pack(">Q", node) for node in ids)
    ).digest()
    return int.from_bytes(digest, "big")
