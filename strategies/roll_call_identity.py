"""What a node signs in the roll call to prove which institution it is.

The coordinator sends each node a fresh random challenge; the node answers with an
Ed25519 signature, by the key the consortium manifest lists for the institution it
claims, over `identity_statement`. The statement binds a constant label, the
challenge, the run, Flower's node id and the institution's name, so a proof cannot be
replayed in another run, from another node, for another name or for another purpose.

Notes
-----
Threat: a node registered at the SuperLink (or any node that can reach it) answers the
roll call with another bank's name. Without a proof the first answer would take that
bank's slot. With it, a node that does not hold the bank's signing key is refused and
the real bank still gets in. The SuperNode authentication key only proves that a node
was registered; the signing key proves which bank it is.
"""

from __future__ import annotations

import secrets
import struct

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from fedrisk.secure.signing import SignatureInvalid, verify_signature

#: Domain-separation label of every roll-call proof (`fedrisk.secure.signing.sign`).
IDENTITY_LABEL = b"fedrisk/roll-call-identity/v1"
#: Bytes of the coordinator's challenge.
CHALLENGE_SIZE = 32

#: ConfigRecord of the roll call carrying the challenge (query) and the proof (reply).
IDENTITY = "identity"
CHALLENGE = "challenge"
SIGNATURE = "signature"


class IdentityRefused(Exception):
    """A roll-call answer does not prove the institution it names."""


def fresh_challenge() -> bytes:
    """Return a fresh challenge from the operating system's CSPRNG."""
    return secrets.token_bytes(CHALLENGE_SIZE)


def identity_statement(*, challenge: bytes, run_id: str, node_id: int, institution: str) -> bytes:
    """Return the bytes a node signs (each field length-prefixed, so none can shift).

    Raises
    ------
    TypeError
        If a field has the wrong type.
    ValueError
        If ``challenge`` is not `CHALLENGE_SIZE` bytes or ``node_id`` is negative.
    """
    if not isinstance(challenge, bytes):
        raise TypeError(f"`challenge` must be bytes; got {type(challenge).__name__}")
    if len(challenge) != CHALLENGE_SIZE:
        raise ValueError(f"`challenge` must be {CHALLENGE_SIZE} bytes; got {len(challenge)}")
    if not isinstance(node_id, int) or isinstance(node_id, bool):
        raise TypeError(f"`node_id` must be an int; got {type(node_id).__name__}")
    if not 0 <= node_id < 2**64:
        raise ValueError(f"`node_id` must be in [0, 2**64); got {node_id}")
    if not isinstance(run_id, str) or not isinstance(institution, str):
        raise TypeError("`run_id` and `institution` must be str")
    fields = [challenge, run_id.encode("utf-8"), struct.pack(">Q", node_id)]
    fields.append(institution.encode("utf-8"))
    return b"".join(struct.pack(">I", len(field)) + field for field in fields)


def verify_identity(
    public_key: Ed25519PublicKey,
    signature: object,
    *,
    challenge: bytes,
    run_id: str,
    node_id: int,
    institution: str,
) -> None:
    """Check a roll-call proof: return nothing, raise if it does not prove the name.

    Raises
    ------
    IdentityRefused
        If the signature is missing, malformed or not made by ``public_key`` over this
        challenge, run, node and institution.
    """
    if not isinstance(signature, bytes):
        raise IdentityRefused(f"no proof of identity for {institution!r}")
    statement = identity_statement(
        challenge=challenge, run_id=run_id, node_id=node_id, institution=institution
    )
    try:
        verify_signature(public_key, signature, statement, context=IDENTITY_LABEL)
    except SignatureInvalid:
        raise IdentityRefused(
            f"the proof of identity for {institution!r} does not verify against its manifest key"
        ) from None
