"""An institution's protocol steps: advertise, hand out key shares, mask, sign, reveal.

Keys and peers live in `fedrisk.client.secagg_state`. A node whose state is gone (a
restart) holds no keys for the run: it makes new ones and answers the next training
instruction with a fresh signed advertisement instead of an update; the coordinator
counts it as a dropout for that round, collects the new key shares, and lets it take
part again from the next round.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    Context,
    Message,
    MetricRecord,
    RecordDict,
)

from fedrisk.client.node_keys import locations, signing_key
from fedrisk.client.secagg_state import (
    KEY_STATE,
    ROUND_STATE,
    cached_adverts,
    held_advert,
    new_keys,
    open_from_state,
    own_keys,
    peer_adverts,
    seal_in_state,
    trusted_manifest,
    verify_peers,
)
from fedrisk.conf.secagg import SecAggConfig
from fedrisk.secure.signing import sign
from fedrisk.strategies.secagg.advert import Advertisement
from fedrisk.strategies.secagg.consistency import check_signatures, statement
from fedrisk.strategies.secagg.encoding import Encoding, encode_update
from fedrisk.strategies.secagg.graph import least_threshold
from fedrisk.strategies.secagg.key_shares import seal_round_key_shares
from fedrisk.strategies.secagg.keys import NodeKeys
from fedrisk.strategies.secagg.masking import (
    check_survivors,
    mask_input,
    reveal,
    reveal_record,
    shares_record,
)
from fedrisk.strategies.secagg.round_info import RoundInfo, check_header, header
from fedrisk.strategies.secagg.wire import (
    ABORT,
    ADVERT,
    ADVERT_KEY,
    ADVERTS,
    CONSISTENCY,
    CONSISTENCY_CONTEXT,
    DROPPED_KEY,
    KEY_SHARE_PREFIX,
    KEYS,
    MASKED,
    PEER_ADVERTS,
    PEER_KEY,
    PROTOCOL_VERSION,
    REASON_KEY,
    REVEAL,
    ROUND,
    ROUND_KEY,
    RULE_KEY,
    RUN_TAG_KEY,
    SALT_KEY,
    SHARE_PREFIX,
    SHARES,
    SIGNATURE_PREFIX,
    STAGE_KEY,
    SURVIVORS_KEY,
    UNMASK,
    VECTOR_KEY,
    VERSION_KEY,
    ProtocolAbort,
    Rule,
    Stage,
)


class Readvertised(Exception):
    """The node had no keys for this run (it restarted) and made a new advertisement."""

    def __init__(self, advert: bytes) -> None:
        super().__init__("no keys for this run (node restarted?); advertised new ones")
        self.advert = advert


@dataclass(frozen=True)
class PreparedRound:
    """Everything a node needs to mask its update for one round."""

    info: RoundInfo
    me: int
    keys: NodeKeys
    peers: dict[int, Advertisement]


def advertisement(context: Context, institution: str, setup: ConfigRecord, *, rounds: int) -> bytes:
    """Return this node's signed advertisement for the run, making its keys if needed.

    Raises
    ------
    ProtocolAbort
        At stage ``advertise`` if the setup record is malformed or of another version.
    """
    if setup.get(VERSION_KEY) != PROTOCOL_VERSION:
        raise ProtocolAbort(Stage.advertise, f"protocol version {setup.get(VERSION_KEY)!r}")
    run_tag, salt = setup.get(RUN_TAG_KEY), setup.get(SALT_KEY)
    if not (isinstance(run_tag, str) and run_tag and isinstance(salt, bytes) and salt):
        raise ProtocolAbort(Stage.advertise, "malformed setup record")
    held = held_advert(context, run_tag)
    if held is not None:
        return held
    return new_keys(context, institution, run_tag, range(1, rounds + 1))


def key_shares(msg: Message, context: Context, *, institution: str) -> RecordDict:
    """Verify every advertisement of the run and seal round-key shares to each peer.

    Raises
    ------
    ProtocolAbort
        If the request is malformed, this node holds no keys for its run, or an
        advertisement does not verify (naming the peer).
    """
    request = msg.content.config_records.get(KEYS)
    adverts = msg.content.config_records.get(ADVERTS)
    if request is None or adverts is None:
        raise ProtocolAbort(Stage.keys, "the key-share request lacks its records")
    run_tag, salt = request.get(RUN_TAG_KEY), request.get(SALT_KEY)
    if not (isinstance(run_tag, str) and isinstance(salt, bytes) and salt):
        raise ProtocolAbort(Stage.keys, "malformed key-share request")
    if request.get(VERSION_KEY) != PROTOCOL_VERSION:
        raise ProtocolAbort(Stage.keys, f"protocol version {request.get(VERSION_KEY)!r}")
    if held_advert(context, run_tag) is None:
        raise ProtocolAbort(Stage.keys, "this node holds no keys for the run")
    verify_peers(context, adverts, institution=institution, run_tag=run_tag)
    keys, own = own_keys(context, institution)
    names = [r.name for r in trusted_manifest(context, institution).institutions]
    sealed = seal_round_key_shares(
        keys,
        owner=own,
        holders=cached_adverts(context, run_tag),
        institutions=names,
        rounds=range(own.first_round, own.first_round + len(own.round_keys)),
        salt=salt,
    )
    record = header(run_tag=run_tag, round=_number(request, ROUND_KEY))
    for (holder, round), blob in sealed.items():
        record[f"{KEY_SHARE_PREFIX}{holder}:{round}"] = blob
    return RecordDict({KEYS: record})


def prepare_round(
    msg: Message,
    context: Context,
    *,
    secagg: SecAggConfig,
    institution: str,
    server_round: int,
    rounds: int,
    min_threshold_fraction: float | None = None,
) -> PreparedRound:
    """Check a training instruction's SecAgg+ records before any training happens.

    Parameters
    ----------
    min_threshold_fraction : float | None (default: None)
        The bank's own floor (its node policy): the round's threshold must exceed this
        share of the holders of this node's self-mask; ``None`` takes the run's.

    Raises
    ------
    Readvertised
        If the node holds no keys for this run.
    ProtocolAbort
        If the instruction is malformed or replayed, a peer's advertisement does not
        verify against the manifest (naming the peer), or the round's threshold is below
        the bank's floor (stage ``train``, rule ``min_threshold``).
    """
    record = msg.content.config_records.get(ROUND)
    if record is None:
        raise ProtocolAbort(Stage.train, "the training instruction lacks the round description")
    info = RoundInfo.from_record(
        record, round=server_round, degree=secagg.degree, threshold_setting=secagg.threshold
    )
    if held_advert(context, info.run_tag) is None:
        if server_round >= rounds:
            raise ProtocolAbort(Stage.advertise, "no keys for the run and no rounds left")
        raise Readvertised(
            new_keys(context, institution, info.run_tag, range(server_round + 1, rounds + 1))
        )
    if info.node_of.get(institution) != context.node_id:
        raise ProtocolAbort(Stage.train, "the round does not list this node for this institution")
    floor = bank_threshold(info, context.node_id, min_threshold_fraction)
    if info.threshold < floor:
        holders = len(info.holders(context.node_id))
        raise ProtocolAbort(
            Stage.train,
            f"`secagg.threshold` must be at least {floor} of the {holders} "
            f"holders of this bank's self-mask (more than {min_threshold_fraction:.3g} of them, "
            f"its policy); got {info.threshold}",
            rule=Rule.min_threshold,
        )
    last = context.state.config_records.get(ROUND_STATE)
    if last is not None and last.get(RUN_TAG_KEY) == info.run_tag:
        done = _number(last, "round")
        if done >= info.round:
            raise ProtocolAbort(
                Stage.train, f"replayed instruction: round {info.round} after round {done}"
            )
    incoming = msg.content.config_records.get(PEER_ADVERTS, ConfigRecord())
    verify_peers(
        context, incoming, institution=institution, run_tag=info.run_tag, node_of=dict(info.node_of)
    )
    keys, _ = own_keys(context, institution)
    return PreparedRound(
        info=info, me=context.node_id, keys=keys, peers=peer_adverts(context, info)
    )


def masked_records(
    prepared: PreparedRound,
    context: Context,
    *,
    delta: list[np.ndarray],
    weight: int,
    loss: float,
    encoding: Encoding,
    institution: str,
    rng: np.random.Generator,
) -> dict[str, ArrayRecord | MetricRecord | ConfigRecord]:
    """Encode and mask the update; remember the round; return the reply's records."""
    vector = encode_update(delta, weight=weight, loss=loss, encoding=encoding, rng=rng)
    info = prepared.info
    masked = mask_input(vector, me=prepared.me, keys=prepared.keys, peers=prepared.peers, info=info)
    names = sorted(info.node_of)
    context.state[ROUND_STATE] = ConfigRecord(
        {
            RUN_TAG_KEY: info.run_tag,
            SALT_KEY: info.salt,
            "round": info.round,
            "institutions": names,
            "node-ids": [info.node_of[n] for n in names],
            "revealed": False,
            "signed": b"",
            "own-share": seal_in_state(
                context, institution, masked.own_share, purpose=_own_share_purpose(info)
            ),
        }
    )
    return {
        MASKED: ArrayRecord({VECTOR_KEY: Array(masked.vector)}),
        SHARES: shares_record(masked, info=info, institution=institution),
    }


