"""The public description of one secure-aggregation round, as both sides see it.

The coordinator sends it with the training instruction; each institution rebuilds the
neighbour graph and the share threshold from it and from its own configuration, so
nothing security-relevant is taken on the coordinator's word except who takes part.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import cast

from flwr.app import ConfigRecord

from fedrisk.strategies.secagg.graph import neighbours, threshold_for
from fedrisk.strategies.secagg.wire import (
    INSTITUTION_KEY,
    NODE_IDS_KEY,
    PARTICIPANTS_KEY,
    PROTOCOL_VERSION,
    ROUND_KEY,
    RUN_TAG_KEY,
    SALT_KEY,
    VERSION_KEY,
    ProtocolAbort,
    Stage,
)

MIN_PARTICIPANTS = 3


@dataclass(frozen=True)
class RoundInfo:
    """Who takes part in a round and how the protocol is parameterised.

    Parameters
    ----------
    run_tag : str
        The run's random tag (binds every derived key and record to the run).
    salt : bytes
        The run's HKDF salt.
    round : int
        The training round.
    node_of : Mapping[str, int]
        Participating institutions and their node ids.
    degree : int
        Configured SecAgg+ degree (0: complete graph).
    threshold_setting : int
        Configured share threshold (0: strict majority).
    """

    run_tag: str
    salt: bytes
    round: int
    node_of: Mapping[str, int]
    degree: int
    threshold_setting: int

    def __post_init__(self) -> None:
        if len(self.node_of) < MIN_PARTICIPANTS:
            raise ProtocolAbort(
                Stage.train,
                f"a round needs at least {MIN_PARTICIPANTS} participants (with 2, each learns "
                f"the other's update); got {len(self.node_of)}",
            )
        if len(set(self.node_of.values())) != len(self.node_of):
            raise ProtocolAbort(Stage.train, "two participants share a node id")

    @cached_property
    def institution_of(self) -> dict[int, str]:
        """Institution of each participating node."""
        return {node: name for name, node in self.node_of.items()}

    @cached_property
    def graph(self) -> dict[int, tuple[int, ...]]:
        """Each participant's neighbours."""
        return neighbours(
            list(self.node_of.values()), degree=self.degree, run_tag=self.run_tag, round=self.round
        )

    def holders(self, node: int) -> tuple[int, ...]:
        """Who holds shares of ``node``'s self-mask: its neighbours and itself, sorted."""
        return tuple(sorted((*self.graph[node], node)))

    @cached_property
    def shares(self) -> int:
        """Shares of one self-mask in the smallest neighbourhood (degree + 1)."""
        return min(len(peers) for peers in self.graph.values()) + 1

    @cached_property
    def threshold(self) -> int:
        """Self-mask shares needed to unmask one participant."""
        try:
            return threshold_for(self.shares, self.threshold_setting)
        except ValueError as err:
            raise ProtocolAbort(Stage.train, str(err)) from None

    @cached_property
    def signature_quorum(self) -> int:
        """Survivors that must sign one survivor set before anyone reveals (consistency).

        All participants but as many as one neighbourhood may lose (``shares −
        threshold``): on the complete graph that is the threshold itself; on a sparse
        graph it is more, so that two disjoint groups of honest signers cannot both
        reach it (the round keys are shared with every institution, not only with
        neighbours).
        """
        return len(self.node_of) - (self.shares - self.threshold)

    def to_record(self) -> ConfigRecord:
        """Build the record sent with the training instruction."""
        names = sorted(self.node_of)
        return ConfigRecord(
            {
                VERSION_KEY: PROTOCOL_VERSION,
                RUN_TAG_KEY: self.run_tag,
                SALT_KEY: self.salt,
                ROUND_KEY: self.round,
                PARTICIPANTS_KEY: names,
                NODE_IDS_KEY: [self.node_of[name] for name in names],
            }
        )

    @classmethod
    def from_record(
        cls, record: ConfigRecord, *, round: int, degree: int, threshold_setting: int
    ) -> RoundInfo:
        """Rebuild the round from its record, checking it is for ``round``.

        Raises
        ------
        ProtocolAbort
            At stage ``train`` if the record is malformed, of another protocol version,
            or for another round (a replay).
        """
        check_header(record, Stage.train, run_tag=None, round=round)
        names, nodes = record.get(PARTICIPANTS_KEY), record.get(NODE_IDS_KEY)
        salt, tag = record.get(SALT_KEY), record.get(RUN_TAG_KEY)
        if not (
            isinstance(names, list)
            and isinstance(nodes, list)
            and len(names) == len(nodes)
            and all(isinstance(n, str) for n in names)
            and all(isinstance(n, int) for n in nodes)
            and isinstance(salt, bytes)
            and salt
            and isinstance(tag, str)
        ):
            raise ProtocolAbort(Stage.train, "malformed round description")
        if len(set(names)) != len(names):
            raise ProtocolAbort(Stage.train, "an institution is listed twice")
        return cls(
            run_tag=tag,
            salt=salt,
            round=round,
            node_of=dict(zip(cast(list[str], names), cast(list[int], nodes), strict=True)),
            degree=degree,
            threshold_setting=threshold_setting,
        )


def header(
    *,
    run_tag: str,
    round: int,
    institution: str | None = None,
) -> ConfigRecord:
    """Start a protocol record: version, run tag, round (and the sender)."""
    record = ConfigRecord({VERSION_KEY: PROTOCOL_VERSION, RUN_TAG_KEY: run_tag, ROUND_KEY: round})
    if institution is not None:
        record[INSTITUTION_KEY] = institution
    return record


def check_header(
    record: ConfigRecord,
    stage: Stage,
    *,
    run_tag: str | None,
    round: int,
    institution: str | None = None,
) -> None:
    """Reject a record of another version, run, round or sender.

    Raises
    ------
    ProtocolAbort
        At ``stage``, saying which field differs (``replayed`` for an earlier round).
    """
    version = record.get(VERSION_KEY)
    if version != PROTOCOL_VERSION:
        raise ProtocolAbort(stage, f"protocol version {version!r}, expected {PROTOCOL_VERSION}")
    if run_tag is not None and record.get(RUN_TAG_KEY) != run_tag:
        raise ProtocolAbort(stage, "record is for another run", peer=institution)
    got = record.get(ROUND_KEY)
    if got != round:
        kind = "replayed from" if isinstance(got, int) and got < round else "for"
        raise ProtocolAbort(
            stage, f"record is {kind} round {got!r}, this is round {round}", peer=institution
        )
    if institution is not None and record.get(INSTITUTION_KEY) != institution:
        raise ProtocolAbort(
            stage, f"record names sender {record.get(INSTITUTION_KEY)!r}", peer=institution
        )
