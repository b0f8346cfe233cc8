from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

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

CONTEXT = b"fedrisk/test/v1"

# RFC 8032, section 7.1, "TEST 1" (Ed25519, empty message):
# https://www.rfc-editor.org/rfc/rfc8032#section-7.1
RFC8032_SECRET = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8032_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
RFC8032_SIGNATURE = bytes.fromhex(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
    "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)


def test_sign_verify_round_trip() -> None:
    key = generate_signing_key()

    signature = sign(key, b"payload", context=CONTEXT)

    assert len(signature) == 64
    verify_signature(key.public_key(), signature, b"payload", context=CONTEXT)


@pytest.mark.parametrize(
    ("message", "context", "other_key"),
    [
        (b"payloae", CONTEXT, False),
        (b"payload", b"fedrisk/other/v1", False),
        (b"payload", CONTEXT, True),
    ],
    ids=["tampered-message", "other-context", "other-key"],
)
def test_verify_rejects(message: bytes, context: bytes, other_key: bool) -> None:
    key = generate_signing_key()
    signature = sign(key, b"payload", context=CONTEXT)
    public = generate_signing_key().public_key() if other_key else key.public_key()

    with pytest.raises(SignatureInvalid):
        verify_signature(public, signature, message, context=context)


def test_context_cannot_be_shifted_into_the_message() -> None:
    key = generate_signing_key()
    signature = sign(key, b"b\x00payload", context=b"a")

    with pytest.raises(ValueError, match="NUL"):
        verify_signature(key.public_key(), signature, b"payload", context=b"a\x00b")


@pytest.mark.parametrize("signature", [b"", b"\x00" * 63, b"\x00" * 65, "ab" * 32, None])
def test_verify_rejects_malformed_signature(signature: object) -> None:
    key = generate_signing_key()

    with pytest.raises(SignatureInvalid):
        verify_signature(key.public_key(), signature, b"m", context=CONTEXT)  # type: ignore[arg-type]


def test_wrong_types_raise_type_error() -> None:
    key = generate_signing_key()
    signature = sign(key, b"m", context=CONTEXT)

    with pytest.raises(TypeError):
        sign(key, "m", context=CONTEXT)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        sign(key, b"m", context="ctx")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        sign(key.public_key(), b"m", context=CONTEXT)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        verify_signature(key, signature, b"m", context=CONTEXT)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        public_key_text(key)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        public_key_from_text(b"abc")  # type: ignore[arg-type]


@pytest.mark.parametrize("context", [b"", b"a\x00b"])
def test_bad_context_raises_value_error(context: bytes) -> None:
    with pytest.raises(ValueError, match="`context` must be"):
        sign(generate_signing_key(), b"m", context=context)


def test_public_key_text_round_trip() -> None:
    public = generate_signing_key().public_key()

    text = public_key_text(public)

    assert len(base64.b64decode(text)) == 32
    assert public_key_from_text(text) == public


@pytest.mark.parametrize(
    "text",
    [
        base64.b64encode(b"\x01" * 31).decode(),
        base64.b64encode(b"\x01" * 33).decode(),
        "not base64!",
        "",
    ],
)
def test_public_key_from_text_rejects_wrong_length_or_encoding(text: str) -> None:
    with pytest.raises(ValueError, match="`text` must"):
        public_key_from_text(text)


def test_rfc8032_known_answer() -> None:
    key = Ed25519PrivateKey.from_private_bytes(RFC8032_SECRET)
    public = key.public_key()

    assert public.public_bytes(Encoding.Raw, PublicFormat.Raw) == RFC8032_PUBLIC
    assert key.sign(b"") == RFC8032_SIGNATURE
    public.verify(RFC8032_SIGNATURE, b"")


def test_context_wrapper_signs_context_nul_message() -> None:
    # Ed25519 is deterministic, so the wrapper's output pins its exact input bytes.
    key = Ed25519PrivateKey.from_private_bytes(RFC8032_SECRET)
    public = Ed25519PublicKey.from_public_bytes(RFC8032_PUBLIC)

    wrapped = sign(key, b"message", context=CONTEXT)

    assert wrapped == key.sign(CONTEXT + b"\x00" + b"message")
    verify_signature(public, key.sign(CONTEXT + b"\x00" + b"message"), b"message", context=CONTEXT)
    with pytest.raises(SignatureInvalid):
        verify_signature(public, key.sign(b"message"), b"message", context=CONTEXT)


def test_key_file_round_trip_mode_0600(tmp_path: Path) -> None:
    key = generate_signing_key()
    path = tmp_path / "bank_a.pem"
    old_umask = os.umask(0)  # a permissive umask must not widen the file's mode
    try:
        save_private_key(key, path)
    finally:
        os.umask(old_umask)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = load_private_key(path)
    assert public_key_text(loaded.public_key()) == public_key_text(key.public_key())


def test_save_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "bank_a.pem"
    save_private_key(generate_signing_key(), path)
    before = path.read_bytes()

    with pytest.raises(FileExistsError, match=r"bank_a\.pem"):
        save_private_key(generate_signing_key(), path)
    assert path.read_bytes() == before


def test_load_refuses_group_readable_key_file(tmp_path: Path) -> None:
    path = tmp_path / "bank_a.pem"
    save_private_key(generate_signing_key(), path)
    path.chmod(0o644)

    with pytest.raises(ValueError, match=r"0644 for .*bank_a\.pem"):
        load_private_key(path)


def test_encrypted_key_needs_its_passphrase(tmp_path: Path) -> None:
    key = generate_signing_key()
    path = tmp_path / "bank_a.pem"
    save_private_key(key, path, passphrase=b"correct horse")

    assert b"ENCRYPTED" in path.read_bytes()
    loaded = load_private_key(path, passphrase=b"correct horse")
    assert public_key_text(loaded.public_key()) == public_key_text(key.public_key())
    for passphrase in (None, b"wrong horse"):
        with pytest.raises(ValueError, match="unreadable key") as excinfo:
            load_private_key(path, passphrase=passphrase)
        assert "horse" not in str(excinfo.value)


def test_load_rejects_non_ed25519_key(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    path = tmp_path / "ec.pem"
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.write_bytes(pem)
    path.chmod(0o600)

    with pytest.raises(ValueError, match="Ed25519"):
        load_private_key(path)


def test_load_rejects_garbage_without_echoing_it(tmp_path: Path) -> None:
    path = tmp_path / "junk.pem"
    path.write_bytes(b"SECRETSECRET")
    path.chmod(0o600)

    with pytest.raises(ValueError) as excinfo:
        load_private_key(path)
    assert "SECRET" not in str(excinfo.value)


def test_empty_passphrase_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="`passphrase` must be non-empty"):
        save_private_key(generate_signing_key(), tmp_path / "k.pem", passphrase=b"")
    assert not (tmp_path / "k.pem").exists()
