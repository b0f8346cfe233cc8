"""Signed key advertisements: one X25519 key per institution per run.

An advertisement binds an institution's X25519 public key to the run, the institution,
its Flower node id and the time it was issued, under the institution's Ed25519 key
from the consortium manifest. Peers verify it against the manifest themselves, so a
coordinator that relays a substituted key is caught and named.

Layout (all integers big-endian)::

    version (1) || len(run_tag) (2) || run_tag || len(institution) (2) || institution
    || node_id (8) || issued_ns (8) || x25519 public key (32) || Ed25519 signature (64)

The signature covers everything before it, under the context ``ADVERT_CONTEXT``.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from fedrisk.secure.agreement import PUBLIC_KEY_SIZE, public_bytes
from fedrisk.secure.signing import SIGNATURE_SIZE, SignatureInvalid, sign, verify_signature
from fedrisk.strategies.secagg.wire import (
    ADVERT_CONTEXT,
    PROTOCOL_VERSION,
    ProtocolAbort,
    Stage,
)

_TAIL = struct.Struct(">QQ")


@dataclass(frozen=True)
class Advertisement:
    """A parsed, not yet verified, key advertisement."""

    run_tag: str
    institution: str
    node_id: int
    issued_ns: int
    public_key: bytes
    signature: bytes

    def payload(self) -> bytes:
        """Return the signed bytes."""
        return _payload(
            self.run_tag, self.institution, self.node_id, self.issued_ns, self.public_key
        )

    def to_bytes(self) -> bytes:
        """Wire form: payload followed by the signature."""
        return self.payload() + self.signature


def advertise(
    signing_key: Ed25519PrivateKey,
    agreement_key: X25519PrivateKey,
    *,
    run_tag: str,
    institution: str,
    node_id: int,
) -> Advertisement:
    """Sign a fresh advertisement of ``agreement_key`` for this run and node."""
    public = public_bytes(agreement_key)
    issued = time.time_ns()
    body = _payload(run_tag, institution, node_id, issued, public)
    return Advertisement(
        run_tag=run_tag,
        institution=institution,
        node_id=node_id,
        issued_ns=issued,
        public_key=public,
        signature=sign(signing_key, body, context=ADVERT_CONTEXT),
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
        public = blob[at : at + PUBLIC_KEY_SIZE]
        signature = blob[at + PUBLIC_KEY_SIZE :]
        if len(public) != PUBLIC_KEY_SIZE or len(signature) != SIGNATURE_SIZE:
            raise ValueError("truncated")
    except (IndexError, ValueError, struct.error, UnicodeDecodeError) as err:
        raise ProtocolAbort(
            Stage.advertise, f"malformed advertisement ({err})", peer=peer
        ) from None
    return Advertisement(run_tag, institution, node_id, issued, public, signature)


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


def _payload(run_tag: str, institution: str, node_id: int, issued: int, public: bytes) -> bytes:
    return (
        bytes([PROTOCOL_VERSION])
        + _text(run_tag)
        + _text(institution)
        + _TAIL.pack(node_id, issued)
        + public
    )


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
