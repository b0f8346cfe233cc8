"""``SecureAggregation``: wrap any ``flwr.serverapp`` strategy's aggregation in SecAgg+.

The wrapper adds the round description and any unseen key advertisements to each
training instruction, accepts only masked replies, runs the consistency round (on by
default) and the unmask round itself (on the grid it was given in ``configure_train``;
it ends as soon as every mask is off, see `fedrisk.strategies.secagg.unmasking`), decodes
the unmasked sum into the weighted mean model and the mean training loss, and hands
that to the wrapped strategy as identical replies (one per survivor, equal weights), so
FedAvg, FedProx, FedAdam and Flower's client-side DP wrapper aggregate it unchanged.
The wrapped strategy never sees one institution's update.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    Message,
    MessageType,
    MetricRecord,
    RecordDict,
)
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from fedrisk.conf.privacy import PrivacyMode
from fedrisk.conf.root import FedriskConfig
from fedrisk.strategies.exchange import collect
from fedrisk.strategies.factory import WEIGHT_KEY
from fedrisk.strategies.messages import ARRAYS, METRICS, update_digest
from fedrisk.strategies.secagg.consistency import collect_signatures
from fedrisk.strategies.secagg.encoding import DecodedSum, Encoding, decode_sum
from fedrisk.strategies.secagg.registry import KeyRegistry
from fedrisk.strategies.secagg.round_info import RoundInfo
from fedrisk.strategies.secagg.unmasking import RoundUnmasker
from fedrisk.strategies.secagg.wire import (
    PEER_ADVERTS,
    PROTOCOL_VERSION,
    REVEAL,
    ROUND,
    RUN_TAG_KEY,
    SALT_KEY,
    UNMASK,
    UNMASK_MESSAGE_TYPE,
    VERSION_KEY,
    ProtocolAbort,
    Stage,
)


@dataclass(frozen=True)
class RunKeys:
    """What the coordinator knows about a run's keys: tag, salt, manifest signers."""

    run_tag: str
    salt: bytes
    signers: Mapping[str, Ed25519PublicKey]

    @classmethod
    def fresh(cls, signers: Mapping[str, Ed25519PublicKey]) -> RunKeys:
        """Draw a new run tag (128 bits) and HKDF salt (256 bits) from the OS CSPRNG."""
        return cls(run_tag=secrets.token_hex(16), salt=secrets.token_bytes(32), signers=signers)

    def setup_record(self) -> ConfigRecord:
        """Build the roll call's setup record: protocol version, run tag and salt."""
        return ConfigRecord(
            {VERSION_KEY: PROTOCOL_VERSION, RUN_TAG_KEY: self.run_tag, SALT_KEY: self.salt}
        )


def wrap_secure_aggregation(
    strategy: Strategy,
    settings: FedriskConfig,
    *,
    keys: RunKeys,
    n_institutions: int,
) -> SecureAggregation:
    """Wrap ``strategy`` in SecAgg+ as configured by ``settings.secagg``.

    Raises
    ------
    ValueError
        If the encoding could overflow for ``n_institutions``.
    """
    secagg = settings.secagg
    return SecureAggregation(
        strategy,
        keys=keys,
        encoding=Encoding.for_run(
            secagg,
            institutions=n_institutions,
            uniform_weights=settings.privacy.mode is PrivacyMode.central,
        ),
        degree=secagg.degree,
        threshold=secagg.threshold,
        consistency_check=secagg.consistency_check,
        timeouts={
            Stage.keys: secagg.timeouts.keys,
            Stage.consistency: secagg.timeouts.consistency,
            Stage.unmask: secagg.timeouts.unmask,
        },
    )


