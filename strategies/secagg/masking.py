"""An institution's half of a round: mask its vector, seal its shares, reveal at unmask.

Masked vector of node ``u`` in round ``r`` (words modulo ``2**bits``)::

    y_u = x_u + PRG(b_u) + Σ_{v ∈ N(u), u < v} PRG(s_uv) − Σ_{v ∈ N(u), v < u} PRG(s_uv)

with ``b_u`` a fresh 32-byte self-mask seed from ``os.urandom`` and ``s_uv`` the pairwise
seed: HKDF-SHA256 over the X25519 exchange of ``u``'s and ``v``'s round-``r`` keys, bound
to run, round and both node ids. ``b_u`` is Shamir-shared among ``N(u)``; each share is
sealed with ChaCha20-Poly1305 under a key derived from the two identity keys, with kind,
run, round, sender, recipient and share index as associated data. At unmask, ``u``
reveals the self-mask shares of neighbours that sent a masked vector and its shares of
the round keys of participants that did not — never both for the same institution, and
only once per round.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, field

import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from flwr.app import ConfigRecord

from fedrisk.secure.aead import IntegrityError, open_sealed, seal
from fedrisk.secure.agreement import derive_pair_seed, derive_share_key
from fedrisk.secure.masks import SEED_SIZE, mask_vector
from fedrisk.secure.shamir import split_seed
from fedrisk.strategies.secagg.advert import Advertisement
from fedrisk.strategies.secagg.key_shares import open_round_key_share
from fedrisk.strategies.secagg.keys import NodeKeys
from fedrisk.strategies.secagg.round_info import RoundInfo, header
from fedrisk.strategies.secagg.wire import (
    REVEALED_KEY_PREFIX,
    REVEALED_SHARE_PREFIX,
    SELF_MASK_SHARE,
    SHARE_AAD_LABEL,
    SHARE_PREFIX,
    ProtocolAbort,
    Rule,
    Stage,
)


@dataclass(frozen=True)
class MaskedInput:
    """What one institution sends in its training reply."""

    vector: np.ndarray
    sealed_shares: dict[int, bytes]  # recipient node id → sealed (index || share)
    own_share: bytes = field(repr=False, default=b"")  # index || share kept by the sender


@dataclass(frozen=True)
class Reveal:
    """What one institution reveals in the unmask round."""

    shares: dict[int, bytes]  # survivor node id → (index || share) of its self-mask
    key_shares: dict[int, bytes]  # dropped node id → (index || share) of its round key


def mask_input(
    vector: np.ndarray,
    *,
    me: int,
    keys: NodeKeys,
    peers: Mapping[int, Advertisement],
    info: RoundInfo,
) -> MaskedInput:
    """Mask ``vector`` for this round and seal the self-mask shares to the neighbours.

    Parameters
    ----------
    vector : np.ndarray
        The encoded update (``uint32`` or ``uint64``).
    me : int
        This node's id.
    keys : NodeKeys
        This institution's keys for the run.
    peers : Mapping[int, Advertisement]
        Verified advertisements of (at least) this node's neighbours.
    info : RoundInfo
        The round.

    Raises
    ------
    ProtocolAbort
        At stage ``train`` if a neighbour's advertisement is missing or does not cover
        this round.
    """
    bits = vector.dtype.itemsize * 8
    self_seed = os.urandom(SEED_SIZE)
    masked = vector + mask_vector(self_seed, vector.size, bits=bits)
    round_key = keys.round_key(info.round)
    identity = keys.identity()
    neighbours = info.graph[me]
    for peer in neighbours:
        seed = pair_seed(round_key, _advert(peers, peer, info), me=me, peer=peer, info=info)
        pad = mask_vector(seed, vector.size, bits=bits)
        if me < peer:
            np.add(masked, pad, out=masked)
        else:
            np.subtract(masked, pad, out=masked)
    shares = split_seed(self_seed, threshold=info.threshold, shares=len(neighbours) + 1)
    own_index, own_share = shares.pop()  # the last share stays with the sender
    sealed = {
        peer: seal(
            _share_key(identity, _advert(peers, peer, info), me=me, peer=peer, info=info),
            bytes([index]) + share,
            associated_data=share_aad(info, sender=me, recipient=peer, index=index),
        )
        for (index, share), peer in zip(shares, neighbours, strict=True)
    }
    return MaskedInput(
        vector=masked, sealed_shares=sealed, own_share=bytes([own_index]) + own_share
    )


def reveal(
    *,
    me: int,
    keys: NodeKeys,
    peers: Mapping[int, Advertisement],
    own: Advertisement,
    info: RoundInfo,
    survivors: Set[int],
    sealed_to_me: Mapping[int, bytes],
    key_shares_to_me: Mapping[int, bytes],
    institutions: Sequence[str],
    own_share: bytes,
    min_threshold: int = 0,
) -> Reveal:
    """Answer the unmask request for the round described by ``info``.

    Parameters
    ----------
    survivors : Set[int]
        Participants whose masked vector the coordinator received; every other
        participant dropped before masking.
    sealed_to_me : Mapping[int, bytes]
        Sealed self-mask shares addressed to ``me``, by sender (survivors only).
    key_shares_to_me : Mapping[int, bytes]
        Sealed shares of dropped participants' round keys held by ``me``, by owner.
    institutions : Sequence[str]
        Every institution of the consortium manifest (fixes share indices).
    own_share : bytes
        ``index || share`` of its own self-mask that ``me`` kept when masking.
    min_threshold : int (default: 0)
        The bank's own minimum threshold; the one enforced is the larger of it and the
        round's.

    Raises
    ------
    ProtocolAbort
        At stage ``unmask`` if ``me`` is not a survivor, the survivor set names a node
        outside the round, fewer of ``me``'s share holders (its neighbours and itself)
        survive than the threshold (rule ``survivor_threshold``; nothing is revealed),
        or a share fails authentication (naming its sender).
    """
    participants = set(info.institution_of)
    if not survivors <= participants or me not in survivors:
        raise ProtocolAbort(Stage.unmask, "the survivor set does not match this round")
    check_survivors(info, me=me, survivors=survivors, min_threshold=min_threshold)
    identity = keys.identity()
    neighbours = info.graph[me]
    shares: dict[int, bytes] = {me: own_share}
    for sender in sorted(set(neighbours) & survivors):
        blob = sealed_to_me.get(sender)
        if blob is None:
            continue  # the coordinator lost it; the threshold absorbs that
        index = peers_index(info, owner=sender, holder=me)
        try:
            shares[sender] = open_sealed(
                _share_key(identity, _advert(peers, sender, info), me=me, peer=sender, info=info),
                blob,
                associated_data=share_aad(info, sender=sender, recipient=me, index=index),
            )
        except IntegrityError:
            raise ProtocolAbort(
                Stage.unmask,
                "a self-mask share failed authentication",
                peer=info.institution_of[sender],
            ) from None
    key_shares = {
        owner: open_round_key_share(
            identity,
            blob,
            owner=_advert(peers, owner, info),
            holder=own,
            institutions=institutions,
            round=info.round,
            salt=info.salt,
        )
        for owner, blob in sorted(key_shares_to_me.items())
        if owner in participants - survivors
    }
    return Reveal(shares=shares, key_shares=key_shares)


def check_survivors(
    info: RoundInfo,
    *,
    me: int,
    survivors: Set[int],
    min_threshold: int = 0,
    stage: Stage = Stage.unmask,
) -> None:
    """Refuse a survivor set holding fewer of ``me``'s share holders than the threshold.

    The threshold is the larger of the round's and ``min_threshold`` (the bank's own).
    A bank that revealed for such a set would help a coordinator that shows each bank
    another set to collect both secrets of one institution.

    Raises
    ------
    ProtocolAbort
        At ``stage``, rule ``survivor_threshold``.
    """
    threshold = max(info.threshold, min_threshold)
    holders = info.holders(me)
    present = len(set(holders) & survivors)
    if present < threshold:
        raise ProtocolAbort(
            stage,
            f"the survivor set must hold at least {threshold} of this node's {len(holders)} "
            f"share holders (itself and its neighbours); got {present}",
            rule=Rule.survivor_threshold,
        )


def peers_index(info: RoundInfo, *, owner: int, holder: int) -> int:
    """Shamir index (1-based) of the self-mask share of ``owner`` held by ``holder``.

    Neighbours hold indices 1 to the degree, in node-id order; the owner keeps the last.
    """
    peers = info.graph[owner]
    return len(peers) + 1 if holder == owner else peers.index(holder) + 1


def pair_seed(
    round_key: X25519PrivateKey, advert: Advertisement, *, me: int, peer: int, info: RoundInfo
) -> bytes:
    """Derive the round's pairwise seed of ``me`` (holding ``round_key``) and ``peer``.

    Raises
    ------
    ProtocolAbort
        Naming the peer, if its advertisement does not cover the round or its key is
        invalid (a low-order point).
    """
    try:
        return derive_pair_seed(
            round_key,
            advert.round_key(info.round),
            run_id=info.run_tag,
            round=info.round,
            node_a=me,
            node_b=peer,
            salt=info.salt,
        )
    except ValueError as err:
        raise ProtocolAbort(Stage.train, str(err), peer=advert.institution) from None


def share_aad(info: RoundInfo, *, sender: int, recipient: int, index: int) -> bytes:
    """Associated data of a sealed self-mask share: kind, run, round, ids, index."""
    tag = info.run_tag.encode("utf-8")
    return (
        SHARE_AAD_LABEL
        + b"\x00"
        + SELF_MASK_SHARE
        + b"\x00"
        + struct.pack(">H", len(tag))
        + tag
        + struct.pack(">IQQB", info.round, sender, recipient, index)
    )


def reveal_record(result: Reveal, *, info: RoundInfo, institution: str) -> ConfigRecord:
    """Build the unmask reply: header, ``share-of:<owner>`` and ``key-share-of:<owner>``."""
    record = header(run_tag=info.run_tag, round=info.round, institution=institution)
    for owner, share in result.shares.items():
        record[REVEALED_SHARE_PREFIX + info.institution_of[owner]] = share
    for owner, share in result.key_shares.items():
        record[REVEALED_KEY_PREFIX + info.institution_of[owner]] = share
    return record


def shares_record(masked: MaskedInput, *, info: RoundInfo, institution: str) -> ConfigRecord:
    """Build the training reply's share record: header, then ``share:<recipient>``."""
    record = header(run_tag=info.run_tag, round=info.round, institution=institution)
    for peer, blob in masked.sealed_shares.items():
        record[SHARE_PREFIX + info.institution_of[peer]] = blob
    return record


def _share_key(
    identity: X25519PrivateKey, advert: Advertisement, *, me: int, peer: int, info: RoundInfo
) -> bytes:
    return derive_share_key(
        identity,
        advert.identity_key,
        run_id=info.run_tag,
        round=info.round,
        node_a=me,
        node_b=peer,
        salt=info.salt,
    )


def _advert(peers: Mapping[int, Advertisement], peer: int, info: RoundInfo) -> Advertisement:
    advert = peers.get(peer)
    if advert is None:
        raise ProtocolAbort(
            Stage.train, "no verified key advertisement", peer=info.institution_of.get(peer)
        )
    return advert