def unmask(
    msg: Message,
    context: Context,
    *,
    secagg: SecAggConfig,
    institution: str,
    min_threshold_fraction: float | None = None,
) -> RecordDict:
    """Answer the unmask request: self-mask shares of survivors, key shares of dropouts.

    Nothing is revealed unless the survivor set holds at least the threshold of this
    node's share holders (the larger of the run's threshold and the bank's floor) and,
    with the consistency check, at least a quorum of survivors signed exactly that set,
    which this node signed too.

    Parameters
    ----------
    min_threshold_fraction : float | None (default: None)
        The bank's own floor, as in `prepare_round`.

    Raises
    ------
    ProtocolAbort
        If the request is for a round this node did not mask, it already revealed, the
        survivor set does not partition the round or is below the threshold (stage
        ``unmask``, rule ``survivor_threshold``), consistency signatures fail (stage
        ``consistency``, rule ``signature_quorum`` or ``consistent_set``), or a share
        fails authentication. A refusal does not use up the node's one reveal.
    """
    request = _request(msg, UNMASK, Stage.unmask)
    info, state = _last_round(context, secagg, request, Stage.unmask)
    if state.get("revealed"):
        raise ProtocolAbort(Stage.unmask, f"already revealed for round {info.round}")
    survivors = _partition(request, info, Stage.unmask)
    floor = bank_threshold(info, context.node_id, min_threshold_fraction)
    check_survivors(info, me=context.node_id, survivors=survivors, min_threshold=floor)
    manifest = trusted_manifest(context, institution)
    if secagg.consistency_check:
        if state.get("signed") != statement(info, survivors=sorted(survivors)):
            raise ProtocolAbort(
                Stage.consistency,
                "the survivor set differs from the one this node signed",
                rule=Rule.consistent_set,
            )
        signers = {name: manifest.public_key(name) for name in info.node_of}
        check_signatures(
            request,
            info=info,
            survivors=sorted(survivors),
            signers=signers,
            quorum=max(info.threshold, floor),
        )
    state["revealed"] = True  # before revealing: a second request is refused even after a crash
    context.state[ROUND_STATE] = state
    keys, own = own_keys(context, institution)
    result = reveal(
        me=context.node_id,
        keys=keys,
        peers=peer_adverts(context, info),
        own=own,
        info=info,
        survivors=survivors,
        sealed_to_me=_by_node(request, SHARE_PREFIX, info),
        key_shares_to_me=_by_node(request, KEY_SHARE_PREFIX, info),
        institutions=[r.name for r in manifest.institutions],
        own_share=open_from_state(
            context, institution, state.get("own-share"), purpose=_own_share_purpose(info)
        ),
        min_threshold=floor,
    )
    return RecordDict({REVEAL: reveal_record(result, info=info, institution=institution)})


