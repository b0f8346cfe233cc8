"""Cryptographic primitives only: keys, masks, Shamir sharing, quantisation, certificates."""

from fedrisk.secure.signing import (
    SignatureInvalid,
    generate_signing_key,
    load_private_key,
    public_key_from_text,
    public_key_text,
    save_private_key,
    sign,
    verify_signature,
)

__all__ = [
    "SignatureInvalid",
    "generate_signing_key",
    "load_private_key",
    "public_key_from_text",
    "public_key_text",
    "save_private_key",
    "sign",
    "verify_signature",
]
