"""Shares of round keys, handed out once per advertisement, opened only for dropouts.

When an institution advertises its keys, it splits each of its round keys into Shamir
shares for every other institution of the consortium manifest (a strict majority of
them reconstructs it) and seals each share to its holder's identity key. The
coordinator keeps the sealed shares. If the institution later drops out of a round
before masking, the survivors open their shares of *that round's* key, and the
coordinator removes the pairwise masks the survivors made with it — including masks of
survivors that go silent at unmask, which is what a single revealed pairwise seed could
not cover. A round key revealed this way says nothing about the institution's other
rounds, its identity key, or its self-masks.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Mapping, Sequence

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from fedrisk.secure.aead import IntegrityError, open_sealed, seal
from fedrisk.secure.agreement import KEY_SHARE_KEY_LABEL, derive_share_key, public_bytes
from fedrisk.secure.shamir import combine_seed, split_seed
from fedrisk.strategies.secagg.advert import Advertisement
from fedrisk.strategies.secagg.keys import NodeKeys
from fedrisk.strategies.secagg.wire import ROUND_KEY_SHARE, SHARE_AAD_LABEL, ProtocolAbort, Stage


def holders_of(owner: str, institutions: Iterable[str]) -> list[str]:
    """Who holds shares of ``owner``'s round keys: every other institution, sorted."""
    return sorted(set(institutions) - {owner})


def key_share_threshold(holders: int) -> int:
    """Shares that reconstruct a round key: a strict majority of its holders (at least 2)."""
    return max(2, holders // 2 + 1)


def seal_round_key_shares(
    keys: NodeKeys,
    *,
    owner: Advertisement,
    holders: Mapping[str, Advertisement],
    institutions: Sequence[str],
    rounds: range,
    salt: bytes,
) -> dict[tuple[str, int], bytes]:
    """Split each round key in ``rounds`` and seal one share to each advertised holder.

    Parameters
    ----------
    keys : NodeKeys
        The owner's keys.
    owner : Advertisement
        The owner's own advertisement (its node id and name).
    holders : Mapping[str, Advertisement]
        Verified advertisements of the other institutions; those without one get no
        share (their index stays reserved).
    institutions : Sequence[str]
        Every institution of the consortium manifest.
    rounds : range
        Rounds whose keys are shared.
    salt : bytes
        The run's HKDF salt.

    Returns
    -------
    dict[tuple[str, int], bytes]
        ``(holder, round) → sealed (index || share)``.
    """
    order = holders_of(owner.institution, institutions)
    threshold = key_share_threshold(len(order))
    identity = keys.identity()
    sealing = {
        name: _sealing_key(identity, advert, owner=owner, holder=advert, salt=salt)
        for name, advert in holders.items()
        if name in order
    }
    out: dict[tuple[str, int], bytes] = {}
    for round in rounds:
        secret = keys.round_key(round).private_bytes_raw()
        shares = split_seed(secret, threshold=threshold, shares=len(order))
        for (index, share), holder in zip(shares, order, strict=True):
            if holder not in sealing:
                continue
            advert, per_round = sealing[holder]
            out[(holder, round)] = seal(
                per_round(round),
                bytes([index]) + share,
                associated_data=key_share_aad(
                    keys.run_tag, round=round, owner=owner, holder=advert, index=index
                ),
            )
    return out


def open_round_key_share(
    identity: X25519PrivateKey,
    blob: bytes,
    *,
    owner: Advertisement,
    holder: Advertisement,
    institutions: Sequence[str],
    round: int,
    salt: bytes,
) -> bytes:
    """Open the share of ``owner``'s round key sealed to ``holder``: ``index || share``.

    Raises
    ------
    ProtocolAbort
        At stage ``unmask``, naming the owner, if the share fails authentication.
    """
    index = holders_of(owner.institution, institutions).index(holder.institution) + 1
    _, per_round = _sealing_key(identity, owner, owner=owner, holder=holder, salt=salt)
    try:
        return open_sealed(
            per_round(round),
            blob,
            associated_data=key_share_aad(
                owner.run_tag, round=round, owner=owner, holder=holder, index=index
            ),
        )
    except IntegrityError:
        raise ProtocolAbort(
            Stage.unmask, "a round-key share failed authentication", peer=owner.institution
        ) from None


def recover_round_key(
    shares: Sequence[tuple[int, bytes]],
    *,
    owner: Advertisement,
    institutions: Sequence[str],
    round: int,
) -> X25519PrivateKey:
    """Reconstruct ``owner``'s key of ``round`` and check it against its advertisement.

    Raises
    ------
    ProtocolAbort
        At stage ``unmask``, naming the owner, if there are too few shares or the
        reconstructed key is not the advertised one.
    """
    threshold = key_share_threshold(len(holders_of(owner.institution, institutions)))
    if len(shares) < threshold:
        raise ProtocolAbort(
            Stage.unmask,
            f"round key has {len(shares)} of {threshold} shares",
            peer=owner.institution,
        )
    try:
        raw = combine_seed(list(shares[:threshold]), threshold=threshold)
    except ValueError as err:
        raise ProtocolAbort(
            Stage.unmask, f"round key shares: {err}", peer=owner.institution
        ) from None
    key = X25519PrivateKey.from_private_bytes(raw)
    if public_bytes(key) != owner.round_key(round):
        raise ProtocolAbort(
            Stage.unmask,
            "reconstructed round key is not the advertised one",
            peer=owner.institution,
        )
    return key


def key_share_aad(
    run_tag: str, *, round: int, owner: Advertisement, holder: Advertisement, index: int
) -> bytes:
    """Associated data of a sealed round-key share."""
    tag = run_tag.encode("utf-8")
    return (
        SHARE_AAD_LABEL
        + b"\x00"
        + ROUND_KEY_SHARE
        + b"\x00"
        + struct.pack(">H", len(tag))
        + tag
        + struct.pack(">IQQB", round, owner.node_id, holder.node_id, index)
    )


def _sealing_key(
    identity: X25519PrivateKey,
    peer: Advertisement,
    *,
    owner: Advertisement,
    holder: Advertisement,
    salt: bytes,
) -> tuple[Advertisement, Callable[[int], bytes]]:
    def per_round(round: int) -> bytes:
        return derive_share_key(
            identity,
            peer.identity_key,
            run_id=owner.run_tag,
            round=round,
            node_a=owner.node_id,
            node_b=holder.node_id,
            salt=salt,
            label=KEY_SHARE_KEY_LABEL,
        )

    return peer, per_round
