"""X25519 key agreement and HKDF-SHA256 derivation of per-round pairwise mask seeds.

Each bank holds one X25519 key per run (advertised under its Ed25519 signature); the
pairwise seed for a round is HKDF-SHA256 over the X25519 shared secret, with a salt and
an ``info`` that binds protocol, version, run, round and both node ids.
"""

from __future__ import annotations

import struct

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PROTOCOL = b"fedrisk-secagg"
VERSION = 1
PAIR_SEED_LABEL = b"pair-seed"
SHARE_KEY_LABEL = b"share-key"
KEY_SHARE_KEY_LABEL = b"key-share-key"
SEALING_LABELS = (SHARE_KEY_LABEL, KEY_SHARE_KEY_LABEL)
PUBLIC_KEY_SIZE = 32
SEED_SIZE = 32
MAX_NODE_ID = 2**64 - 1
MAX_ROUND = 2**32 - 1


def generate_agreement_key() -> X25519PrivateKey:
    """Generate a fresh X25519 key from the operating system's CSPRNG."""
    return X25519PrivateKey.generate()


def public_bytes(key: X25519PrivateKey | X25519PublicKey) -> bytes:
    """Return the 32 raw bytes of the public half of ``key``.

    Raises
    ------
    TypeError
        If ``key`` is not an X25519 private or public key.
    """
    if isinstance(key, X25519PrivateKey):
        key = key.public_key()
    if not isinstance(key, X25519PublicKey):
        raise TypeError(f"`key` must be an X25519 private or public key; got {type(key).__name__}")
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def derive_pair_seed(
    private: X25519PrivateKey,
    peer_public: bytes,
    *,
    run_id: str,
    round: int,
    node_a: int,
    node_b: int,
    salt: bytes,
) -> bytes:
    """Derive the 32-byte pairwise mask seed that ``node_a`` and ``node_b`` share this round.

    Parameters
    ----------
    private : X25519PrivateKey
        This node's agreement key.
    peer_public : bytes
        The peer's 32-byte raw X25519 public key (verified against its signature first).
    run_id : str
        The run identifier; non-empty.
    round : int
        The training round, in ``[0, 2**32)``.
    node_a, node_b : int
        The two distinct node ids, in ``[0, 2**64)``, in either order.
    salt : bytes
        The run's non-empty HKDF salt.

    Returns
    -------
    bytes
        32 bytes; both ends derive the same seed because the ids enter ``info`` sorted.

    Raises
    ------
    TypeError
        If an argument has the wrong type.
    ValueError
        If ``peer_public`` is not 32 bytes, the shared secret is all-zero (a low-order
        peer key), ``run_id`` or ``salt`` is empty, or a number is out of range.

    Notes
    -----
    ``info`` is ``PROTOCOL || 0x00 || VERSION (1 byte) || PAIR_SEED_LABEL || 0x00 ||
    len(run_id) (4 bytes BE) || run_id (UTF-8) || round (4 bytes BE) || min id (8 bytes
    BE) || max id (8 bytes BE)``: length-prefixed, so no two inputs share an encoding.
    """
    return _derive(
        private,
        peer_public,
        label=PAIR_SEED_LABEL,
        run_id=run_id,
        round=round,
        node_a=node_a,
        node_b=node_b,
        salt=salt,
    )


def derive_share_key(
    private: X25519PrivateKey,
    peer_public: bytes,
    *,
    run_id: str,
    round: int,
    node_a: int,
    node_b: int,
    salt: bytes,
    label: bytes = SHARE_KEY_LABEL,
) -> bytes:
    """Derive the 32-byte ChaCha20-Poly1305 key that seals Shamir shares between two nodes.

    Same inputs, checks and ``info`` layout as `derive_pair_seed`, with ``label``
    (``SHARE_KEY_LABEL`` for self-mask shares, ``KEY_SHARE_KEY_LABEL`` for shares of
    round keys) in place of ``PAIR_SEED_LABEL``, so one exchange never keys two uses.

    Raises
    ------
    TypeError
        If an argument has the wrong type.
    ValueError
        As `derive_pair_seed`, or if ``label`` is not one of ``SEALING_LABELS``.
    """
    if label not in SEALING_LABELS:
        raise ValueError(f"`label` must be one of {SEALING_LABELS}; got {label!r}")
    return _derive(
        private,
        peer_public,
        label=label,
        run_id=run_id,
        round=round,
        node_a=node_a,
        node_b=node_b,
        salt=salt,
    )


def _derive(
    private: X25519PrivateKey,
    peer_public: bytes,
    *,
    label: bytes,
    run_id: str,
    round: int,
    node_a: int,
    node_b: int,
    salt: bytes,
) -> bytes:
    if not isinstance(private, X25519PrivateKey):
        raise TypeError(f"`private` must be an X25519PrivateKey; got {type(private).__name__}")
    if not isinstance(peer_public, bytes):
        raise TypeError(f"`peer_public` must be bytes; got {type(peer_public).__name__}")
    if len(peer_public) != PUBLIC_KEY_SIZE:
        raise ValueError(
            f"`peer_public` must be {PUBLIC_KEY_SIZE} bytes; got {len(peer_public)} bytes"
        )
    if not isinstance(salt, bytes):
        raise TypeError(f"`salt` must be bytes; got {type(salt).__name__}")
    if not salt:
        raise ValueError("`salt` must be non-empty; got an empty salt")
    info = _pair_info(label, run_id=run_id, round=round, node_a=node_a, node_b=node_b)
    try:
        shared = private.exchange(X25519PublicKey.from_public_bytes(peer_public))
    except ValueError:
        # Deliberately opaque: never echo the key or the (partial) shared secret.
        raise ValueError(
            "`peer_public` must be a valid X25519 key; got a low-order key (all-zero shared secret)"
        ) from None
    hkdf = HKDF(algorithm=hashes.SHA256(), length=SEED_SIZE, salt=salt, info=info)
    return hkdf.derive(shared)


def _pair_info(label: bytes, *, run_id: str, round: int, node_a: int, node_b: int) -> bytes:
    if not isinstance(run_id, str):
        raise TypeError(f"`run_id` must be a str; got {type(run_id).__name__}")
    if not run_id:
        raise ValueError("`run_id` must be non-empty; got ''")
    _check_int("round", round, MAX_ROUND)
    _check_int("node_a", node_a, MAX_NODE_ID)
    _check_int("node_b", node_b, MAX_NODE_ID)
    if node_a == node_b:
        raise ValueError(f"`node_a` and `node_b` must differ; got {node_a} for both")
    run = run_id.encode("utf-8")
    low, high = sorted((node_a, node_b))
    return (
        PROTOCOL
        + b"\x00"
        + bytes([VERSION])
        + label
        + b"\x00"
        + struct.pack(">I", len(run))
        + run
        + struct.pack(">IQQ", round, low, high)
    )


def _check_int(name: str, value: object, maximum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"`{name}` must be an int; got {type(value).__name__}")
    if not 0 <= value <= maximum:
        raise ValueError(f"`{name}` must be in [0, {maximum}]; got {value}")