def consistency(
    msg: Message,
    context: Context,
    *,
    secagg: SecAggConfig,
    institution: str,
    min_threshold_fraction: float | None = None,
) -> RecordDict:
    """Sign the survivor set of the round this node masked (once).

    Parameters
    ----------
    min_threshold_fraction : float | None (default: None)
        The bank's own floor, as in `prepare_round`.

    Raises
    ------
    ProtocolAbort
        If the request is for another round, the set does not partition the round,
        leaves this node out, holds fewer of its share holders than the threshold (rule
        ``survivor_threshold``), or this node already signed a different set (rule
        ``consistent_set``).
    """
    request = _request(msg, CONSISTENCY, Stage.consistency)
    info, state = _last_round(context, secagg, request, Stage.consistency)
    survivors = _partition(request, info, Stage.consistency)
    if context.node_id not in survivors:
        raise ProtocolAbort(Stage.consistency, "the survivor set leaves out this node")
    check_survivors(
        info,
        me=context.node_id,
        survivors=survivors,
        min_threshold=bank_threshold(info, context.node_id, min_threshold_fraction),
        stage=Stage.consistency,
    )
    message = statement(info, survivors=sorted(survivors))
    signed = state.get("signed")
    if signed and signed != message:
        raise ProtocolAbort(
            Stage.consistency,
            "asked to sign a second, different survivor set",
            rule=Rule.consistent_set,
        )
    state["signed"] = message
    context.state[ROUND_STATE] = state
    state_dir, _ = locations(context, institution)
    signature = sign(signing_key(state_dir), message, context=CONSISTENCY_CONTEXT)
    return RecordDict({CONSISTENCY: ConfigRecord({SIGNATURE_PREFIX + institution: signature})})


