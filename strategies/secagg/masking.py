"""An institution's half of a round: mask its vector, seal its shares, reveal at unmask.

Masked vector of node ``u`` (words modulo ``2**bits``)::

    y_u = x_u + PRG(b_u) + Σ_{v ∈ N(u), u < v} PRG(s_uv) − Σ_{v ∈ N(u), v < u} PRG(s_uv)

with ``b_u`` a fresh 32-byte self-mask seed from ``os.urandom`` and ``s_uv`` the round's
pairwise seed (HKDF over the run's X25519 secret, bound to run, round and both node ids).
``b_u`` is Shamir-shared among ``N(u)``; each share is sealed with ChaCha20-Poly1305 under
a key only ``u`` and its recipient can derive, with stage, run, round, sender, recipient
and share index as associated data. At unmask, ``u`` reveals the self-mask shares of
neighbours that sent a masked vector and the pairwise seeds of neighbours that did not,
never both for the same neighbour, and only once per round.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping, Set
from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from flwr.app import ConfigRecord

from fedrisk.secure.aead import IntegrityError, open_sealed, seal
from fedrisk.secure.agreement import derive_pair_seed, derive_share_key
from fedrisk.secure.masks import SEED_SIZE, mask_vector
from fedrisk.secure.shamir import split_seed
from fedrisk.strategies.secagg.round_info import RoundInfo, header
from fedrisk.strategies.secagg.wire import (
    PAIR_SEED_PREFIX,
    REVEALED_SHARE_PREFIX,
    SHARE_AAD_LABEL,
    SHARE_PREFIX,
    ProtocolAbort,
    Stage,
)


@dataclass(frozen=True)
class MaskedInput:
    """What one institution sends in its training reply."""

    vector: np.ndarray
    sealed_shares: dict[int, bytes]  # recipient node id → sealed (index || share)


@dataclass(frozen=True)
class Reveal:
    """What one institution reveals in the unmask round."""

    shares: dict[int, bytes]  # owner node id → (index || share) of the owner's self-mask
    pair_seeds: dict[int, bytes]  # dropped neighbour node id → the round's pairwise seed


def mask_input(
    vector: np.ndarray,
    *,
    me: int,
    key: X25519PrivateKey,
    peer_keys: Mapping[int, bytes],
    info: RoundInfo,
) -> MaskedInput:
    """Mask ``vector`` for this round and seal the self-mask shares to the neighbours.

    Raises
    ------
    ProtocolAbort
        At stage ``train`` if a neighbour's public key is missing or invalid.
    """
    bits = vector.dtype.itemsize * 8
    self_seed = os.urandom(SEED_SIZE)
    masked = vector + mask_vector(self_seed, vector.size, bits=bits)
    peers = info.graph[me]
    for peer in peers:
        seed = _pair_seed(key, peer_keys, me=me, peer=peer, info=info, stage=Stage.train)
        pad = mask_vector(seed, vector.size, bits=bits)
        if me < peer:
            np.add(masked, pad, out=masked)
        else:
            np.subtract(masked, pad, out=masked)
    shares = split_seed(self_seed, threshold=info.threshold, shares=len(peers))
    sealed = {
        peer: seal(
            _share_key(key, peer_keys, me=me, peer=peer, info=info),
            bytes([index]) + share,
            associated_data=share_aad(info, sender=me, recipient=peer, index=index),
        )
        for (index, share), peer in zip(shares, peers, strict=True)
    }
    return MaskedInput(vector=masked, sealed_shares=sealed)


def reveal(
    *,
    me: int,
    key: X25519PrivateKey,
    peer_keys: Mapping[int, bytes],
    info: RoundInfo,
    survivors: Set[int],
    sealed_to_me: Mapping[int, bytes],
) -> Reveal:
    """Answer the unmask request for the round described by ``info``.

    Parameters
    ----------
    survivors : Set[int]
        Participants whose masked vector the coordinator received; every other
        participant dropped before masking.
    sealed_to_me : Mapping[int, bytes]
        Sealed shares addressed to ``me``, keyed by sender.

    Raises
    ------
    ProtocolAbort
        At stage ``unmask`` if ``me`` is not a survivor, the survivor set names a node
        outside the round, or a share fails authentication (naming its sender).
    """
    participants = set(info.institution_of)
    if not survivors <= participants or me not in survivors:
        raise ProtocolAbort(Stage.unmask, "the survivor set does not match this round")
    peers = info.graph[me]
    shares: dict[int, bytes] = {}
    for sender in sorted(set(peers) & survivors):
        blob = sealed_to_me.get(sender)
        if blob is None:
            continue  # the coordinator lost it; the threshold absorbs that
        index = peers_index(info, owner=sender, holder=me)
        try:
            plain = open_sealed(
                _share_key(key, peer_keys, me=me, peer=sender, info=info),
                blob,
                associated_data=share_aad(info, sender=sender, recipient=me, index=index),
            )
        except IntegrityError:
            raise ProtocolAbort(
                Stage.unmask,
                "a self-mask share failed authentication",
                peer=info.institution_of[sender],
            ) from None
        shares[sender] = plain
    seeds = {
        peer: _pair_seed(key, peer_keys, me=me, peer=peer, info=info, stage=Stage.unmask)
        for peer in sorted(set(peers) - survivors)
    }
    return Reveal(shares=shares, pair_seeds=seeds)


def peers_index(info: RoundInfo, *, owner: int, holder: int) -> int:
    """Shamir index (1-based) of the share ``owner`` gave ``holder``."""
    return info.graph[owner].index(holder) + 1


def pair_seed_for(
    key: X25519PrivateKey, peer_public: bytes, *, me: int, peer: int, info: RoundInfo
) -> bytes:
    """Derive the round's pairwise seed between ``me`` and ``peer``."""
    return derive_pair_seed(
        key,
        peer_public,
        run_id=info.run_tag,
        round=info.round,
        node_a=me,
        node_b=peer,
        salt=info.salt,
    )