class SecureAggregation(Strategy):
    """Secure aggregation around ``strategy``.

    Parameters
    ----------
    strategy : Strategy
        The aggregation rule (possibly already wrapped in Flower's client-side DP).
    keys : RunKeys
        Run tag, HKDF salt and every institution's manifest signing key.
    encoding : Encoding
        The run's fixed-point encoding.
    degree, threshold : int
        SecAgg+ settings (0: complete graph / strict majority).
    consistency_check : bool
        Run the consistency round before unmasking.
    timeouts : Mapping[Stage, float]
        Seconds to wait at the key-share, consistency and unmask stages.
    """

    def __init__(
        self,
        strategy: Strategy,
        *,
        keys: RunKeys,
        encoding: Encoding,
        degree: int,
        threshold: int,
        consistency_check: bool,
        timeouts: Mapping[Stage, float],
    ) -> None:
        super().__init__()
        self.strategy = strategy
        self.registry = KeyRegistry(run_tag=keys.run_tag, salt=keys.salt, signers=keys.signers)
        self._encoding = encoding
        self._degree = degree
        self._threshold = threshold
        self._consistency = consistency_check
        self._timeouts = dict(timeouts)
        self._pending: dict[int, tuple[RoundUnmasker, ArrayRecord, dict[str, str]]] = {}
        self._grid: Grid | None = None
        self._stale: set[str] = set()  # unmask requests whose reveal was not awaited
        self.records: dict[int, dict[str, object]] = {}

    def register(self, institution: str, node: int, advert: object) -> None:
        """Accept an institution's (re-)advertisement; see `KeyRegistry.register`."""
        self.registry.register(institution, node, advert)

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Configure the inner strategy's round and add the round's SecAgg+ records.

        Institutions whose round-key shares are not yet stored are asked for them
        first; those that cannot provide them sit the round out.

        Raises
        ------
        ProtocolAbort
            At stage ``train`` if fewer than 3 institutions can take part.
        """
        self._grid = grid
        registry = self.registry
        institution_of = {node: name for name, node in registry.node_of.items()}
        sent = [
            m
            for m in self.strategy.configure_train(server_round, arrays, config, grid)
            if m.metadata.dst_node_id in institution_of
        ]
        excluded = registry.collect_shares(
            grid,
            [institution_of[m.metadata.dst_node_id] for m in sent],
            round=server_round,
            timeout=self._timeouts[Stage.keys],
        )
        sent = [m for m in sent if institution_of[m.metadata.dst_node_id] not in excluded]
        info = RoundInfo(
            run_tag=registry.run_tag,
            salt=registry.salt,
            round=server_round,
            node_of={institution_of[m.metadata.dst_node_id]: m.metadata.dst_node_id for m in sent},
            degree=self._degree,
            threshold_setting=self._threshold,
        )
        info.threshold  # noqa: B018 - fail here, before anything is sent, if unmet
        out = []
        for message in sent:
            node = message.metadata.dst_node_id
            content = RecordDict(dict(message.content.items()))
            content[ROUND] = info.to_record()
            content[PEER_ADVERTS] = registry.offer(node, info.node_of)
            out.append(
                Message(
                    content=content, dst_node_id=node, message_type=message.metadata.message_type
                )
            )
        n_parameters = sum(int(np.prod(a.shape)) for a in arrays.values())
        unmasker = RoundUnmasker(
            info,
            length=self._encoding.vector_length(n_parameters),
            dtype=self._encoding.dtype,
            adverts={node: registry.adverts[name] for name, node in info.node_of.items()},
            key_shares=lambda owner, holder: registry.share(owner, holder, server_round),
            institutions=registry.institutions,
        )
        self._pending[server_round] = (unmasker, arrays, excluded)
        return out

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Unmask the sum of the masked replies and aggregate it with the inner strategy.

        Returns ``(None, None)`` when the round fails closed; ``records[server_round]``
        says why.
        """
        unmasker, global_arrays, excluded = self._pending.pop(server_round)
        info = unmasker.info
        rejected: dict[str, str] = {}
        for reply in replies:
            try:
                unmasker.accept(reply.metadata.src_node_id, reply.content)
            except ProtocolAbort as err:
                rejected[err.peer or str(reply.metadata.src_node_id)] = err.reason
            else:
                self.registry.delivered(reply.metadata.src_node_id)
        survivors = [info.institution_of[n] for n in unmasker.survivors]
        dropped: dict[str, list[str]] = {
            "train": [info.institution_of[n] for n in unmasker.dropped]
        }
        record: dict[str, object] = {
            "participants": sorted(info.node_of),
            "excluded": excluded,
            "rejected": rejected,
            "dropped": dropped,
        }
        self.records[server_round] = record
        requests = unmasker.requests()
        if len(survivors) < info.threshold:
            return self._fail(record, f"only {len(survivors)} masked updates arrived")
        if self._consistency:
            signatures, dropped["consistency"] = collect_signatures(
                self._grid_or_fail(), unmasker, timeout=self._timeouts[Stage.consistency]
            )
            if len(signatures) < info.signature_quorum:
                return self._fail(
                    record, f"only {len(signatures)} survivors signed the survivor set"
                )
            for request in requests.values():
                request.update(signatures)
        grid = self._grid_or_fail()
        self._drain(grid)
        exchange = collect(
            grid,
            [
                Message(
                    content=RecordDict({UNMASK: request}),
                    dst_node_id=node,
                    message_type=UNMASK_MESSAGE_TYPE,
                )
                for node, request in requests.items()
            ],
            timeout=self._timeouts[Stage.unmask],
            on_reply=lambda answer: unmasker.take(
                answer.metadata.src_node_id,
                None if answer.has_error() else answer.content.config_records.get(REVEAL),
            ),
        )
        self._stale |= exchange.unanswered
        outcome = unmasker.outcome(awaited_all=not exchange.stopped_early)
        dropped["unmask"] = outcome.silent
        record["unmask_not_awaited"] = outcome.not_awaited
        if outcome.total is None:
            return self._fail(record, outcome.reason)
        decoded = decode_sum(
            outcome.total,
            shapes=[tuple(a.shape) for a in global_arrays.values()],
            encoding=self._encoding,
            count=len(survivors),
        )
        mean = ArrayRecord(
            {
                key: Array((array.numpy().astype(np.float64) + delta).astype(array.numpy().dtype))
                for (key, array), delta in zip(
                    global_arrays.items(), decoded.mean_delta, strict=True
                )
            }
        )
        record.update(
            unmasked=True,
            aggregate_sha256=update_digest(mean),
            clipped_coordinates=decoded.clipped,
            error_bound=self._encoding.error_bound(
                count=len(survivors), weight_total=decoded.weight_total
            ),
        )
        return self.strategy.aggregate_train(
            server_round, _stand_ins(mean, decoded, [info.node_of[n] for n in survivors])
        )

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Delegate evaluation to the inner strategy."""
        return self.strategy.configure_evaluate(server_round, arrays, config, grid)

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        """Delegate evaluation to the inner strategy."""
        return self.strategy.aggregate_evaluate(server_round, replies)

    def summary(self) -> None:
        """Log the inner strategy's summary."""
        self.strategy.summary()

    def _drain(self, grid: Grid) -> None:
        """Pull, and drop, late reveals of earlier rounds (not awaited: the sum was complete)."""
        if self._stale:
            for late in grid.pull_messages(set(self._stale)):
                self._stale.discard(late.metadata.reply_to_message_id)

    def _fail(
        self, record: dict[str, object], reason: str
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        record.update(unmasked=False, failure=reason)
        return None, None

    def _grid_or_fail(self) -> Grid:
        if self._grid is None:
            raise RuntimeError("configure_train must run before aggregate_train")
        return self._grid


def _stand_ins(mean: ArrayRecord, decoded: DecodedSum, nodes: list[int]) -> list[Message]:
    """Present the unmasked mean as identical, equally weighted replies, one per survivor.

    FedAvg's weighted mean of identical arrays is the arrays themselves; the equal
    weights satisfy Flower's accounted DP wrapper, which wants one reply per sampled
    institution and uniform weights.
    """
    weight = decoded.weight_total / len(nodes)
    return [
        Message(
            content=RecordDict(
                {
                    ARRAYS: mean,
                    METRICS: MetricRecord({WEIGHT_KEY: weight, "train_loss": decoded.mean_loss}),
                }
            ),
            dst_node_id=node,
            message_type=MessageType.TRAIN,
        )
        for node in nodes
    ]