def abort_record(err: ProtocolAbort) -> ConfigRecord:
    """Build the record a node replies with when it stops the protocol."""
    return ConfigRecord(
        {
            STAGE_KEY: err.stage.value,
            REASON_KEY: err.reason,
            PEER_KEY: err.peer or "",
            RULE_KEY: "" if err.rule is None else err.rule.value,
        }
    )


def bank_threshold(info: RoundInfo, node: int, min_threshold_fraction: float | None) -> int:
    """Return the bank's floor on the threshold: more than the fraction of ``node``'s holders.

    0 (no floor beyond the run's) when ``min_threshold_fraction`` is ``None``.

    Raises
    ------
    ValueError
        If ``min_threshold_fraction`` is not in [0.5, 1).
    """
    if min_threshold_fraction is None:
        return 0
    if not 0.5 <= min_threshold_fraction < 1.0:
        raise ValueError(
            f"`min_threshold_fraction` must be in [0.5, 1); got {min_threshold_fraction}"
        )
    return least_threshold(len(info.holders(node)), min_threshold_fraction)


def readvertise_record(err: Readvertised) -> dict[str, ConfigRecord]:
    """Build the records of a reply that re-advertises instead of training."""
    return {
        ADVERT: ConfigRecord({ADVERT_KEY: err.advert}),
        ABORT: ConfigRecord(
            {STAGE_KEY: Stage.advertise.value, REASON_KEY: str(err), PEER_KEY: "", RULE_KEY: ""}
        ),
    }


def _own_share_purpose(info: RoundInfo) -> str:
    return f"own-share/{info.run_tag}/{info.round}"


def _by_node(request: ConfigRecord, prefix: str, info: RoundInfo) -> dict[int, bytes]:
    return {
        info.node_of[key[len(prefix) :]]: value
        for key, value in request.items()
        if key.startswith(prefix)
        and key[len(prefix) :] in info.node_of
        and isinstance(value, bytes)
    }


def _request(msg: Message, name: str, stage: Stage) -> ConfigRecord:
    record = msg.content.config_records.get(name)
    if record is None:
        raise ProtocolAbort(stage, f"the request lacks its {name!r} record")
    return record


def _last_round(
    context: Context, secagg: SecAggConfig, request: ConfigRecord, stage: Stage
) -> tuple[RoundInfo, ConfigRecord]:
    state = context.state.config_records.get(ROUND_STATE)
    if state is None or KEY_STATE not in context.state.config_records:
        raise ProtocolAbort(stage, "this node has not masked any round")
    run_tag = str(state.get(RUN_TAG_KEY))
    check_header(request, stage, run_tag=run_tag, round=_number(state, "round"))
    names, nodes = state.get("institutions"), state.get("node-ids")
    salt = state.get(SALT_KEY)
    if not (isinstance(names, list) and isinstance(nodes, list) and isinstance(salt, bytes)):
        raise ProtocolAbort(stage, "node state lacks the last round")
    info = RoundInfo(
        run_tag=run_tag,
        salt=salt,
        round=_number(state, "round"),
        node_of={str(n): int(i) for n, i in zip(names, nodes, strict=True)},  # type: ignore[call-overload]
        degree=secagg.degree,
        threshold_setting=secagg.threshold,
    )
    return info, state


def _partition(request: ConfigRecord, info: RoundInfo, stage: Stage) -> set[int]:
    survivors, dropped = request.get(SURVIVORS_KEY), request.get(DROPPED_KEY)
    if not isinstance(survivors, list) or not isinstance(dropped, list):
        raise ProtocolAbort(stage, "the request lacks the survivor and dropped sets")
    alive = {int(n) for n in survivors}
    gone = {int(n) for n in dropped}
    if alive & gone or alive | gone != set(info.institution_of) or len(alive) != len(survivors):
        raise ProtocolAbort(stage, "the survivor and dropped sets do not partition the round")
    return alive


def _number(record: ConfigRecord, key: str) -> int:
    value = record.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ProtocolAbort(Stage.train, f"record lacks the integer {key!r}")
    return value
