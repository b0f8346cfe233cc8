"""Cryptographic primitives only: keys, masks, Shamir sharing, quantisation, certificates."""

from fedrisk.secure.aead import IntegrityError, open_sealed, seal
from fedrisk.secure.agreement import derive_pair_seed, generate_agreement_key, public_bytes
from fedrisk.secure.certificates import (
    certificate_pem,
    generate_ca,
    generate_node_auth_key,
    issue_server_certificate,
    node_auth_key_files,
    private_key_pem,
)
from fedrisk.secure.files import write_new_file
from fedrisk.secure.masks import mask_vector
from fedrisk.secure.quantize import check_overflow, dequantize, quantize
from fedrisk.secure.shamir import combine_seed, split_seed
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
    "IntegrityError",
    "SignatureInvalid",
    "certificate_pem",
    "check_overflow",
    "combine_seed",
    "dequantize",
    "derive_pair_seed",
    "generate_agreement_key",
    "generate_ca",
    "generate_node_auth_key",
    "generate_signing_key",
    "issue_server_certificate",
    "load_private_key",
    "mask_vector",
    "node_auth_key_files",
    "open_sealed",
    "private_key_pem",
    "public_bytes",
    "public_key_from_text",
    "public_key_text",
    "quantize",
    "save_private_key",
    "seal",
    "sign",
    "split_seed",
    "verify_signature",
    "write_new_file",
]
