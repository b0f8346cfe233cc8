from __future__ import annotations

import time
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fedrisk.secure.agreement import generate_agreement_key, public_bytes
from fedrisk.secure.signing import SIGNATURE_SIZE, generate_signing_key
from fedrisk.strategies.secagg.advert import (
    Advertisement,
    advertise,
    parse_advertisement,
    verify_advertisement,
)
from fedrisk.strategies.secagg.keys import NodeKeys
from fedrisk.strategies.secagg.wire import ProtocolAbort, Stage

RUN_TAG = "run-5c1e"
NODE = 4_000_000_017
SIGNERS: dict[str, Ed25519PrivateKey] = {
    "bank_a": generate_signing_key(),
    "bank_b": generate_signing_key(),
}
MANIFEST = {name: key.public_key() for name, key in SIGNERS.items()}
KEYS = NodeKeys.generate(RUN_TAG)
ROUNDS = range(2, 5)


def _advert(institution: str = "bank_a", *, signer: str | None = None) -> Advertisement:
    return advertise(
        SIGNERS[signer or institution],
        KEYS,
        institution=institution,
        node_id=NODE,
        rounds=ROUNDS,
    )


def _rejected(blob: object, *, peer: str = "bank_a", **kwargs: object) -> ProtocolAbort:
    options: dict = {"signer": MANIFEST[peer], "run_tag": RUN_TAG, "node_id": NODE} | kwargs
    with pytest.raises(ProtocolAbort) as caught:
        verify_advertisement(blob, peer=peer, **options)
    assert caught.value.stage is Stage.advertise
    assert caught.value.peer == peer
    return caught.value


def test_round_trip_keeps_every_field() -> None:
    before = time.time_ns()
    advert = _advert()

    parsed = parse_advertisement(advert.to_bytes(), peer="bank_a")

    assert parsed == advert
    assert parsed.identity_key == public_bytes(KEYS.identity())
    assert parsed.first_round == 2
    assert parsed.round_keys == tuple(public_bytes(KEYS.round_key(r)) for r in ROUNDS)
    assert parsed.round_key(3) == public_bytes(KEYS.round_key(3))
    assert (parsed.run_tag, parsed.institution, parsed.node_id) == (RUN_TAG, "bank_a", NODE)
    assert before <= parsed.issued_ns <= time.time_ns()
    assert len(parsed.signature) == SIGNATURE_SIZE


def test_advertisement_verifies_against_the_manifest_key_of_its_institution() -> None:
    blob = _advert().to_bytes()

    advert = verify_advertisement(
        blob, peer="bank_a", signer=MANIFEST["bank_a"], run_tag=RUN_TAG, node_id=NODE
    )
    without_node = verify_advertisement(
        blob, peer="bank_a", signer=MANIFEST["bank_a"], run_tag=RUN_TAG
    )

    assert advert.identity_key == without_node.identity_key == public_bytes(KEYS.identity())


def test_advertisement_re_signed_by_another_bank_is_rejected_naming_the_peer() -> None:
    forged = _advert("bank_a", signer="bank_b").to_bytes()

    abort = _rejected(forged)

    assert "does not verify against the consortium manifest" in abort.reason
    assert "(peer bank_a)" in str(abort)


@pytest.mark.parametrize("which", ["identity", "round-key", "first-round"])
def test_public_key_swapped_after_signing_is_rejected_naming_the_peer(which: str) -> None:
    advert = _advert()
    attacker = public_bytes(generate_agreement_key())
    changes: dict[str, dict] = {
        "identity": {"identity_key": attacker},
        "round-key": {"round_keys": (advert.round_keys[0], attacker, advert.round_keys[2])},
        "first-round": {"first_round": 3},
    }
    swapped: Advertisement = replace(advert, **changes[which])
    assert parse_advertisement(swapped.to_bytes(), peer="bank_a") == swapped

    abort = _rejected(swapped.to_bytes())

    assert "substituted or unsigned key" in abort.reason


@pytest.mark.parametrize(
    "signature",
    [bytes(SIGNATURE_SIZE), b"\xff" * SIGNATURE_SIZE, bytes(range(SIGNATURE_SIZE))],
    ids=["zeros", "ones", "garbage"],
)
def test_unsigned_or_garbage_signature_is_rejected(signature: bytes) -> None:
    blob = _advert().payload() + signature

    abort = _rejected(blob)

    assert "signature does not verify" in abort.reason


def test_advertisement_for_another_run_is_rejected() -> None:
    abort = _rejected(_advert().to_bytes(), run_tag="run-0000")

    assert abort.reason == "advertisement is for another run"


def test_advertisement_naming_another_node_is_rejected() -> None:
    abort = _rejected(_advert().to_bytes(), node_id=NODE + 1)

    assert abort.reason == f"advertisement names node {NODE}, the round lists node {NODE + 1}"


def test_advertisement_of_another_institution_is_rejected() -> None:
    blob = _advert("bank_b").to_bytes()  # validly signed by bank_b, relayed as bank_a's

    abort = _rejected(blob, peer="bank_a")

    assert abort.reason == "advertisement names institution 'bank_b'"


@pytest.mark.parametrize("cut", [0, 1, 3, 20, -SIGNATURE_SIZE - 32, -SIGNATURE_SIZE, -1])
def test_truncated_advertisement_is_malformed(cut: int) -> None:
    blob = _advert().to_bytes()[:cut]

    abort = _rejected(blob)

    assert abort.reason.startswith("malformed advertisement")


def test_trailing_bytes_or_another_version_are_malformed() -> None:
    blob = _advert().to_bytes()

    assert _rejected(blob + b"\x00").reason.startswith("malformed advertisement")
    assert _rejected(b"\x02" + blob[1:]).reason == "malformed advertisement (version 2)"


@pytest.mark.parametrize("blob", [None, "advert", 17, bytearray(b"\x01\x00")])
def test_non_bytes_advertisement_is_rejected(blob: object) -> None:
    abort = _rejected(blob)

    assert abort.reason == "advertisement is not bytes"


def test_advertisement_with_an_empty_institution_cannot_be_made() -> None:
    with pytest.raises(ValueError, match="1–65535 bytes; got 0"):
        advertise(SIGNERS["bank_a"], KEYS, institution="", node_id=NODE, rounds=ROUNDS)


@pytest.mark.parametrize("round", [1, 5, 100])
def test_round_key_outside_the_advertised_rounds_aborts_naming_the_institution(
    round: int,
) -> None:
    advert = _advert()

    with pytest.raises(ProtocolAbort) as caught:
        advert.round_key(round)

    assert caught.value.stage is Stage.train and caught.value.peer == "bank_a"
    assert caught.value.reason == f"advertisement covers rounds 2–4, not round {round}"


@pytest.mark.parametrize("rounds", [range(0, 3), range(3, 3), range(1, 6, 2)])
def test_advertisement_needs_consecutive_rounds_from_one(rounds: range) -> None:
    with pytest.raises(ValueError, match="consecutive rounds"):
        advertise(SIGNERS["bank_a"], KEYS, institution="bank_a", node_id=NODE, rounds=rounds)
