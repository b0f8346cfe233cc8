"""What a node keeps between secure-aggregation messages, in Flower's ``Context.state``.

- ``fedrisk-secagg-key``: the run tag, the node's own signed advertisement, and its
  32-byte master secret **sealed** (ChaCha20-Poly1305) under the node's wrapping key,
  which never leaves its state folder;
- ``fedrisk-secagg-peers``: peers' advertisements it has verified against the manifest;
- ``fedrisk-secagg-round``: the public description of the last round it masked, and
  what it has done in it (signed the survivor set, revealed): it masks each round at
  most once and reveals at most once, so a replayed instruction cannot make it reuse a
  pairwise seed or reveal twice.
"""

from __future__ import annotations

from flwr.app import ConfigRecord, Context

from fedrisk.client.node_keys import locations, manifest, signing_key, wrap_key
from fedrisk.privacy.manifest import ConsortiumManifest
from fedrisk.secure.aead import IntegrityError, open_sealed, seal
from fedrisk.strategies.secagg.advert import Advertisement, advertise, parse_advertisement
from fedrisk.strategies.secagg.advert import verify_advertisement as verify_advert
from fedrisk.strategies.secagg.keys import NodeKeys
from fedrisk.strategies.secagg.round_info import RoundInfo
from fedrisk.strategies.secagg.wire import (
    ADVERT_KEY,
    RUN_TAG_KEY,
    STATE_AAD_LABEL,
    ProtocolAbort,
    Stage,
)

KEY_STATE = "fedrisk-secagg-key"
PEERS_STATE = "fedrisk-secagg-peers"
ROUND_STATE = "fedrisk-secagg-round"
_AD = "ad:"


def new_keys(context: Context, institution: str, run_tag: str, rounds: range) -> bytes:
    """Make fresh keys for ``rounds`` of the run, keep them sealed, return the advertisement."""
    state_dir, _ = locations(context, institution)
    keys = NodeKeys.generate(run_tag)
    advert = advertise(
        signing_key(state_dir),
        keys,
        institution=institution,
        node_id=context.node_id,
        rounds=rounds,
    ).to_bytes()
    context.state[KEY_STATE] = ConfigRecord(
        {
            RUN_TAG_KEY: run_tag,
            ADVERT_KEY: advert,
            "sealed": seal(
                wrap_key(state_dir), keys.master, associated_data=_aad(run_tag, institution)
            ),
        }
    )
    return advert


def held_advert(context: Context, run_tag: str) -> bytes | None:
    """Return this node's own advertisement for ``run_tag``, if it holds keys for that run."""
    held = context.state.config_records.get(KEY_STATE)
    if held is None or held.get(RUN_TAG_KEY) != run_tag:
        return None
    return _bytes(held, ADVERT_KEY)


def own_keys(context: Context, institution: str) -> tuple[NodeKeys, Advertisement]:
    """Unseal this node's keys and parse its own advertisement.

    Raises
    ------
    ProtocolAbort
        If the node holds no keys or the sealed master does not open.
    """
    held = context.state.config_records.get(KEY_STATE)
    if held is None:
        raise ProtocolAbort(Stage.train, "this node holds no keys for the run")
    run_tag = str(held.get(RUN_TAG_KEY))
    state_dir, _ = locations(context, institution)
    try:
        master = open_sealed(
            wrap_key(state_dir), _bytes(held, "sealed"), associated_data=_aad(run_tag, institution)
        )
    except IntegrityError:
        raise ProtocolAbort(
            Stage.train, "this node's sealed keys do not open (state tampered or key renewed)"
        ) from None
    return NodeKeys(master=master, run_tag=run_tag), parse_advertisement(
        _bytes(held, ADVERT_KEY), peer=institution
    )


def seal_in_state(context: Context, institution: str, secret: bytes, *, purpose: str) -> bytes:
    """Seal ``secret`` under the node's wrapping key, bound to ``purpose`` and the node."""
    state_dir, _ = locations(context, institution)
    return seal(wrap_key(state_dir), secret, associated_data=_aad(purpose, institution))


