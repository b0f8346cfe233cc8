import argparse
import datetime as dt
import ipaddress
import socket
import ssl
import stat
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from flwr.cli.supernode.register import try_load_public_key
from flwr.supercore.primitives.asymmetric import bytes_to_public_key
from flwr.supernode.cli.flower_supernode import _try_setup_client_authentication

from fedrisk.secure.certificates import (
    certificate_pem,
    generate_ca,
    generate_node_auth_key,
    issue_server_certificate,
    node_auth_key_files,
    private_key_pem,
)
from fedrisk.secure.files import write_new_file


@pytest.fixture(scope="module")
def ca() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    return generate_ca("test consortium CA")


@pytest.fixture(scope="module")
def server(
    ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate],
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    return issue_server_certificate(*ca, hosts=["link.example.org", "10.1.2.3", "localhost"])


def test_ca_is_a_self_signed_certificate_authority(ca) -> None:
    key, cert = ca
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    cert.verify_directly_issued_by(cert)
    assert constraints.critical and constraints.value.ca
    assert usage.key_cert_sign
    assert isinstance(key.curve, ec.SECP256R1)
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime >= dt.timedelta(days=5 * 365)


def test_ca_signs_the_server_certificate(ca, server) -> None:
    ca_key, ca_cert = ca
    _, cert = server
    assert cert.signature_hash_algorithm is not None
    ca_key.public_key().verify(
        cert.signature,
        cert.tbs_certificate_bytes,
        ec.ECDSA(cert.signature_hash_algorithm),
    )
    cert.verify_directly_issued_by(ca_cert)
    assert cert.issuer == ca_cert.subject


def test_server_certificate_names_every_host_and_serves_tls(server) -> None:
    _, cert = server
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert sans.get_values_for_type(x509.DNSName) == ["link.example.org", "localhost"]
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.1.2.3")]
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
    assert not constraints.ca
    assert cert.not_valid_after_utc - cert.not_valid_before_utc <= dt.timedelta(days=366)


def _handshake(tmp_path: Path, ca_cert: x509.Certificate, server, hostname: str) -> str:
    key, cert = server
    (tmp_path / "cert.pem").write_bytes(certificate_pem(cert))
    (tmp_path / "key.pem").write_bytes(private_key_pem(key))
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    client_context = ssl.create_default_context(cadata=certificate_pem(ca_cert).decode())
    left, right = socket.socketpair()
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            with server_context.wrap_socket(right, server_side=True) as tls:
                tls.sendall(b"ok")
        except (ssl.SSLError, OSError) as exc:
            errors.append(exc)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with client_context.wrap_socket(left, server_hostname=hostname) as tls:
            reply = tls.recv(2).decode()
    finally:
        thread.join(timeout=10)
    return reply


@pytest.mark.parametrize("hostname", ["link.example.org", "10.1.2.3", "localhost"])
def test_a_client_trusting_the_ca_accepts_the_server(tmp_path, ca, server, hostname) -> None:
    assert _handshake(tmp_path, ca[1], server, hostname) == "ok"


def test_a_client_rejects_a_host_not_in_the_certificate(tmp_path, ca, server) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(tmp_path, ca[1], server, "other.example.org")


def test_a_client_trusting_another_ca_rejects_the_server(tmp_path, server) -> None:
    _, other_ca = generate_ca("someone else")
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(tmp_path, other_ca, server, "localhost")


def test_node_auth_keys_load_with_flowers_own_loaders(tmp_path) -> None:
    key = generate_node_auth_key()
    private, public = node_auth_key_files(key)
    write_new_file(tmp_path / "node", private, private=True)
    write_new_file(tmp_path / "node.pub", public, private=False)

    loaded = _try_setup_client_authentication(
        argparse.Namespace(
            auth_supernode_private_key=str(tmp_path / "node"), auth_supernode_public_key=None
        )
    )
    registered = bytes_to_public_key(try_load_public_key(tmp_path / "node.pub"))

    assert loaded is not None
    assert loaded[0].private_numbers() == key.private_numbers()
    assert registered.public_numbers() == key.public_key().public_numbers()
    assert public.startswith(b"ecdsa-sha2-nistp384 ")


def test_flowers_node_auth_signature_verifies_with_the_registered_key(tmp_path) -> None:
    key = generate_node_auth_key()
    _, public = node_auth_key_files(key)
    write_new_file(tmp_path / "node.pub", public, private=False)
    registered = bytes_to_public_key(try_load_public_key(tmp_path / "node.pub"))
    signature = key.sign(b"message", ec.ECDSA(hashes.SHA256()))
    registered.verify(signature, b"message", ec.ECDSA(hashes.SHA256()))


def test_written_files_have_the_requested_modes(tmp_path) -> None:
    write_new_file(tmp_path / "secret", b"s", private=True)
    write_new_file(tmp_path / "public", b"p", private=False)
    assert stat.S_IMODE((tmp_path / "secret").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "public").stat().st_mode) == 0o644


def test_an_existing_file_is_never_overwritten(tmp_path) -> None:
    write_new_file(tmp_path / "key.pem", b"first", private=True)
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        write_new_file(tmp_path / "key.pem", b"second", private=True)
    assert (tmp_path / "key.pem").read_bytes() == b"first"


@pytest.mark.parametrize("hosts", [[], [""], "localhost"])
def test_server_certificate_needs_hosts(ca, hosts) -> None:
    with pytest.raises(ValueError, match="`hosts` must be"):
        issue_server_certificate(*ca, hosts=hosts)


def test_wrong_key_types_are_type_errors(ca) -> None:
    with pytest.raises(TypeError, match="`ca_key`"):
        issue_server_certificate(b"key", ca[1], hosts=["localhost"])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="`key`"):
        node_auth_key_files(b"key")  # type: ignore[arg-type]


@pytest.mark.parametrize("days", [0, -1, True])
def test_validity_must_be_positive(days) -> None:
    with pytest.raises(ValueError, match="`valid_days`"):
        generate_ca("ca", valid_days=days)


def test_issuing_time_is_a_test_seam() -> None:
    now = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    _, cert = generate_ca("ca", now=now, valid_days=10)
    assert cert.not_valid_before_utc < now < cert.not_valid_after_utc
    assert cert.not_valid_after_utc == now + dt.timedelta(days=10)
