"""Versioned ChaCha20-Poly1305 sealing of small messages (e.g. Shamir shares to a peer).

A sealed blob is ``VERSION (1 byte) || nonce (12 random bytes) || ciphertext || tag (16
bytes)``; the version byte is authenticated as part of the associated data.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

VERSION = 1
PROTOCOL = b"fedrisk-secagg-aead"
KEY_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16
_HEADER = bytes([VERSION])


class IntegrityError(Exception):
    """A sealed blob failed to open: wrong key, associated data, version, or tampered bytes."""


def seal(key: bytes, plaintext: bytes, *, associated_data: bytes) -> bytes:
    """Encrypt and authenticate ``plaintext`` under ``key``, bound to ``associated_data``.

    Parameters
    ----------
    key : bytes
        A 32-byte secret key.
    plaintext : bytes
        What to encrypt.
    associated_data : bytes
        Authenticated but not encrypted context (stage, run, round, sender, recipient).

    Returns
    -------
    bytes
        ``VERSION || nonce || ciphertext || tag``; the nonce comes from ``os.urandom``.

    Raises
    ------
    TypeError
        If an argument is not bytes.
    ValueError
        If ``key`` is not 32 bytes.
    """
    aead = _cipher(key)
    _check_bytes("plaintext", plaintext)
    _check_bytes("associated_data", associated_data)
    nonce = os.urandom(NONCE_SIZE)
    return _HEADER + nonce + aead.encrypt(nonce, plaintext, _aad(associated_data))


def open_sealed(key: bytes, blob: bytes, *, associated_data: bytes) -> bytes:
    """Authenticate and decrypt a blob made by `seal`; raise on any failure.

    Raises
    ------
    IntegrityError
        If the blob is truncated, has an unknown version, or fails authentication for this
        key and associated data. The message is the same for every cause.
    TypeError
        If an argument is not bytes.
    ValueError
        If ``key`` is not 32 bytes.
    """
    aead = _cipher(key)
    _check_bytes("blob", blob)
    _check_bytes("associated_data", associated_data)
    if len(blob) < 1 + NONCE_SIZE + TAG_SIZE or blob[:1] != _HEADER:
        raise IntegrityError("sealed message failed authentication")
    nonce, body = blob[1 : 1 + NONCE_SIZE], blob[1 + NONCE_SIZE :]
    try:
        return aead.decrypt(nonce, body, _aad(associated_data))
    except InvalidTag:
        raise IntegrityError("sealed message failed authentication") from None


def _aad(associated_data: bytes) -> bytes:
    return PROTOCOL + b"\x00" + _HEADER + associated_data


def _cipher(key: object) -> ChaCha20Poly1305:
    if not isinstance(key, bytes):
        raise TypeError(f"`key` must be bytes; got {type(key).__name__}")
    if len(key) != KEY_SIZE:
        raise ValueError(f"`key` must be {KEY_SIZE} bytes; got {len(key)} bytes")
    return ChaCha20Poly1305(key)


def _check_bytes(name: str, value: object) -> None:
    if not isinstance(value, bytes):
        raise TypeError(f"`{name}` must be bytes; got {type(value).__name__}")
