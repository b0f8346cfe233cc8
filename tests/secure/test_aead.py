from __future__ import annotations

import pytest

from fedrisk.secure.aead import KEY_SIZE, NONCE_SIZE, TAG_SIZE, IntegrityError, open_sealed, seal

KEY = bytes(range(KEY_SIZE))
AD = b"stage=shares;run=r1;round=3;from=7;to=9"


def test_round_trip_and_layout() -> None:
    blob = seal(KEY, b"share bytes", associated_data=AD)
    assert blob[0] == 1
    assert len(blob) == 1 + NONCE_SIZE + len(b"share bytes") + TAG_SIZE
    assert open_sealed(KEY, blob, associated_data=AD) == b"share bytes"


def test_empty_plaintext_round_trips() -> None:
    assert open_sealed(KEY, seal(KEY, b"", associated_data=b""), associated_data=b"") == b""


def test_nonces_are_fresh() -> None:
    first, second = (seal(KEY, b"x", associated_data=AD) for _ in range(2))
    assert first[1 : 1 + NONCE_SIZE] != second[1 : 1 + NONCE_SIZE]


@pytest.mark.parametrize(
    "position",
    [0, 1, NONCE_SIZE, 1 + NONCE_SIZE, -TAG_SIZE, -1],
    ids=["version", "nonce-first", "nonce-last", "ciphertext", "tag-first", "tag-last"],
)
def test_any_flipped_byte_is_an_integrity_error(position: int) -> None:
    blob = bytearray(seal(KEY, b"secret share", associated_data=AD))
    blob[position] ^= 0x01
    with pytest.raises(IntegrityError, match=r"^sealed message failed authentication$"):
        open_sealed(KEY, bytes(blob), associated_data=AD)


def test_wrong_associated_data_key_or_truncation_is_an_integrity_error() -> None:
    blob = seal(KEY, b"secret share", associated_data=AD)
    cases = [
        (KEY, blob, AD + b"x"),
        (bytes(KEY_SIZE), blob, AD),
        (KEY, blob[:-1], AD),
        (KEY, blob[: 1 + NONCE_SIZE + TAG_SIZE - 1], AD),
        (KEY, b"", AD),
        (KEY, b"\x02" + blob[1:], AD),
    ]
    for key, candidate, ad in cases:
        with pytest.raises(IntegrityError) as info:
            open_sealed(key, candidate, associated_data=ad)
        assert str(info.value) == "sealed message failed authentication"
        assert info.value.__cause__ is None


def test_error_message_never_contains_secrets() -> None:
    blob = seal(KEY, b"TOPSECRET", associated_data=AD)
    with pytest.raises(IntegrityError) as info:
        open_sealed(bytes(KEY_SIZE), blob, associated_data=AD)
    assert "TOPSECRET" not in str(info.value) and KEY.hex() not in str(info.value)


@pytest.mark.parametrize("length", [0, 16, 31, 33])
def test_wrong_key_length_is_a_value_error(length: int) -> None:
    with pytest.raises(ValueError, match="`key` must be 32 bytes"):
        seal(bytes(length), b"x", associated_data=AD)
    with pytest.raises(ValueError, match="`key` must be 32 bytes"):
        open_sealed(bytes(length), b"x" * 40, associated_data=AD)


@pytest.mark.parametrize(
    "key, data, ad",
    [("k" * 32, b"x", b""), (KEY, "x", b""), (KEY, b"x", "ad"), (bytearray(KEY), b"x", b"")],
)
def test_wrong_types_are_type_errors(key: object, data: object, ad: object) -> None:
    with pytest.raises(TypeError):
        seal(key, data, associated_data=ad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        open_sealed(key, data, associated_data=ad)  # type: ignore[arg-type]
