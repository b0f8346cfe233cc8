"""The roll-call statement binds every field; verification raises on any change."""

from __future__ import annotations

import pytest

from fedrisk.secure.signing import generate_signing_key, sign
from fedrisk.strategies.roll_call_identity import (
    CHALLENGE_SIZE,
    IDENTITY_LABEL,
    IdentityRefused,
    identity_statement,
    verify_identity,
)

FIELDS = {"challenge": b"\x01" * CHALLENGE_SIZE, "run_id": "r1", "node_id": 7, "institution": "a"}


def test_a_proof_verifies_only_for_its_own_fields() -> None:
    key = generate_signing_key()
    signature = sign(key, identity_statement(**FIELDS), context=IDENTITY_LABEL)
    verify_identity(key.public_key(), signature, **FIELDS)
    for name, other in (
        ("challenge", b"\x02" * CHALLENGE_SIZE), ("run_id", "r2"), ("node_id", 8),
        ("institution", "b"),
    ):  # fmt: skip
        with pytest.raises(IdentityRefused, match="does not verify"):
            verify_identity(key.public_key(), signature, **{**FIELDS, name: other})
    with pytest.raises(IdentityRefused, match="does not verify"):
        verify_identity(generate_signing_key().public_key(), signature, **FIELDS)
    with pytest.raises(IdentityRefused, match="no proof"):
        verify_identity(key.public_key(), None, **FIELDS)


def test_fields_cannot_shift_into_each_other() -> None:
    one = identity_statement(**{**FIELDS, "run_id": "r1a", "institution": ""})
    assert one != identity_statement(**{**FIELDS, "run_id": "r1", "institution": "a"})


def test_malformed_fields_are_refused_by_type_and_length() -> None:
    with pytest.raises(ValueError, match="`challenge` must be 32 bytes; got 3"):
        identity_statement(**{**FIELDS, "challenge": b"abc"})
    with pytest.raises(TypeError, match="`challenge` must be bytes"):
        identity_statement(**{**FIELDS, "challenge": "x" * CHALLENGE_SIZE})
    with pytest.raises(ValueError, match="`node_id` must be in"):
        identity_statement(**{**FIELDS, "node_id": -1})
