"""The signed statement a bank attaches when it sends a released round again."""

import hashlib
import json

import pytest

from fedrisk.privacy.resend import RESEND_SIGNATURE_CONTEXT, ResendInvalid, ResendStatement
from fedrisk.secure.signing import generate_signing_key, verify_signature


def _hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _statement(**changes: object) -> ResendStatement:
    fields: dict = {
        "run_id": "run-1",
        "round": 3,
        "institution": "bank_a",
        "ledger_seq": 2,
        "ledger_sha256": _hex("first"),
        "sent_sha256": _hex("again"),
    }
    fields.update(changes)
    return ResendStatement(**fields)


def test_a_signed_statement_verifies_and_round_trips_through_json() -> None:
    key = generate_signing_key()
    statement = _statement().signed(key)

    statement.verify(key.public_key())
    again = ResendStatement.from_json(json.loads(json.dumps(statement.to_json())))
    assert again == statement
    again.verify(key.public_key())
    assert len(bytes.fromhex(statement.signature)) == 64
    # The signature is over the canonical JSON under the statement's own label.
    verify_signature(
        key.public_key(),
        bytes.fromhex(statement.signature),
        statement.signed_bytes(),
        context=RESEND_SIGNATURE_CONTEXT,
    )
    assert b'"version":1' in statement.signed_bytes()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("round", 4),
        ("ledger_seq", 3),
        ("sent_sha256", _hex("forged")),
        ("ledger_sha256", _hex("other")),
        ("run_id", "run-2"),
        ("institution", "bank_b"),
    ],
)
def test_any_changed_field_breaks_the_signature(field: str, value: object) -> None:
    key = generate_signing_key()
    obj = _statement().signed(key).to_json()
    obj[field] = value  # type: ignore[assignment]

    with pytest.raises(ResendInvalid, match="does not verify with its manifest key"):
        ResendStatement.from_json(obj).verify(key.public_key())


def test_another_banks_key_and_an_unsigned_statement_are_refused() -> None:
    statement = _statement().signed(generate_signing_key())

    with pytest.raises(ResendInvalid, match="does not verify"):
        statement.verify(generate_signing_key().public_key())
    with pytest.raises(ResendInvalid, match="is not signed"):
        _statement().verify(generate_signing_key().public_key())


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"round": -1}, "`round` must be a non-negative integer; got -1"),
        ({"ledger_seq": True}, "`ledger_seq` must be a non-negative integer; got True"),
        ({"sent_sha256": "ABC"}, "`sent_sha256` must be 64 lowercase hex digits; got 'ABC'"),
        ({"run_id": ""}, "`run_id` must be a non-empty string"),
        ({"signature": "00"}, "`signature` must be 128 lowercase hex digits"),
    ],
)
def test_malformed_fields_are_named(changes: dict, message: str) -> None:
    with pytest.raises(ResendInvalid, match=message.replace("`", ".").replace("(", r"\(")):
        _statement(**changes)


def test_missing_and_unknown_fields_are_named() -> None:
    obj = _statement().to_json()
    del obj["ledger_seq"]
    obj["extra"] = 1

    with pytest.raises(ResendInvalid, match=r"missing \['ledger_seq'\], unknown \['extra'\]"):
        ResendStatement.from_json(obj)
