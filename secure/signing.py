r"""Ed25519 signing keys, their files, and domain-separated signatures.

Every signature fedrisk makes covers ``context + b"\x00" + message``, where ``context``
is a constant label owned by the caller (e.g. ``b"fedrisk/ledger-entry/v1"``), so a
signature made for one purpose can never be replayed as another.
"""

from __future__ import annotations

import base64
import binascii
import stat
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from fedrisk.secure.files import write_new_file

PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64
CONTEXT_SEPARATOR = b"\x00"


class SignatureInvalid(Exception):
    """A signature does not verify: wrong key, context, message, or malformed signature."""


def generate_signing_key() -> Ed25519PrivateKey:
    """Generate a fresh Ed25519 signing key from the operating system's CSPRNG."""
    return Ed25519PrivateKey.generate()


def save_private_key(
    key: Ed25519PrivateKey, path: Path, *, passphrase: bytes | None = None
) -> None:
    """Write ``key`` as PKCS#8 PEM to a new file readable by its owner only (mode 0600).

    Parameters
    ----------
    key : Ed25519PrivateKey
        The signing key.
    path : Path
        Where to write it; must not exist yet.
    passphrase : bytes | None (default: None)
        When given, the PEM is encrypted with the best encryption ``cryptography`` offers.

    Raises
    ------
    TypeError
        If ``key`` is not an Ed25519 private key or ``passphrase`` is not bytes.
    ValueError
        If ``passphrase`` is empty.
    FileExistsError
        If ``path`` already exists (a key file is never overwritten).
    """
    _check_private_key(key)
    encryption: serialization.KeySerializationEncryption = serialization.NoEncryption()
    if passphrase is not None:
        if not isinstance(passphrase, bytes):
            raise TypeError(f"`passphrase` must be bytes or None; got {type(passphrase).__name__}")
        if not passphrase:
            raise ValueError("`passphrase` must be non-empty; got an empty passphrase")
        encryption = serialization.BestAvailableEncryption(passphrase)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    write_new_file(Path(path), pem, private=True)


def load_private_key(path: Path, *, passphrase: bytes | None = None) -> Ed25519PrivateKey:
    """Read an Ed25519 signing key written by `save_private_key`.

    Parameters
    ----------
    path : Path
        The PEM key file; must not be accessible to group or others.
    passphrase : bytes | None (default: None)
        The passphrase the key was encrypted with, if any.

    Raises
    ------
    ValueError
        If the file is accessible to group or others, is not an Ed25519 PKCS#8 key, or
        the passphrase is missing or wrong. The message never contains key material.
    FileNotFoundError
        If ``path`` does not exist.
    """
    path = Path(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ValueError(
            f"`path` must be accessible by its owner only (mode 0600); "
            f"got mode {mode:04o} for {path} (run chmod 600 on it)"
        )
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=passphrase)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        # Deliberately opaque: the underlying error may describe the file's contents.
        raise ValueError(
            f"`path` must hold a PKCS#8 PEM private key readable with the given passphrase; "
            f"got an unreadable key in {path} (wrong or missing passphrase?)"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"`path` must hold an Ed25519 key; got a {type(key).__name__} in {path}")
    return key


def public_key_text(key: Ed25519PublicKey) -> str:
    """Encode a public key as standard base64 of its 32 raw bytes (the manifest format).

    Raises
    ------
    TypeError
        If ``key`` is not an Ed25519 public key.
    """
    if not isinstance(key, Ed25519PublicKey):
        raise TypeError(f"`key` must be an Ed25519PublicKey; got {type(key).__name__}")
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def public_key_from_text(text: str) -> Ed25519PublicKey:
    """Decode a public key written by `public_key_text`.

    Raises
    ------
    TypeError
        If ``text`` is not a string.
    ValueError
        If ``text`` is not canonical base64 of exactly 32 bytes.
    """
    if not isinstance(text, str):
        raise TypeError(f"`text` must be a str; got {type(text).__name__}")
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ValueError(f"`text` must be base64; got {text!r}") from None
    if len(raw) != PUBLIC_KEY_SIZE:
        raise ValueError(
            f"`text` must encode {PUBLIC_KEY_SIZE} bytes; got {len(raw)} bytes from {text!r}"
        )
    if base64.b64encode(raw).decode("ascii") != text:
        raise ValueError(f"`text` must be canonical base64; got {text!r}")
    return Ed25519PublicKey.from_public_bytes(raw)


def sign(key: Ed25519PrivateKey, message: bytes, *, context: bytes) -> bytes:
    r"""Sign ``context + b"\x00" + message`` with Ed25519.

    Parameters
    ----------
    key : Ed25519PrivateKey
        The signing key.
    message : bytes
        What to sign.
    context : bytes
        A constant, non-empty domain-separation label without NUL bytes.

    Returns
    -------
    bytes
        The 64-byte signature.

    Raises
    ------
    TypeError
        If an argument has the wrong type.
    ValueError
        If ``context`` is empty or contains a NUL byte.
    """
    _check_private_key(key)
    return key.sign(_signed_bytes(message, context=context))


def verify_signature(
    public_key: Ed25519PublicKey, signature: bytes, message: bytes, *, context: bytes
) -> None:
    """Check a signature made by `sign`: return nothing, raise on any failure.

    Raises
    ------
    SignatureInvalid
        If the signature is not 64 bytes or does not verify for this key, context and
        message.
    TypeError
        If ``public_key``, ``message`` or ``context`` has the wrong type.
    ValueError
        If ``context`` is empty or contains a NUL byte.
    """
    if not isinstance(public_key, Ed25519PublicKey):
        raise TypeError(
            f"`public_key` must be an Ed25519PublicKey; got {type(public_key).__name__}"
        )
    signed = _signed_bytes(message, context=context)
    if not isinstance(signature, bytes) or len(signature) != SIGNATURE_SIZE:
        raise SignatureInvalid(f"signature must be {SIGNATURE_SIZE} bytes")
    try:
        public_key.verify(signature, signed)
    except InvalidSignature:
        raise SignatureInvalid("signature does not verify") from None


def _signed_bytes(message: bytes, *, context: bytes) -> bytes:
    if not isinstance(message, bytes):
        raise TypeError(f"`message` must be bytes; got {type(message).__name__}")
    if not isinstance(context, bytes):
        raise TypeError(f"`context` must be bytes; got {type(context).__name__}")
    if not context or CONTEXT_SEPARATOR in context:
        raise ValueError(f"`context` must be non-empty and free of NUL bytes; got {context!r}")
    return context + CONTEXT_SEPARATOR + message


def _check_private_key(key: object) -> None:
    if not isinstance(key, Ed25519PrivateKey):
        raise TypeError(f"`key` must be an Ed25519PrivateKey; got {type(key).__name__}")
