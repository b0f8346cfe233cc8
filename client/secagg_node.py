"""An institution's side of secure aggregation: its run key, its peers, its reveals.

What the node keeps in Flower's ``Context.state`` between messages:

- ``fedrisk-secagg-key``: the run tag, its own signed advertisement, and its X25519
  private key **sealed** (ChaCha20-Poly1305) under the node's wrapping key, which never
  leaves its state folder;
- ``fedrisk-secagg-peers``: peers' advertisements it has verified against the manifest;
- ``fedrisk-secagg-round``: the public description of the last round it masked, and
  whether it has revealed for it (an institution reveals once per round, and masks each
  round at most once, so a replayed instruction cannot make it reuse a pairwise seed).

A node whose state is gone (a restart) has no key for the run: it makes a new one and
answers the next training instruction with a fresh signed advertisement instead of an
update; the coordinator counts it as a dropout for that round.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, RecordDict

from fedrisk.client.node_keys import locations, manifest, signing_key, wrap_key
from fedrisk.conf.secagg import SecAggConfig
from fedrisk.secure.aead import IntegrityError, open_sealed, seal
from fedrisk.secure.agreement import generate_agreement_key
from fedrisk.secure.signing import sign
from fedrisk.strategies.secagg.advert import advertise, parse_advertisement, verify_advertisement
from fedrisk.strategies.secagg.consistency import check_signatures, statement
from fedrisk.strategies.secagg.encoding import Encoding, encode_update
from fedrisk.strategies.secagg.masking import mask_input, reveal, reveal_record, shares_record
from fedrisk.strategies.secagg.round_info import RoundInfo, check_header
from fedrisk.strategies.secagg.wire import (
    ABORT,
    ADVERT,
    ADVERT_KEY,
    CONSISTENCY,
    CONSISTENCY_CONTEXT,
    DROPPED_KEY,
    MASKED,
    PEER_ADVERTS,
    PEER_KEY,
    PROTOCOL_VERSION,
    REASON_KEY,
    REVEAL,
    ROUND,
    RUN_TAG_KEY,
    SALT_KEY,
    SHARE_PREFIX,
    SHARES,
    SIGNATURE_PREFIX,
    STAGE_KEY,
    STATE_AAD_LABEL,
    SURVIVORS_KEY,
    UNMASK,
    VECTOR_KEY,
    VERSION_KEY,
    ProtocolAbort,
    Stage,
)

KEY_STATE = "fedrisk-secagg-key"
PEERS_STATE = "fedrisk-secagg-peers"
ROUND_STATE = "fedrisk-secagg-round"


class Readvertised(Exception):
    """The node had no key for this run (it restarted) and made a new advertisement."""

    def __init__(self, advert: bytes) -> None:
        super().__init__("no key for this run (node restarted?); advertised a new one")
        self.advert = advert


@dataclass(frozen=True)
class PreparedRound:
    """Everything a node needs to mask its update for one round."""

    info: RoundInfo
    me: int
    key: X25519PrivateKey
    peer_keys: dict[int, bytes]


def advertisement(context: Context, institution: str, setup: ConfigRecord) -> bytes:
    """Return this node's signed advertisement for the run, making its key if needed.

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
    held = context.state.config_records.get(KEY_STATE)
    if held is not None and held.get(RUN_TAG_KEY) == run_tag:
        return _bytes(held, ADVERT_KEY)
    return _new_key(context, institution, run_tag)


def prepare_round(
    msg: Message, context: Context, *, secagg: SecAggConfig, institution: str, server_round: int
) -> PreparedRound:
    """Check a training instruction's SecAgg+ records before any training happens.

    Raises
    ------
    Readvertised
        If the node holds no key for this run.
    ProtocolAbort
        If the instruction is malformed or replayed, or a peer's advertisement does not
        verify against the manifest (naming the peer).
    """
    record = msg.content.config_records.get(ROUND)
    if record is None:
        raise ProtocolAbort(Stage.train, "the training instruction lacks the round description")
    info = RoundInfo.from_record(
        record, round=server_round, degree=secagg.degree, threshold_setting=secagg.threshold
    )
    held = context.state.config_records.get(KEY_STATE)
    if held is None or held.get(RUN_TAG_KEY) != info.run_tag:
        raise Readvertised(_new_key(context, institution, info.run_tag))
    if info.node_of.get(institution) != context.node_id:
        raise ProtocolAbort(Stage.train, "the round does not list this node for this institution")
    last = context.state.config_records.get(ROUND_STATE)
    if last is not None and last.get(RUN_TAG_KEY) == info.run_tag:
        done = int(_number(last, "round"))
        if done >= info.round:
            raise ProtocolAbort(
                Stage.train, f"replayed instruction: round {info.round} after round {done}"
            )
    peers = _verify_peers(msg, context, info, institution=institution, own=_bytes(held, ADVERT_KEY))
    return PreparedRound(
        info=info,
        me=context.node_id,
        key=_open_key(context, institution, held),
        peer_keys=peers,
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
) -> dict[str, ArrayRecord | ConfigRecord]:
    """Encode and mask the update; remember the round; return the reply's records."""
    vector = encode_update(delta, weight=weight, loss=loss, encoding=encoding, rng=rng)
    masked = mask_input(
        vector, me=prepared.me, key=prepared.key, peer_keys=prepared.peer_keys, info=prepared.info
    )
    info = prepared.info
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
        }
    )
    return {
        MASKED: ArrayRecord({VECTOR_KEY: Array(masked.vector)}),
        SHARES: shares_record(masked, info=info, institution=institution),
    }


