"""Provision a consortium: the coordinator assembles it from the banks' join requests.

Every bank runs ``fedrisk consortium join`` on its own machine (`fedrisk.deploy.join`):
its private keys are born there. The coordinator runs ``fedrisk consortium assemble``
on the banks' public join requests: ``DIR/ca/`` keeps the consortium CA's private key
(to be moved offline); ``DIR/coordinator/`` holds the SuperLink's TLS certificate and
key, the CA certificate and the manifest (every bank's public signing and SuperNode
keys), and no bank's private key. Each bank then pins the manifest
(``fedrisk consortium pin``). ``fedrisk consortium init`` runs the same three steps on
one machine, one folder per party.
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
import os
import re
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from fedrisk.client.policy import write_policy
from fedrisk.deploy.join import (
    CA_CERT_FILE,
    JOIN_REQUEST_FILE,
    NODE_AUTH_KEY_FILE,
    SUPERLINK_ADDRESS_FILE,
    JoinError,
    JoinRequest,
    join,
    manifest_sha256,
    pin,
)
from fedrisk.privacy.ledger_format import INSTITUTION_PATTERN
from fedrisk.privacy.manifest import MANIFEST_FILE, ConsortiumManifest, InstitutionRecord
from fedrisk.secure import certificates as certs
from fedrisk.secure.files import write_new_file
from fedrisk.strategies import messages

CA_DIR = "ca"
COORDINATOR_DIR = "coordinator"
CA_KEY_FILE = "ca_key.pem"
SUPERLINK_CERT_FILE = "superlink_cert.pem"
SUPERLINK_KEY_FILE = "superlink_key.pem"
README_FILE = "README.txt"
DEFAULT_HOSTS = ("localhost", "127.0.0.1")
FLEET_PORT = 8000  # Flower 1.41 serves the Fleet API over HTTPS on --host/--port
_FOLDER_MODE = 0o700
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = re.compile(rf"(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*")


class SpecError(ValueError):
    """A consortium specification field is invalid; ``field`` names it."""

    def __init__(self, field: str, constraint: str, value: object) -> None:
        super().__init__(f"`{field}` must be {constraint}; got {value!r}")
        self.field = field
        self.constraint = constraint
        self.value = value


@dataclass(frozen=True)
class ConsortiumSpec:
    """What ``fedrisk consortium init`` provisions.

    Parameters
    ----------
    name : str
        The consortium's name (letters, digits, ``-``, ``_``; at most 64 characters).
    institutions : tuple[str, ...]
        The banks; at least two, unique, named like ``name`` and not ``ca`` or
        ``coordinator`` (they become folder names).
    coordinator_hosts : tuple[str, ...]
        DNS names or IP addresses of the SuperLink; ``localhost`` and ``127.0.0.1`` are
        always added to its certificate.
    epsilon_budget : float (default: 8.0)
        Every institution's ε budget; positive and finite.
    delta : float (default: 1e-05)
        Every institution's δ budget, in (0, 1).

    Raises
    ------
    SpecError
        Naming the first invalid field and its value.
    """

    name: str
    institutions: tuple[str, ...]
    coordinator_hosts: tuple[str, ...]
    epsilon_budget: float = 8.0
    delta: float = 1e-5

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name) or not INSTITUTION_PATTERN.fullmatch(self.name):
            raise SpecError("name", "letters, digits, '-' or '_' (at most 64)", self.name)
        banks = self.institutions
        for bank in banks:
            if not _NAME.fullmatch(bank) or not INSTITUTION_PATTERN.fullmatch(bank):
                raise SpecError("institutions", "letters, digits, '-' or '_' (at most 64)", bank)
            if bank in (CA_DIR, COORDINATOR_DIR):
                raise SpecError("institutions", "names other than 'ca' and 'coordinator'", bank)
        if len(banks) < 2:
            raise SpecError("institutions", "at least 2 banks", ",".join(banks))
        repeated = sorted({bank for bank in banks if banks.count(bank) > 1})
        if repeated:
            raise SpecError("institutions", "unique names", ",".join(repeated))
        if not self.coordinator_hosts:
            raise SpecError("coordinator_hosts", "at least one host", "")
        for host in self.coordinator_hosts:
            if not _is_host(host):
                raise SpecError("coordinator_hosts", "DNS names or IP addresses", host)
        if not (math.isfinite(self.epsilon_budget) and self.epsilon_budget > 0):
            raise SpecError("epsilon_budget", "positive and finite", self.epsilon_budget)
        if not 0.0 < self.delta < 1.0:
            raise SpecError("delta", "in (0, 1)", self.delta)


def check_name(field: str, name: str) -> None:
    """Check a consortium or bank name (it becomes a folder name).

    Raises
    ------
    SpecError
        If ``name`` is not letters, digits, ``-`` or ``_`` (at most 64), or is
        ``ca`` / ``coordinator``.
    """
    if not _NAME.fullmatch(name) or not INSTITUTION_PATTERN.fullmatch(name):
        raise SpecError(field, "letters, digits, '-' or '_' (at most 64)", name)
    if field == "institution" and name in (CA_DIR, COORDINATOR_DIR):
        raise SpecError(field, "names other than 'ca' and 'coordinator'", name)


def join_bank(institution: str, folder: Path) -> JoinRequest:
    """Run a bank's ``fedrisk consortium join``: its keys and join request in ``folder``.

    Raises
    ------
    SpecError
        If ``institution`` is not a valid name.
    FileExistsError
        If ``folder`` exists.
    """
    check_name("institution", institution)
    request = join(institution, folder)
    write_policy(folder, institution=institution)
    _readme(folder, _bank_readme(institution, folder))
    return request


def assemble(spec: ConsortiumSpec, requests: Sequence[JoinRequest], out: Path) -> list[Path]:
    """Write the CA and coordinator folders from the banks' join requests.

    Parameters
    ----------
    spec : ConsortiumSpec
        The consortium; its ``institutions`` are the requests' names, in order.
    requests : Sequence[JoinRequest]
        One verified join request per bank (`JoinRequest.load`).
    out : Path
        The parent folder; its ``ca`` and ``coordinator`` sub-folders must not exist.

    Returns
    -------
    list[Path]
        The folders written: ``ca`` and ``coordinator``.

    Raises
    ------
    FileExistsError
        If a folder already exists (nothing is written then).
    JoinError
        If two requests share a key.
    OSError
        If a file cannot be written; the folders this call created are removed.
    """
    out = Path(out)
    if [r.institution for r in requests] != list(spec.institutions):
        raise ValueError("`requests` must be one per institution of `spec`, in order")
    try:
        records = [
            InstitutionRecord(
                name=r.institution,
                public_key=r.public_key,
                budget_epsilon=spec.epsilon_budget,
                budget_delta=spec.delta,
                node_auth_key=r.node_auth_key,
            )
            for r in requests
        ]
        manifest = ConsortiumManifest(name=spec.name, institutions=tuple(records))
    except ValueError as err:
        raise JoinError(f"join requests: {err}") from None
    parts = [out / CA_DIR, out / COORDINATOR_DIR]
    with _new_folders(out, parts):
        _write_coordinator(spec, manifest, out)
    return parts


def provision(spec: ConsortiumSpec, out: Path) -> list[Path]:
    """Provision a whole consortium on one machine, through the several-machine steps.

    Each bank folder generates its own keys (`join_bank`); the coordinator assembles
    the manifest from the join requests only (`assemble`); each bank pins it (`pin`).

    Returns
    -------
    list[Path]
        The folders written: ``ca``, ``coordinator``, then one per bank.

    Raises
    ------
    FileExistsError
        If a party folder already exists (nothing is written then).
    OSError
        If a file cannot be written; the folders this call created are removed.
    """
    out = Path(out)
    banks = [out / bank for bank in spec.institutions]
    parts = [out / CA_DIR, out / COORDINATOR_DIR, *banks]
    for part in parts:
        if part.exists() or part.is_symlink():
            raise FileExistsError(f"{part} already exists (refusing to overwrite it)")
    out.mkdir(parents=True, exist_ok=True)
    try:
        for bank, folder in zip(spec.institutions, banks, strict=True):
            join_bank(bank, folder)
        # What travels to the coordinator: the public join requests, nothing else.
        requests = [JoinRequest.load(folder / JOIN_REQUEST_FILE) for folder in banks]
        assemble(spec, requests, out)
        coordinator = out / COORDINATOR_DIR
        address = (coordinator / SUPERLINK_ADDRESS_FILE).read_text(encoding="ascii").strip()
        for folder in banks:
            pin(
                folder,
                coordinator / MANIFEST_FILE,
                coordinator / CA_CERT_FILE,
                superlink=address,
            )
    except BaseException:
        for part in parts:
            shutil.rmtree(part, ignore_errors=True)
        raise
    return parts


@contextlib.contextmanager
def _new_folders(out: Path, parts: list[Path]) -> Iterator[None]:
    """Create ``parts`` (mode 0700); remove them again if the block fails."""
    for part in parts:
        if part.exists() or part.is_symlink():
            raise FileExistsError(f"{part} already exists (refusing to overwrite it)")
    out.mkdir(parents=True, exist_ok=True)
    created: list[Path] = []
    try:
        for part in parts:
            os.mkdir(part, _FOLDER_MODE)
            created.append(part)
        yield
    except BaseException:
        for part in created:
            shutil.rmtree(part, ignore_errors=True)
        raise


def _write_coordinator(spec: ConsortiumSpec, manifest: ConsortiumManifest, out: Path) -> None:
    ca_key, ca_cert = certs.generate_ca(f"{spec.name} consortium CA")
    hosts = list(dict.fromkeys([*spec.coordinator_hosts, *DEFAULT_HOSTS]))
    server_key, server_cert = certs.issue_server_certificate(ca_key, ca_cert, hosts=hosts)
    ca_pem = certs.certificate_pem(ca_cert)

    ca_dir, coordinator = out / CA_DIR, out / COORDINATOR_DIR
    write_new_file(ca_dir / CA_KEY_FILE, certs.private_key_pem(ca_key), private=True)
    write_new_file(ca_dir / CA_CERT_FILE, ca_pem, private=False)
    _readme(ca_dir, _CA_README)
    write_new_file(coordinator / CA_CERT_FILE, ca_pem, private=False)
    server_pem = certs.certificate_pem(server_cert)
    write_new_file(coordinator / SUPERLINK_CERT_FILE, server_pem, private=False)
    key_pem = certs.private_key_pem(server_key)
    write_new_file(coordinator / SUPERLINK_KEY_FILE, key_pem, private=True)
    address = superlink_address(hosts[0], FLEET_PORT).encode("ascii") + b"\n"
    write_new_file(coordinator / SUPERLINK_ADDRESS_FILE, address, private=False)
    manifest.save(coordinator / MANIFEST_FILE)
    digest = manifest_sha256((coordinator / MANIFEST_FILE).read_bytes())
    _readme(coordinator, _coordinator_readme(spec.institutions, digest))


def superlink_address(host: str, port: int) -> str:
    """Return ``host:port`` (IPv6 addresses in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _is_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return bool(_HOST.fullmatch(host))
    return True


def _readme(folder: Path, text: str) -> None:
    write_new_file(folder / README_FILE, text.encode("utf-8"), private=False)


_CA_README = f"""The consortium's certificate authority.

{CA_KEY_FILE} is the CA's private key: move it offline (e.g. to an encrypted, air-gapped
medium) now; it is only needed to issue a new SuperLink certificate.
{CA_CERT_FILE} is public: every party already has a copy.
"""


def _coordinator_readme(banks: tuple[str, ...], digest: str) -> str:
    return f"""The coordinator's folder (SuperLink). It holds no bank's private key.

{MANIFEST_FILE} lists every bank's public signing and SuperNode keys, as each bank
generated them ({", ".join(banks)}). Its SHA-256 is
  {digest}
Send every bank {MANIFEST_FILE}, {CA_CERT_FILE} and {SUPERLINK_ADDRESS_FILE}, and tell
them this SHA-256 over another channel (phone, signed e-mail); each bank runs
  fedrisk consortium pin --consortium <its folder> --manifest {MANIFEST_FILE} \\
    --ca-cert {CA_CERT_FILE} --superlink <host:port> --sha256 <the SHA-256>

Start the SuperLink (TLS, SuperNode authentication, exactly the manifest's SuperNode
keys registered; the Control API only on this machine's loopback):
  fedrisk server --consortium <this folder>
Then submit a run on this machine (the same overrides as `fedrisk simulate`):
  fedrisk run --consortium <this folder> --test <held-out table> privacy=dpsgd secagg=secaggplus
"""


def _bank_readme(bank: str, folder: Path) -> str:
    node_config = (
        f'{messages.NODE_INSTITUTION}="{bank}" {messages.NODE_DATA_PATH}="<your table>" '
        f'{messages.NODE_STATE_DIR}="{folder.resolve()}" '
        f'{messages.NODE_MANIFEST}="{(folder / MANIFEST_FILE).resolve()}"'
    )
    return f"""{bank}'s folder. Its private keys were generated here and never leave it:
signing_key.pem (Ed25519) and {NODE_AUTH_KEY_FILE} (SuperNode authentication), mode 0600.

1. Send {JOIN_REQUEST_FILE} (public: your name and your two public keys, self-signed)
   to the coordinator.
2. When the coordinator sends back {MANIFEST_FILE}, {CA_CERT_FILE} and the SuperLink
   address, and tells you the manifest's SHA-256 over another channel, check and pin it:
     fedrisk consortium pin --consortium <this folder> --manifest {MANIFEST_FILE} \\
       --ca-cert {CA_CERT_FILE} --superlink <host:port> --sha256 <the SHA-256>
3. Start the SuperNode once the coordinator's `fedrisk server` runs; your table is
   validated first and its path stays here:
     fedrisk node --consortium <this folder> --data <your table>
   It refuses to start if {MANIFEST_FILE} changed since it was pinned.

What `fedrisk node` does, with Flower's own command:
  flower-supernode --superlink <host:port> --root-certificates {CA_CERT_FILE} \\
    --auth-supernode-private-key {NODE_AUTH_KEY_FILE} \\
    --node-config '{node_config}'
"""
