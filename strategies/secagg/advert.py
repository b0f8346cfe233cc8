"""Signed key advertisements: an institution's public keys for a run, sent once.

An advertisement binds an institution's X25519 identity key and its round keys (one
per round from ``first_round`` on) to the run, the institution, its Flower node id and
the time it was issued, under the institution's Ed25519 key from the consortium
manifest. Peers verify it against the manifest themselves, so a coordinator that relays
a substituted key is caught and named.

Layout (all integers big-endian)::

    version (1) || len(run_tag) (2) || run_tag || len(institution) (2) || institution
    || node_id (8) || issued_ns (8) || identity key (32) || first_round (4)
    || count (4) || count × round key (32) || Ed25519 signature (64)

The signature covers everything before it, under the context ``ADVERT_CONTEXT``.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass, replace

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from fedrisk.secure.agreement import PUBLIC_KEY_SIZE, public_bytes
from fedrisk.secure.signing import SIGNATURE_SIZE, SignatureInvalid, sign, verify_signature
from fedrisk.strategies.secagg.keys import NodeKeys
from fedrisk.strategies.secagg.wire import (
    ADVERT_CONTEXT,
    PROTOCOL_VERSION,
    ProtocolAbort,
    Stage,
)

_TAIL = struct.Struct(">QQ")
_ROUNDS = struct.Struct(">II")
MAX_ROUNDS = 10_000


@dataclass(frozen=True)
class Advertisement:
    """A parsed, not yet verified, key advertisement."""

    run_tag: str
    institution: str
    node_id: int
    issued_ns: int
    identity_key: bytes
    first_round: int
    round_keys: tuple[bytes, ...]
    signature: bytes

    def payload(self) -> bytes:
        """Return the signed bytes."""
        return (
            bytes([PROTOCOL_VERSION])
            + _text(self.run_tag)
            + _text(self.institution)
            + _TAIL.pack(self.node_id, self.issued_ns)
            + self.identity_key
            + _ROUNDS.pack(self.first_round, len(self.round_keys))
            + b"".join(self.round_keys)
        )

    def round_key(self, round: int) -> bytes:
        """Return the public round key of ``round``.

        Raises
        ------
        ProtocolAbort
            At stage ``train``, naming the institution, if ``round`` is not covered.
        """
        index = round - self.first_round
        if not 0 <= index < len(self.round_keys):
            raise ProtocolAbort(
                Stage.train,
                f"advertisement covers rounds {self.first_round}–"
                f"{self.first_round + len(self.round_keys) - 1}, not round {round}",
                peer=self.institution,
            )
        return self.round_keys[index]

    def to_bytes(self) -> bytes:
        """Wire form: payload followed by the signature."""
        return self.payload() + self.signature


def advertise(
    signing_key: Ed25519PrivateKey,
    keys: NodeKeys,
    *,
    institution: str,
    node_id: int,
    rounds: range,
) -> Advertisement:
    """Sign a fresh advertisement of ``keys`` for ``rounds`` of this run and node.

    Raises
    ------
    ValueError
        If ``rounds`` is empty, does not start at 1 or later, or is longer than
        ``MAX_ROUNDS``.
    """
    if not rounds or rounds.start < 1 or rounds.step != 1 or len(rounds) > MAX_ROUNDS:
        raise ValueError(f"`rounds` must be 1 to {MAX_ROUNDS} consecutive rounds ≥ 1; got {rounds}")
    unsigned = Advertisement(
        run_tag=keys.run_tag,
        institution=institution,
        node_id=node_id,
        issued_ns=time.time_ns(),
        identity_key=public_bytes(keys.identity()),
        first_round=rounds.start,
        round_keys=tuple(public_bytes(keys.round_key(r)) for r in rounds),
        signature=b"",
    )
    return replace(
        unsigned, signature=sign(signing_key, unsigned.payload(), context=ADVERT_CONTEXT)
    )


def parse_advertisement(blob: object, *, peer: str) -> Advertisement:
    """Parse an advertisement said to come from ``peer``.

    Raises
    ------
    ProtocolAbort
        At stage ``advertise``, naming ``peer``, if ``blob`` is not a well-formed
        advertisement of this protocol version.
    """
    if not isinstance(blob, bytes):
        raise ProtocolAbort(Stage.advertise, "advertisement is not bytes", peer=peer)
    try:
        if blob[0] != PROTOCOL_VERSION:
            raise ValueError(f"version {blob[0]}")
        run_tag, at = _read_text(blob, 1)
        institution, at = _read_text(blob, at)
        node_id, issued = _TAIL.unpack_from(blob, at)
        at += _TAIL.size
        identity = blob[at : at + PUBLIC_KEY_SIZE]
        at += PUBLIC_KEY_SIZE
        first, count = _ROUNDS.unpack_from(blob, at)
        at += _ROUNDS.size
        if count > MAX_ROUNDS:
            raise ValueError(f"{count} round keys")
        keys = tuple(
            blob[at + i * PUBLIC_KEY_SIZE : at + (i + 1) * PUBLIC_KEY_SIZE] for i in range(count)
        )
        signature = blob[at + count * PUBLIC_KEY_SIZE :]
        if (
            len(identity) != PUBLIC_KEY_SIZE
            or any(len(k) != PUBLIC_KEY_SIZE for k in keys)
            or len(signature) != SIGNATURE_SIZE
        ):
            raise ValueError("truncated")
    except (IndexError, ValueError, struct.error, UnicodeDecodeError) as err:
        raise ProtocolAbort(
            Stage.advertise, f"malformed advertisement ({err})", peer=peer
        ) from None
    return Advertisement(run_tag, institution, node_id, issued, identity, first, keys, signature)


def verify_advertisement(
    blob: object,
    *,
    peer: str,
    signer: Ed25519PublicKey,
    run_tag: str,
    node_id: int | None = None,
) -> Advertisement:
    """Check that ``blob`` is ``peer``'s advertisement for this run, signed by ``signer``.

    Parameters
    ----------
    blob : object
        The advertisement as relayed by the coordinator.
    peer : str
        The institution it claims to come from.
    signer : Ed25519PublicKey
        ``peer``'s signing key from the consortium manifest.
    run_tag : str
        This run's tag.
    node_id : int | None (default: None)
        When given, the Flower node id the advertisement must name.

    Raises
    ------
    ProtocolAbort
        At stage ``advertise``, naming ``peer``, if the advertisement is malformed,
        names another institution, run or node, or its signature does not verify.
    """
    advert = parse_advertisement(blob, peer=peer)
    if advert.institution != peer:
        raise ProtocolAbort(
            Stage.advertise, f"advertisement names institution {advert.institution!r}", peer=peer
        )
    if advert.run_tag != run_tag:
        raise ProtocolAbort(Stage.advertise, "advertisement is for another run", peer=peer)
    if node_id is not None and advert.node_id != node_id:
        raise ProtocolAbort(
            Stage.advertise,
            f"advertisement names node {advert.node_id}, the round lists node {node_id}",
            peer=peer,
        )
    try:
        verify_signature(signer, advert.signature, advert.payload(), context=ADVERT_CONTEXT)
    except SignatureInvalid:
        raise ProtocolAbort(
            Stage.advertise,
            "advertisement signature does not verify against the consortium manifest "
            "(substituted or unsigned key)",
            peer=peer,
        ) from None
    return advert


def _text(value: str) -> bytes:
    raw = value.encode("utf-8")
    if not raw or len(raw) > 0xFFFF:
        raise ValueError(f"advertisement text must be 1–65535 bytes; got {len(raw)}")
    return struct.pack(">H", len(raw)) + raw


def _read_text(blob: bytes, at: int) -> tuple[str, int]:
    (size,) = struct.unpack_from(">H", blob, at)
    end = at + 2 + size
    if end > len(blob):
        raise ValueError("truncated")
    return blob[at + 2 : end].decode("utf-8"), end