def share_aad(info: RoundInfo, *, sender: int, recipient: int, index: int) -> bytes:
    """Associated data of a sealed share: label, run, round, sender, recipient, index."""
    tag = info.run_tag.encode("utf-8")
    return (
        SHARE_AAD_LABEL
        + b"\x00"
        + struct.pack(">H", len(tag))
        + tag
        + struct.pack(">IQQB", info.round, sender, recipient, index)
    )


def _pair_seed(
    key: X25519PrivateKey,
    peer_keys: Mapping[int, bytes],
    *,
    me: int,
    peer: int,
    info: RoundInfo,
    stage: Stage,
) -> bytes:
    public = _peer_key(peer_keys, peer, info, stage)
    try:
        return pair_seed_for(key, public, me=me, peer=peer, info=info)
    except ValueError as err:
        raise ProtocolAbort(stage, str(err), peer=info.institution_of[peer]) from None


def _share_key(
    key: X25519PrivateKey, peer_keys: Mapping[int, bytes], *, me: int, peer: int, info: RoundInfo
) -> bytes:
    public = _peer_key(peer_keys, peer, info, Stage.train)
    return derive_share_key(
        key, public, run_id=info.run_tag, round=info.round, node_a=me, node_b=peer, salt=info.salt
    )


def _peer_key(peer_keys: Mapping[int, bytes], peer: int, info: RoundInfo, stage: Stage) -> bytes:
    public = peer_keys.get(peer)
    if public is None:
        raise ProtocolAbort(stage, "no verified key advertisement", peer=info.institution_of[peer])
    return public


def reveal_record(result: Reveal, *, info: RoundInfo, institution: str) -> ConfigRecord:
    """Build the unmask reply: header, then ``share-of:<owner>`` and ``pair-seed:<peer>``."""
    record = ConfigRecord(header(run_tag=info.run_tag, round=info.round, institution=institution))
    for owner, share in result.shares.items():
        record[REVEALED_SHARE_PREFIX + info.institution_of[owner]] = share
    for peer, seed in result.pair_seeds.items():
        record[PAIR_SEED_PREFIX + info.institution_of[peer]] = seed
    return record


def shares_record(masked: MaskedInput, *, info: RoundInfo, institution: str) -> ConfigRecord:
    """Build the training reply's share record: header, then ``share:<recipient>``."""
    record = ConfigRecord(header(run_tag=info.run_tag, round=info.round, institution=institution))
    for peer, blob in masked.sealed_shares.items():
        record[SHARE_PREFIX + info.institution_of[peer]] = blob
    return record