def unmask(msg: Message, context: Context, *, secagg: SecAggConfig, institution: str) -> RecordDict:
    """Answer the unmask request: reveal shares of survivors, seeds of dropped peers.

    Raises
    ------
    ProtocolAbort
        If the request is for a round this node did not mask, it already revealed, the
        survivor set does not partition the round, consistency signatures fail, or a
        share fails authentication.
    """
    request = _request(msg, UNMASK, Stage.unmask)
    info, state = _last_round(context, secagg, request, Stage.unmask)
    if state.get("revealed"):
        raise ProtocolAbort(Stage.unmask, f"already revealed for round {info.round}")
    survivors = _partition(request, info, Stage.unmask)
    if secagg.consistency_check:
        if state.get("signed") != statement(info, survivors=sorted(survivors)):
            raise ProtocolAbort(
                Stage.consistency, "the survivor set differs from the one this node signed"
            )
        signers = _signers(context, institution, info)
        check_signatures(request, info=info, survivors=sorted(survivors), signers=signers)
    state["revealed"] = True  # before revealing: a second request is refused even after a crash
    context.state[ROUND_STATE] = state
    held = context.state.config_records[KEY_STATE]
    sealed = {
        info.node_of[key[len(SHARE_PREFIX) :]]: value
        for key, value in request.items()
        if key.startswith(SHARE_PREFIX)
        and key[len(SHARE_PREFIX) :] in info.node_of
        and isinstance(value, bytes)
    }
    result = reveal(
        me=context.node_id,
        key=_open_key(context, institution, held),
        peer_keys=_known_keys(context, info),
        info=info,
        survivors=survivors,
        sealed_to_me=sealed,
    )
    return RecordDict({REVEAL: reveal_record(result, info=info, institution=institution)})


def consistency(
    msg: Message, context: Context, *, secagg: SecAggConfig, institution: str
) -> RecordDict:
    """Sign the survivor set of the round this node masked (once).

    Raises
    ------
    ProtocolAbort
        If the request is for another round, the set does not partition the round, or
        this node already signed a different set.
    """
    request = _request(msg, CONSISTENCY, Stage.consistency)
    info, state = _last_round(context, secagg, request, Stage.consistency)
    survivors = _partition(request, info, Stage.consistency)
    message = statement(info, survivors=sorted(survivors))
    signed = state.get("signed")
    if signed and signed != message:
        raise ProtocolAbort(Stage.consistency, "asked to sign a second, different survivor set")
    state["signed"] = message
    context.state[ROUND_STATE] = state
    state_dir, _ = locations(context, institution)
    signature = sign(signing_key(state_dir), message, context=CONSISTENCY_CONTEXT)
    return RecordDict({CONSISTENCY: ConfigRecord({SIGNATURE_PREFIX + institution: signature})})


def abort_record(err: ProtocolAbort) -> ConfigRecord:
    """Build the record a node replies with when it stops the protocol."""
    return ConfigRecord(
        {STAGE_KEY: err.stage.value, REASON_KEY: err.reason, PEER_KEY: err.peer or ""}
    )


def readvertise_record(err: Readvertised) -> dict[str, ConfigRecord]:
    """Build the records of a reply that re-advertises instead of training."""
    return {
        ADVERT: ConfigRecord({ADVERT_KEY: err.advert}),
        ABORT: ConfigRecord({STAGE_KEY: Stage.advertise.value, REASON_KEY: str(err), PEER_KEY: ""}),
    }


# -- state ------------------------------------------------------------------------------


def _new_key(context: Context, institution: str, run_tag: str) -> bytes:
    state_dir, _ = locations(context, institution)
    key = generate_agreement_key()
    advert = advertise(
        signing_key(state_dir),
        key,
        run_tag=run_tag,
        institution=institution,
        node_id=context.node_id,
    ).to_bytes()
    raw = key.private_bytes_raw()
    context.state[KEY_STATE] = ConfigRecord(
        {
            RUN_TAG_KEY: run_tag,
            ADVERT_KEY: advert,
            "sealed": seal(
                wrap_key(state_dir), raw, associated_data=_state_aad(run_tag, institution)
            ),
        }
    )
    context.state[PEERS_STATE] = ConfigRecord({RUN_TAG_KEY: run_tag})
    return advert


def _open_key(context: Context, institution: str, held: ConfigRecord) -> X25519PrivateKey:
    state_dir, _ = locations(context, institution)
    run_tag = str(held.get(RUN_TAG_KEY))
    try:
        raw = open_sealed(
            wrap_key(state_dir),
            _bytes(held, "sealed"),
            associated_data=_state_aad(run_tag, institution),
        )
    except IntegrityError:
        raise ProtocolAbort(
            Stage.train, "this node's sealed key does not open (state tampered or key renewed)"
        ) from None
    return X25519PrivateKey.from_private_bytes(raw)