def open_from_state(context: Context, institution: str, blob: object, *, purpose: str) -> bytes:
    """Open what `seal_in_state` sealed for ``purpose``.

    Raises
    ------
    ProtocolAbort
        If ``blob`` is missing or does not open (tampered state or a renewed key).
    """
    state_dir, _ = locations(context, institution)
    if not isinstance(blob, bytes):
        raise ProtocolAbort(Stage.unmask, "node state lacks a sealed secret")
    try:
        return open_sealed(wrap_key(state_dir), blob, associated_data=_aad(purpose, institution))
    except IntegrityError:
        raise ProtocolAbort(
            Stage.unmask, "a sealed secret in the node state does not open"
        ) from None


def trusted_manifest(context: Context, institution: str) -> ConsortiumManifest:
    """Load the consortium manifest this node trusts."""
    _, path = locations(context, institution)
    return manifest(path)


def verify_peers(
    context: Context,
    incoming: ConfigRecord,
    *,
    institution: str,
    run_tag: str,
    node_of: dict[str, int] | None = None,
) -> None:
    """Verify relayed advertisements against the manifest and cache them.

    Raises
    ------
    ProtocolAbort
        Naming the peer, if an advertisement does not verify, names another node than
        the round lists, is older than one already seen, or the coordinator relays a
        key for this institution that it did not issue.
    """
    own = held_advert(context, run_tag)
    cache = _cache(context, run_tag)
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
        trusted = trusted or trusted_manifest(context, institution)
        if peer not in {r.name for r in trusted.institutions}:
            raise ProtocolAbort(Stage.advertise, "not in the consortium manifest", peer=peer)
        advert = verify_advert(
            blob,
            peer=peer,
            signer=trusted.public_key(peer),
            run_tag=run_tag,
            node_id=None if node_of is None else node_of.get(peer),
        )
        previous = cache.get(_AD + peer)
        if (
            isinstance(previous, bytes)
            and previous != blob
            and parse_advertisement(previous, peer=peer).issued_ns >= advert.issued_ns
        ):
            raise ProtocolAbort(
                Stage.advertise, "relayed an older advertisement than one seen", peer=peer
            )
        cache[_AD + peer] = blob
    context.state[PEERS_STATE] = cache


def peer_adverts(context: Context, info: RoundInfo) -> dict[int, Advertisement]:
    """Return the verified advertisements of the round's other participants, by node id.

    Raises
    ------
    ProtocolAbort
        Naming the peer, if one has no verified advertisement or it names another node.
    """
    cache = _cache(context, info.run_tag)
    out = {}
    for peer, node in info.node_of.items():
        if node == context.node_id:
            continue
        blob = cache.get(_AD + peer)
        if not isinstance(blob, bytes):
            raise ProtocolAbort(Stage.advertise, "no verified key advertisement", peer=peer)
        advert = parse_advertisement(blob, peer=peer)
        if advert.node_id != node:
            raise ProtocolAbort(
                Stage.advertise, f"advertised node {advert.node_id}, listed as {node}", peer=peer
            )
        out[node] = advert
    return out


def cached_adverts(context: Context, run_tag: str) -> dict[str, Advertisement]:
    """Return every verified peer advertisement of the run, by institution."""
    cache = _cache(context, run_tag)
    return {
        key[len(_AD) :]: parse_advertisement(value, peer=key[len(_AD) :])
        for key, value in cache.items()
        if key.startswith(_AD) and isinstance(value, bytes)
    }


def _cache(context: Context, run_tag: str) -> ConfigRecord:
    cache = context.state.config_records.get(PEERS_STATE)
    if cache is None or cache.get(RUN_TAG_KEY) != run_tag:
        return ConfigRecord({RUN_TAG_KEY: run_tag})
    return cache


def _aad(run_tag: str, institution: str) -> bytes:
    return STATE_AAD_LABEL + b"\x00" + run_tag.encode() + b"\x00" + institution.encode()


def _bytes(record: ConfigRecord, key: str) -> bytes:
    value = record.get(key)
    if not isinstance(value, bytes):
        raise ProtocolAbort(Stage.train, f"node state lacks {key!r}")
    return value
