"""Roll call: learn which institution stands behind each connected node.

The coordinator asks every node who it is before round 1, with a fresh challenge per
node. A node proves the institution it names by signing the challenge with that
institution's key from the consortium manifest
(`fedrisk.strategies.roll_call_identity`). Nodes that name an institution outside the
consortium, or one they cannot prove, are left out of the run (and listed in
``rejected``); an impostor does not take the slot, and the roll call waits (up to a
timeout) until every expected institution has answered.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from flwr.app import ConfigRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid

from fedrisk.strategies import WEIGHT_KEY, messages
from fedrisk.strategies.roll_call_identity import (
    CHALLENGE,
    IDENTITY,
    SIGNATURE,
    IdentityRefused,
    fresh_challenge,
    verify_identity,
)
from fedrisk.strategies.secagg import wire


class RollCallError(RuntimeError):
    """Too few institutions answered the roll call."""


@dataclass(frozen=True)
class Roster:
    """Who takes part: node ids keyed by institution, and their training rows.

    ``refusals`` lists institutions that answered but declined to train (e.g. their
    privacy budget is already spent); ``privacy`` holds each institution's opening
    figures under DP (ε already spent, budget, δ, planned noise multiplier).
    """

    node_of: dict[str, int]
    n_train: dict[str, int]
    rejected: dict[int, str]
    refusals: dict[str, str] = field(default_factory=dict)
    privacy: dict[str, dict[str, float]] = field(default_factory=dict)
    adverts: dict[str, bytes] = field(default_factory=dict)

    @property
    def institutions(self) -> list[str]:
        """Institution ids in sorted order (the order every round works in)."""
        return sorted(self.node_of)


def roll_call(
    grid: Grid,
    *,
    expected: Sequence[str],
    minimum: int,
    timeout: float,
    identities: Mapping[str, Ed25519PublicKey] | None,
    run_id: str = "",
    poll: float = 0.5,
    setup: Mapping[str, ConfigRecord] | None = None,
) -> Roster:
    """Ask every connected node which institution it is.

    Parameters
    ----------
    grid : Grid
        Flower's grid of connected nodes.
    expected : Sequence[str]
        Institution ids of the consortium.
    minimum : int
        Fewest institutions the run can start with.
    timeout : float
        Seconds to wait for the whole consortium.
    identities : Mapping[str, Ed25519PublicKey] | None
        Each institution's signing key from the manifest: a node must prove the name
        it claims with it. ``None`` asks for no proof (benchmarks of the bare protocol
        only; fedrisk's ServerApp always passes the manifest's keys).
    run_id : str (default: "")
        The run id the proofs are bound to (fedrisk's, else Flower's).
    poll : float (default: 0.5)
        Seconds between checks for newly connected nodes.
    setup : Mapping[str, ConfigRecord] | None (default: None)
        Records sent with every query (the secure-aggregation setup).

    Returns
    -------
    Roster
        The institutions that answered, their nodes and training-set sizes.

    Raises
    ------
    RollCallError
        If fewer than ``minimum`` institutions answered within ``timeout``.
    """
    wanted = set(expected)
    node_of: dict[str, int] = {}
    n_train: dict[str, int] = {}
    rejected: dict[int, str] = {}
    refusals: dict[str, str] = {}
    privacy: dict[str, dict[str, float]] = {}
    adverts: dict[str, bytes] = {}
    impostors: set[int] = set()
    deadline = time.monotonic() + timeout
    while True:
        asked = set(node_of.values()) | set(rejected)
        new = sorted(set(grid.get_node_ids()) - asked)
        if new:
            challenges = {node: fresh_challenge() for node in new} if identities is not None else {}
            replies = grid.send_and_receive(
                _queries(new, setup or {}, challenges),
                timeout=max(1.0, deadline - time.monotonic()),
            )
            for reply in replies:
                src = reply.metadata.src_node_id
                if reply.has_error():
                    rejected[src] = (
                        f"roll call failed: {messages.error_summary(reply.error.reason)}"
                    )
                    continue
                try:
                    name = messages.text(
                        messages.config_of(reply.content, messages.NODE), messages.INSTITUTION
                    )
                    metrics = messages.metrics_of(reply.content)
                    rows = (
                        int(messages.number(metrics, WEIGHT_KEY)) if WEIGHT_KEY in metrics else None
                    )
                except messages.MalformedMessage as err:
                    rejected[src] = f"malformed roll-call reply: {err}"
                    continue
                if name not in wanted:
                    rejected[src] = f"institution {name!r} is not in the consortium"
                    continue
                if identities is not None:
                    try:
                        _check_identity(reply, identities, challenges, name, run_id)
                    except IdentityRefused as err:
                        rejected[src] = f"refused: node claims {name!r} without proof ({err})"
                        impostors.add(src)
                        continue
                if name in node_of:
                    rejected[src] = f"institution {name!r} already answered from another node"
                else:
                    node_of[name] = src
                    if rows is not None:
                        n_train[name] = rows
                    advert = reply.content.config_records.get(wire.ADVERT)
                    if advert is not None and isinstance(advert.get(wire.ADVERT_KEY), bytes):
                        adverts[name] = advert[wire.ADVERT_KEY]  # type: ignore[assignment]
                    aborted = reply.content.config_records.get(wire.ABORT)
                    if aborted is not None:
                        refusals[name] = f"secure aggregation: {aborted.get(wire.REASON_KEY)!s}"
                    if messages.REFUSAL in reply.content.config_records:
                        refusal = messages.config_of(reply.content, messages.REFUSAL)
                        refusals[name] = messages.text(refusal, messages.REFUSAL_REASON)
                    opening = {k: messages.number(metrics, k) for k in metrics if k != WEIGHT_KEY}
                    if opening:
                        privacy[name] = opening
        answered = len(node_of) + len(rejected) - len(impostors)
        # Done when every institution is here, or when as many nodes as institutions
        # have answered (some with errors): waiting longer only delays the failure. An
        # impostor does not count: the bank it claims to be may still answer.
        if len(node_of) == len(wanted) or answered >= len(wanted):
            break
        if time.monotonic() >= deadline:
            break
        time.sleep(poll)
    if len(node_of) < minimum:
        missing = sorted(wanted - set(node_of))
        reasons = "; ".join(f"node {node}: {why}" for node, why in sorted(rejected.items()))
        raise RollCallError(
            f"only {len(node_of)} of {len(wanted)} institutions answered the roll call "
            f"within {timeout:.0f} s (need {minimum}); missing: {', '.join(missing)}"
            + (f"; refused: {reasons}" if reasons else "")
        )
    return Roster(
        node_of=node_of,
        n_train=n_train,
        rejected=rejected,
        refusals=refusals,
        privacy=privacy,
        adverts=adverts,
    )


def _check_identity(
    reply: Message,
    identities: Mapping[str, Ed25519PublicKey],
    challenges: Mapping[int, bytes],
    name: str,
    run_id: str,
) -> None:
    """Verify that ``reply`` proves ``name``; raise `IdentityRefused` otherwise."""
    src = reply.metadata.src_node_id
    if name not in identities:
        raise IdentityRefused(f"the manifest lists no key for {name!r}")
    proof = reply.content.config_records.get(IDENTITY)
    verify_identity(
        identities[name],
        None if proof is None else proof.get(SIGNATURE),
        challenge=challenges[src],
        run_id=run_id,
        node_id=src,
        institution=name,
    )


def _queries(
    node_ids: Iterable[int], setup: Mapping[str, ConfigRecord], challenges: Mapping[int, bytes]
) -> list[Message]:
    queries = []
    for node in node_ids:
        content = RecordDict(dict(setup))
        if node in challenges:
            content[IDENTITY] = ConfigRecord({CHALLENGE: challenges[node]})
        queries.append(Message(content=content, message_type=MessageType.QUERY, dst_node_id=node))
    return queries