def _state_aad(run_tag: str, institution: str) -> bytes:
    return STATE_AAD_LABEL + b"\x00" + run_tag.encode() + b"\x00" + institution.encode()


def _verify_peers(
    msg: Message, context: Context, info: RoundInfo, *, institution: str, own: bytes
) -> dict[int, bytes]:
    cache = context.state.config_records.get(PEERS_STATE)
    if cache is None or cache.get(RUN_TAG_KEY) != info.run_tag:
        cache = ConfigRecord({RUN_TAG_KEY: info.run_tag})
    incoming = msg.content.config_records.get(PEER_ADVERTS, ConfigRecord())
    trusted = None
    for peer, blob in incoming.items():
        if peer == institution:
            if blob != own:
                raise ProtocolAbort(
                    Stage.advertise,
                    "the coordinator relays a key for this institution that it did not issue",
                    peer=peer,
                )
            continue
        if trusted is None:
            _, manifest_path = locations(context, institution)
            trusted = manifest(manifest_path)
        if peer not in {r.name for r in trusted.institutions}:
            raise ProtocolAbort(Stage.advertise, "not in the consortium manifest", peer=peer)
        advert = verify_advertisement(
            blob,
            peer=peer,
            signer=trusted.public_key(peer),
            run_tag=info.run_tag,
            node_id=info.node_of.get(peer),
        )
        previous = cache.get("ad:" + peer)
        if (
            isinstance(previous, bytes)
            and previous != blob
            and parse_advertisement(previous, peer=peer).issued_ns >= advert.issued_ns
        ):
            raise ProtocolAbort(
                Stage.advertise, "relayed an older advertisement than one seen", peer=peer
            )
        cache["ad:" + peer] = blob
    context.state[PEERS_STATE] = cache
    return _known_keys(context, info, skip=institution)


def _known_keys(context: Context, info: RoundInfo, skip: str | None = None) -> dict[int, bytes]:
    cache = context.state.config_records.get(PEERS_STATE, ConfigRecord())
    keys = {}
    for peer, node in info.node_of.items():
        if node == context.node_id or peer == skip:
            continue
        blob = cache.get("ad:" + peer)
        if not isinstance(blob, bytes):
            raise ProtocolAbort(Stage.advertise, "no verified key advertisement", peer=peer)
        advert = parse_advertisement(blob, peer=peer)
        if advert.node_id != node:
            raise ProtocolAbort(
                Stage.advertise, f"advertised node {advert.node_id}, listed as {node}", peer=peer
            )
        keys[node] = advert.public_key
    return keys


def _signers(context: Context, institution: str, info: RoundInfo) -> dict[str, object]:
    _, manifest_path = locations(context, institution)
    trusted = manifest(manifest_path)
    return {name: trusted.public_key(name) for name in info.node_of}


def _request(msg: Message, name: str, stage: Stage) -> ConfigRecord:
    record = msg.content.config_records.get(name)
    if record is None:
        raise ProtocolAbort(stage, f"the request lacks its {name!r} record")
    return record


def _last_round(
    context: Context, secagg: SecAggConfig, request: ConfigRecord, stage: Stage
) -> tuple[RoundInfo, ConfigRecord]:
    state = context.state.config_records.get(ROUND_STATE)
    if state is None:
        raise ProtocolAbort(stage, "this node has not masked any round")
    check_header(
        request, stage, run_tag=str(state.get(RUN_TAG_KEY)), round=int(_number(state, "round"))
    )
    names, nodes = state.get("institutions"), state.get("node-ids")
    info = RoundInfo(
        run_tag=str(state.get(RUN_TAG_KEY)),
        salt=_bytes(state, SALT_KEY),
        round=int(_number(state, "round")),
        node_of=dict(zip(names, nodes, strict=True)),  # type: ignore[arg-type]
        degree=secagg.degree,
        threshold_setting=secagg.threshold,
    )
    return info, state


def _partition(request: ConfigRecord, info: RoundInfo, stage: Stage) -> set[int]:
    survivors, dropped = request.get(SURVIVORS_KEY), request.get(DROPPED_KEY)
    if not isinstance(survivors, list) or not isinstance(dropped, list):
        raise ProtocolAbort(stage, "the request lacks the survivor and dropped sets")
    alive, gone = set(survivors), set(dropped)
    if alive & gone or alive | gone != set(info.institution_of) or len(alive) != len(survivors):
        raise ProtocolAbort(stage, "the survivor and dropped sets do not partition the round")
    return alive  # type: ignore[return-value]


def _bytes(record: ConfigRecord, key: str) -> bytes:
    value = record.get(key)
    if not isinstance(value, bytes):
        raise ProtocolAbort(Stage.train, f"node state lacks {key!r}")
    return value


def _number(record: ConfigRecord, key: str) -> float:
    value = record.get(key)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ProtocolAbort(Stage.train, f"node state lacks {key!r}")
    return float(value)
