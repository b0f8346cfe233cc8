from __future__ import annotations

import numpy as np
import pytest
from Crypto.Cipher import ChaCha20 as PyCryptodomeChaCha20

from fedrisk.secure.masks import MASK_LABEL, MASK_NONCE, _keystream_into, mask_vector

# RFC 8439 (https://www.rfc-editor.org/rfc/rfc8439), appendix A.1, test vector #1:
# all-zero key, all-zero 96-bit nonce, block counter 0 -> first 64 keystream bytes.
RFC8439_A1_KEYSTREAM = bytes.fromhex(
    "76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7"
    "da41597c5157488d7724e03fb8d84a376a43b8f41518a11cc387b669b2ee6586"
)
# RFC 8439, section 2.4.2 (the "sunscreen" example): key 00 01 .. 1f, 96-bit nonce
# 00000000 0000004a 00000000, initial counter 1; the first 64 ciphertext bytes. The
# keystream is ciphertext XOR plaintext.
RFC8439_242_KEY = bytes(range(32))
RFC8439_242_NONCE = bytes.fromhex("000000000000004a00000000")
RFC8439_242_PLAINTEXT = (
    b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the "
    b"future, sunscreen would be it."
)
RFC8439_242_CIPHERTEXT_64 = bytes.fromhex(
    "6e2e359a2568f98041ba0728dd0d6981e97e7aec1d4360c20a27afccfd9fae0b"
    "f91b65c5524733ab8f593dabcd62b3571639d624e65152ab8f530c359f0861d8"
)


def _keystream(key: bytes, counter: int, nonce12: bytes, nbytes: int) -> bytes:
    # cryptography's 16-byte nonce = 4-byte little-endian counter || 12-byte RFC nonce.
    out = np.zeros(nbytes, dtype=np.uint8)  # the keystream is the encryption of zeros
    _keystream_into(key, counter.to_bytes(4, "little") + nonce12, out)
    return out.tobytes()


def test_keystream_matches_rfc8439_appendix_a1_vector_1() -> None:
    assert _keystream(bytes(32), 0, bytes(12), 64) == RFC8439_A1_KEYSTREAM


def test_keystream_matches_rfc8439_section_2_4_2() -> None:
    stream = _keystream(RFC8439_242_KEY, 1, RFC8439_242_NONCE, 64)
    ciphertext = bytes(a ^ b for a, b in zip(stream, RFC8439_242_PLAINTEXT[:64], strict=True))
    assert ciphertext == RFC8439_242_CIPHERTEXT_64


def test_first_words_are_little_endian_rfc_keystream() -> None:
    words = np.frombuffer(RFC8439_A1_KEYSTREAM, dtype="<u4")
    assert words[0] == 0xADE0B876
    assert words[1] == 0x903DF1A0


def test_mask_matches_independent_pycryptodome_chacha20() -> None:
    seed = bytes(range(100, 132))
    oracle = PyCryptodomeChaCha20.new(key=seed, nonce=MASK_LABEL).encrypt(bytes(4 * 1000))
    mask = mask_vector(seed, 1000, bits=32)
    assert mask.tobytes() == np.frombuffer(oracle, dtype="<u4").astype(np.uint32).tobytes()
    assert bytes(4) + MASK_LABEL == MASK_NONCE


@pytest.mark.parametrize("bits, dtype", [(32, np.uint32), (64, np.uint64)])
def test_mask_shape_dtype_and_determinism(bits: int, dtype: type) -> None:
    seed = bytes(range(32))
    mask = mask_vector(seed, 257, bits=bits)
    assert mask.shape == (257,)
    assert mask.dtype == dtype
    assert mask.flags.writeable
    np.testing.assert_array_equal(mask, mask_vector(seed, 257, bits=bits))


def test_64_bit_mask_is_the_same_keystream_as_32_bit() -> None:
    seed = bytes(32)
    wide = mask_vector(seed, 16, bits=64)
    narrow = mask_vector(seed, 32, bits=32)
    assert wide.astype("<u8").tobytes() == narrow.astype("<u4").tobytes()
    assert narrow.astype("<u4").tobytes()[:64] != RFC8439_A1_KEYSTREAM  # MASK_NONCE != 0


def test_different_seeds_give_different_masks() -> None:
    assert not np.array_equal(
        mask_vector(bytes(32), 64, bits=32), mask_vector(bytes(31) + b"\x01", 64, bits=32)
    )


def test_prefix_property_and_empty_mask() -> None:
    seed = bytes(range(32))
    np.testing.assert_array_equal(
        mask_vector(seed, 10, bits=32), mask_vector(seed, 20, bits=32)[:10]
    )
    assert mask_vector(seed, 0, bits=64).shape == (0,)


def test_mask_words_look_uniform() -> None:
    mask = mask_vector(bytes(range(32)), 100_000, bits=32)
    assert abs(mask.astype(np.float64).mean() / 2**32 - 0.5) < 0.01


@pytest.mark.parametrize(
    "seed, length, bits, error",
    [
        ("x" * 32, 4, 32, TypeError),
        (bytes(32), 4.0, 32, TypeError),
        (bytes(32), 4, True, TypeError),
        (bytes(31), 4, 32, ValueError),
        (bytes(33), 4, 32, ValueError),
        (bytes(32), 4, 16, ValueError),
        (bytes(32), -1, 32, ValueError),
        (bytes(32), 2**62, 64, ValueError),
    ],
)
def test_mask_rejects_bad_arguments(
    seed: object, length: object, bits: object, error: type
) -> None:
    with pytest.raises(error):
        mask_vector(seed, length, bits=bits)  # type: ignore[arg-type]
