"""The bank's side of provisioning: its keys are born here, and it pins the manifest.

``fedrisk consortium join`` generates the bank's Ed25519 signing key and its SuperNode
authentication key in the bank's own folder (mode 0600) and writes a public *join
request* for the coordinator. ``fedrisk consortium pin`` checks the manifest the
coordinator sends back (the bank's own keys, as it generated them, under its own name)
and stores its SHA-256; ``fedrisk node`` refuses a manifest that no longer matches.

Notes
-----
Threat: a coordinator that generates or swaps a bank's keys could sign ledger entries,
SecAgg advertisements and roll-call proofs as that bank. Here no bank's private key
ever leaves its folder, the join request is signed by the key it announces (a typo or a
swapped key is caught by the coordinator), and the bank refuses any manifest that lists
other keys for it or that changes after it was pinned.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from fedrisk.client.node_keys import SIGNING_KEY_FILE
from fedrisk.privacy.manifest import MANIFEST_FILE, ConsortiumManifest
from fedrisk.secure import certificates as certs
from fedrisk.secure.files import write_new_file
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

JOIN_REQUEST_FILE = "join-request.json"
PIN_FILE = "consortium.sha256"
NODE_AUTH_KEY_FILE = "supernode_auth_key"
NODE_AUTH_PUBLIC_FILE = "supernode_auth_key.pub"
CA_CERT_FILE = "ca_cert.pem"
SUPERLINK_ADDRESS_FILE = "superlink_address.txt"  # host:port the SuperNodes dial by default
JOIN_LABEL = b"fedrisk/join-request/v1"
JOIN_VERSION = 1
_REQUEST_KEYS = ("institution", "node_auth_key", "public_key", "signature", "version")
_FOLDER_MODE = 0o700


class JoinError(ValueError):
    """A join request, a manifest to pin, or a pinned manifest is not acceptable."""


@dataclass(frozen=True)
class JoinRequest:
    """What a bank hands the coordinator: its name and its two public keys, self-signed.

    Parameters
    ----------
    institution : str
        The bank's name in the consortium.
    public_key : str
        Its Ed25519 signing key, base64 (`public_key_text`).
    node_auth_key : str
        Its SuperNode authentication public key, one OpenSSH line.
    signature : bytes
        Ed25519 signature by ``public_key`` over the other fields (`JOIN_LABEL`).
    """

    institution: str
    public_key: str
    node_auth_key: str
    signature: bytes

    def signed_bytes(self) -> bytes:
        """Return the canonical JSON the signature covers."""
        body = {
            "version": JOIN_VERSION,
            "institution": self.institution,
            "public_key": self.public_key,
            "node_auth_key": self.node_auth_key,
        }
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")

    def to_bytes(self) -> bytes:
        """Return the request file's content."""
        body = json.loads(self.signed_bytes())
        body["signature"] = base64.b64encode(self.signature).decode("ascii")
        return (json.dumps(body, indent=2, sort_keys=True) + "\n").encode("utf-8")

    @classmethod
    def load(cls, path: Path) -> JoinRequest:
        """Read a join request and check its self-signature.

        Raises
        ------
        JoinError
            Naming the file and the field that is wrong.
        """
        try:
            obj = json.loads(Path(path).read_bytes().decode("utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise JoinError(f"join request {path}: cannot be read ({err})") from None
        if not isinstance(obj, dict) or set(obj) != set(_REQUEST_KEYS):
            got = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
            raise JoinError(
                f"join request {path}: must be an object with keys {list(_REQUEST_KEYS)}; got {got}"
            )
        if obj["version"] != JOIN_VERSION:
            raise JoinError(
                f"join request {path}: `version` must be {JOIN_VERSION}; got {obj['version']!r}"
            )
        try:
            request = cls(
                institution=str(obj["institution"]),
                public_key=str(obj["public_key"]),
                node_auth_key=str(obj["node_auth_key"]),
                signature=base64.b64decode(str(obj["signature"]), validate=True),
            )
            verify_signature(
                public_key_from_text(request.public_key),
                request.signature,
                request.signed_bytes(),
                context=JOIN_LABEL,
            )
        except SignatureInvalid:
            raise JoinError(
                f"join request {path}: `signature` must verify against its `public_key`; "
                "it does not (altered in transit?)"
            ) from None
        except (ValueError, TypeError) as err:
            raise JoinError(f"join request {path}: {err}") from None
        return request


def join(institution: str, folder: Path) -> JoinRequest:
    """Generate the bank's keys in ``folder`` (created, mode 0700) and its join request.

    Parameters
    ----------
    institution : str
        The bank's name (validated by the caller).
    folder : Path
        The bank's folder; must not exist.

    Returns
    -------
    JoinRequest
        Also written to ``folder/join-request.json``.

    Raises
    ------
    FileExistsError
        If ``folder`` exists (a bank's keys are never overwritten).
    OSError
        If a file cannot be written; the folder is then removed.
    """
    folder = Path(folder)
    if folder.exists() or folder.is_symlink():
        raise FileExistsError(f"{folder} already exists (refusing to overwrite it)")
    folder.parent.mkdir(parents=True, exist_ok=True)
    os.mkdir(folder, _FOLDER_MODE)
    try:
        signing_key = generate_signing_key()
        save_private_key(signing_key, folder / SIGNING_KEY_FILE)
        auth_private, auth_public = certs.node_auth_key_files(certs.generate_node_auth_key())
        write_new_file(folder / NODE_AUTH_KEY_FILE, auth_private, private=True)
        write_new_file(folder / NODE_AUTH_PUBLIC_FILE, auth_public, private=False)
        unsigned = JoinRequest(
            institution=institution,
            public_key=public_key_text(signing_key.public_key()),
            node_auth_key=auth_public.decode("ascii").strip(),
            signature=b"",
        )
        signature = sign(signing_key, unsigned.signed_bytes(), context=JOIN_LABEL)
        request = JoinRequest(**{**unsigned.__dict__, "signature": signature})
        write_new_file(folder / JOIN_REQUEST_FILE, request.to_bytes(), private=False)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return request


def manifest_sha256(data: bytes) -> str:
    """Return the hex SHA-256 of a manifest's bytes (what a bank pins)."""
    return hashlib.sha256(data).hexdigest()


def pin(
    folder: Path,
    manifest: Path,
    ca_cert: Path,
    *,
    superlink: str | None = None,
    sha256: str | None = None,
) -> tuple[str, str]:
    """Check the manifest the coordinator sent and pin it in the bank's folder.

    Parameters
    ----------
    folder : Path
        The bank's folder written by `join`.
    manifest : Path
        The manifest the coordinator sent.
    ca_cert : Path
        The consortium CA certificate the coordinator sent.
    superlink : str | None (default: None)
        ``host:port`` of the SuperLink, written for ``fedrisk node``.
    sha256 : str | None (default: None)
        The manifest's SHA-256 as the coordinator announced it over another channel;
        checked when given.

    Returns
    -------
    tuple[str, str]
        The bank's institution name and the pinned SHA-256.

    Raises
    ------
    JoinError
        If the folder holds no join request, the manifest does not load, does not list
        this bank's two keys under its name, or does not match ``sha256``; nothing is
        written then.
    """
    folder, manifest = Path(folder), Path(manifest)
    request = _own_request(folder)
    data = _read(manifest, "manifest")
    digest = manifest_sha256(data)
    if sha256 is not None and not hmac.compare_digest(digest, sha256.strip().lower()):
        raise JoinError(
            f"`--sha256` must be the SHA-256 of {manifest}; got {sha256!r}, the file's is {digest}"
        )
    try:
        parsed = ConsortiumManifest.parse(data, source=manifest)
    except ValueError as err:
        raise JoinError(" ".join(str(err).split())) from None
    check_own_keys(parsed, request, source=manifest)
    ca = _read(ca_cert, "CA certificate")
    try:
        x509.load_pem_x509_certificate(ca)
    except ValueError:
        raise JoinError(f"`--ca-cert` must be a PEM certificate; got {ca_cert}") from None
    _replace(folder / MANIFEST_FILE, data)
    _replace(folder / CA_CERT_FILE, ca)
    if superlink is not None:
        _replace(folder / SUPERLINK_ADDRESS_FILE, superlink.encode("ascii") + b"\n")
    _replace(folder / PIN_FILE, f"{digest}  {MANIFEST_FILE}\n".encode("ascii"))
    return request.institution, digest


def check_own_keys(manifest: ConsortiumManifest, request: JoinRequest, *, source: Path) -> None:
    """Check that ``manifest`` lists the bank's keys as it generated them, under its name.

    Raises
    ------
    JoinError
        If its name is missing or another key is listed for it.
    """
    try:
        record = manifest.institution(request.institution)
    except ValueError as err:
        raise JoinError(f"manifest {source}: {err}") from None
    for field, mine in (
        ("public_key", request.public_key),
        ("node_auth_key", request.node_auth_key),
    ):
        listed = getattr(record, field)
        if listed != mine:
            raise JoinError(
                f"manifest {source}: `institutions[{request.institution}].{field}` must be "
                f"the key this bank generated ({mine[:24]}…); got {str(listed)[:24]}…"
            )


def check_pin(folder: Path) -> None:
    """Check that the bank's manifest still matches the SHA-256 pinned in its folder.

    Raises
    ------
    JoinError
        If no pin exists or the manifest's bytes changed since they were pinned.
    """
    pinned_file = Path(folder) / PIN_FILE
    if not pinned_file.is_file():
        raise JoinError(
            f"{folder}: no {PIN_FILE}; check and pin the manifest first "
            "(`fedrisk consortium pin --consortium … --manifest … --ca-cert …`)"
        )
    pinned = pinned_file.read_text(encoding="ascii").split()[0]
    actual = manifest_sha256(_read(Path(folder) / MANIFEST_FILE, "manifest"))
    if not hmac.compare_digest(pinned, actual):
        raise JoinError(
            f"`{Path(folder) / MANIFEST_FILE}` must match the SHA-256 pinned in {PIN_FILE} "
            f"({pinned[:16]}…); got {actual[:16]}… (changed since it was pinned: pin the "
            "coordinator's new manifest only after checking it)"
        )


def own_request(folder: Path) -> JoinRequest:
    """Return the join request this bank's folder holds (its own keys).

    Raises
    ------
    JoinError
        If it is missing or does not match the folder's signing key.
    """
    return _own_request(Path(folder))


def _own_request(folder: Path) -> JoinRequest:
    request = JoinRequest.load(folder / JOIN_REQUEST_FILE)
    try:
        key = load_private_key(folder / SIGNING_KEY_FILE)
    except (OSError, TypeError, ValueError) as err:
        raise JoinError(f"{folder / SIGNING_KEY_FILE}: cannot be read ({err})") from None
    if public_key_text(key.public_key()) != request.public_key:
        raise JoinError(
            f"{folder / JOIN_REQUEST_FILE}: `public_key` must be the folder's own signing key"
        )
    return request


def _read(path: Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as err:
        raise JoinError(f"{what} {path}: cannot be read ({err.strerror})") from None


def _replace(path: Path, data: bytes) -> None:
    temporary = path.with_name(path.name + ".new")
    temporary.unlink(missing_ok=True)
    write_new_file(temporary, data, private=False)
    os.replace(temporary, path)
