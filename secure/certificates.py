"""X.509 material for a consortium's TLS and Flower's SuperNode authentication keys.

A consortium CA (ECDSA P-256, self-signed) signs the SuperLink's TLS server certificate;
ECDSA rather than Ed25519 because common TLS stacks (gRPC, browsers) lack Ed25519
certificates. SuperNode authentication keys are EC P-384 in the OpenSSH formats Flower 1.41 reads
(``load_ssh_private_key`` in ``flwr/supernode/cli/flower_supernode.py``,
``load_ssh_public_key`` in ``flwr/cli/supernode/register.py``).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_VALID_DAYS = 5 * 365
SERVER_VALID_DAYS = 365
_BACKDATE = dt.timedelta(minutes=5)  # tolerate small clock skew between machines


def generate_ca(
    common_name: str, *, valid_days: int = CA_VALID_DAYS, now: dt.datetime | None = None
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """Create a self-signed ECDSA P-256 certificate authority.

    Parameters
    ----------
    common_name : str
        The CA's subject common name; non-empty.
    valid_days : int (default: 1825)
        Validity period; positive.
    now : datetime.datetime | None (default: None)
        Test seam for the issuing time (UTC); the current time when None.

    Returns
    -------
    tuple[ec.EllipticCurvePrivateKey, x509.Certificate]
        The CA key and its certificate (basicConstraints CA=true, keyUsage keyCertSign).

    Raises
    ------
    ValueError
        If ``common_name`` is empty or ``valid_days`` is not positive.
    """
    if not isinstance(common_name, str) or not common_name.strip():
        raise ValueError(f"`common_name` must be a non-empty string; got {common_name!r}")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        _builder(name, name, key.public_key(), valid_days=valid_days, now=now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )
    return key, builder.sign(key, hashes.SHA256())


def issue_server_certificate(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    *,
    hosts: Sequence[str],
    valid_days: int = SERVER_VALID_DAYS,
    now: dt.datetime | None = None,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """Issue a TLS server certificate (ECDSA P-256) signed by the CA.

    Parameters
    ----------
    ca_key : ec.EllipticCurvePrivateKey
        The CA's private key.
    ca_cert : x509.Certificate
        The CA's certificate.
    hosts : Sequence[str]
        Host names and IP addresses the server answers on; each becomes a
        subjectAltName (an IP address entry when it parses as one). The first is the
        subject common name.
    valid_days : int (default: 365)
        Validity period; positive.
    now : datetime.datetime | None (default: None)
        Test seam for the issuing time (UTC); the current time when None.

    Returns
    -------
    tuple[ec.EllipticCurvePrivateKey, x509.Certificate]
        The server key and its certificate (extendedKeyUsage serverAuth).

    Raises
    ------
    TypeError
        If ``ca_key`` is not an EC private key.
    ValueError
        If ``hosts`` is empty or holds an empty name, or ``valid_days`` is not positive.
    """
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TypeError(f"`ca_key` must be an EllipticCurvePrivateKey; got {type(ca_key).__name__}")
    if isinstance(hosts, str) or not hosts or not all(isinstance(h, str) and h for h in hosts):
        raise ValueError(f"`hosts` must be a non-empty sequence of non-empty names; got {hosts!r}")
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        _builder(subject, ca_cert.subject, key.public_key(), valid_days=valid_days, now=now)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), False
        )
    )
    return key, builder.sign(ca_key, hashes.SHA256())


def generate_node_auth_key() -> ec.EllipticCurvePrivateKey:
    """Generate a SuperNode authentication key (EC P-384, a NIST curve Flower accepts)."""
    return ec.generate_private_key(ec.SECP384R1())


def node_auth_key_files(key: ec.EllipticCurvePrivateKey) -> tuple[bytes, bytes]:
    """Encode a SuperNode key as Flower reads it: OpenSSH private key and public key.

    Returns
    -------
    tuple[bytes, bytes]
        The unencrypted OpenSSH private key (for ``flower-supernode
        --auth-supernode-private-key``) and the ``ecdsa-sha2-nistp384 …`` public key
        line (for ``flwr supernode register``).

    Raises
    ------
    TypeError
        If ``key`` is not an EC private key.
    """
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TypeError(f"`key` must be an EllipticCurvePrivateKey; got {type(key).__name__}")
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return private, public + b"\n"


def private_key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """Encode a TLS private key as unencrypted PKCS#8 PEM (what gRPC loads)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def certificate_pem(cert: x509.Certificate) -> bytes:
    """Encode a certificate as PEM."""
    return cert.public_bytes(serialization.Encoding.PEM)


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    *,
    valid_days: int,
    now: dt.datetime | None,
) -> x509.CertificateBuilder:
    if isinstance(valid_days, bool) or not isinstance(valid_days, int) or valid_days <= 0:
        raise ValueError(f"`valid_days` must be a positive integer; got {valid_days!r}")
    start = (now or dt.datetime.now(dt.UTC)) - _BACKDATE
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + _BACKDATE + dt.timedelta(days=valid_days))
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    flags = dict.fromkeys(("content_commitment", "key_encipherment", "data_encipherment"), False)
    flags |= dict.fromkeys(("key_agreement", "encipher_only", "decipher_only"), False)
    return x509.KeyUsage(
        digital_signature=True, key_cert_sign=cert_sign, crl_sign=cert_sign, **flags
    )
