from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from fedrisk.secure.agreement import (
    PAIR_SEED_LABEL,
    PROTOCOL,
    SEED_SIZE,
    _pair_info,
    derive_pair_seed,
    generate_agreement_key,
    public_bytes,
)

# RFC 7748, section 6.1 (X25519 Diffie-Hellman): Alice's and Bob's keys and the shared
# secret K. https://www.rfc-editor.org/rfc/rfc7748#section-6.1
RFC7748_ALICE_PRIVATE = bytes.fromhex(
    "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"
)
RFC7748_ALICE_PUBLIC = bytes.fromhex(
    "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
)
RFC7748_BOB_PRIVATE = bytes.fromhex(
    "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"
)
RFC7748_BOB_PUBLIC = bytes.fromhex(
    "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
)
RFC7748_SHARED = bytes.fromhex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")

SALT = b"run-salt-0123456789abcdef"
PARAMS = {"run_id": "run-1", "round": 3, "salt": SALT}


def test_public_bytes_matches_rfc7748() -> None:
    alice = X25519PrivateKey.from_private_bytes(RFC7748_ALICE_PRIVATE)
    assert public_bytes(alice) == RFC7748_ALICE_PUBLIC
    assert public_bytes(alice.public_key()) == RFC7748_ALICE_PUBLIC
    assert alice.exchange(X25519PublicKey.from_public_bytes(RFC7748_BOB_PUBLIC)) == (RFC7748_SHARED)


def test_both_ends_derive_the_same_seed() -> None:
    alice = X25519PrivateKey.from_private_bytes(RFC7748_ALICE_PRIVATE)
    bob = X25519PrivateKey.from_private_bytes(RFC7748_BOB_PRIVATE)
    at_alice = derive_pair_seed(alice, RFC7748_BOB_PUBLIC, node_a=11, node_b=22, **PARAMS)
    at_bob = derive_pair_seed(bob, RFC7748_ALICE_PUBLIC, node_a=22, node_b=11, **PARAMS)
    assert at_alice == at_bob
    assert len(at_alice) == SEED_SIZE


def test_seed_is_hkdf_sha256_over_the_shared_secret() -> None:
    # Independent oracle: HKDF-SHA256 (RFC 5869) written out with hmac.
    import hashlib
    import hmac

    alice = X25519PrivateKey.from_private_bytes(RFC7748_ALICE_PRIVATE)
    seed = derive_pair_seed(alice, RFC7748_BOB_PUBLIC, node_a=2, node_b=1, **PARAMS)
    info = _pair_info(PAIR_SEED_LABEL, run_id="run-1", round=3, node_a=1, node_b=2)
    prk = hmac.new(SALT, RFC7748_SHARED, hashlib.sha256).digest()
    okm = hmac.new(prk, info + b"\x01", hashlib.sha256).digest()
    assert seed == okm
    assert info.startswith(PROTOCOL + b"\x00\x01" + PAIR_SEED_LABEL)


@pytest.mark.parametrize(
    "change",
    [
        {"run_id": "run-2"},
        {"round": 4},
        {"salt": SALT + b"!"},
        {"node_a": 11, "node_b": 23},
        {"node_a": 12, "node_b": 22},
    ],
)
def test_every_bound_field_changes_the_seed(change: dict[str, object]) -> None:
    alice, bob = generate_agreement_key(), generate_agreement_key()
    base = {**PARAMS, "node_a": 11, "node_b": 22}
    reference = derive_pair_seed(alice, public_bytes(bob), **base)  # type: ignore[arg-type]
    changed = derive_pair_seed(alice, public_bytes(bob), **{**base, **change})  # type: ignore[arg-type]
    assert changed != reference


def test_run_id_encoding_is_unambiguous() -> None:
    assert _pair_info(PAIR_SEED_LABEL, run_id="a", round=1, node_a=1, node_b=2) != _pair_info(
        PAIR_SEED_LABEL, run_id="a\x00", round=1, node_a=1, node_b=2
    )


@pytest.mark.parametrize("peer", [bytes(32), (1).to_bytes(32, "little")])
def test_low_order_peer_key_is_a_value_error_without_secrets(peer: bytes) -> None:
    key = generate_agreement_key()
    with pytest.raises(ValueError, match="low-order") as info:
        derive_pair_seed(key, peer, node_a=1, node_b=2, **PARAMS)
    assert peer.hex() not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"peer_public": bytes(31)}, ValueError),
        ({"peer_public": bytes(33)}, ValueError),
        ({"peer_public": "x" * 32}, TypeError),
        ({"run_id": ""}, ValueError),
        ({"run_id": b"run"}, TypeError),
        ({"round": -1}, ValueError),
        ({"round": 2**32}, ValueError),
        ({"round": 1.0}, TypeError),
        ({"node_a": 5, "node_b": 5}, ValueError),
        ({"node_a": -1}, ValueError),
        ({"node_b": 2**64}, ValueError),
        ({"node_a": True}, TypeError),
        ({"salt": b""}, ValueError),
        ({"salt": "salt"}, TypeError),
        ({"private": object()}, TypeError),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], error: type) -> None:
    args: dict[str, object] = {
        "private": generate_agreement_key(),
        "peer_public": public_bytes(generate_agreement_key()),
        "node_a": 1,
        "node_b": 2,
        **PARAMS,
        **kwargs,
    }
    with pytest.raises(error):
        derive_pair_seed(**args)  # type: ignore[arg-type]


def test_public_bytes_rejects_other_types() -> None:
    with pytest.raises(TypeError):
        public_bytes(b"\x00" * 32)  # type: ignore[arg-type]
