"""Provision a consortium: one folder per party with exactly the material it may hold.

``DIR/ca/`` keeps the consortium CA's private key (to be moved offline);
``DIR/coordinator/`` holds the SuperLink's TLS certificate and key, the CA certificate,
every bank's SuperNode public key and the manifest, and no bank's private key;
``DIR/<bank>/`` holds that bank's Ed25519 signing key, its SuperNode authentication key
pair, the CA certificate and the manifest, and nothing private of any other party.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from fedrisk.client.node_keys import SIGNING_KEY_FILE
from fedrisk.privacy.ledger_format import INSTITUTION_PATTERN
from fedrisk.privacy.manifest import MANIFEST_FILE, ConsortiumManifest, InstitutionRecord
from fedrisk.secure import certificates as certs
from fedrisk.secure.files import write_new_file
from fedrisk.secure.signing import generate_signing_key, public_key_text, save_private_key
from fedrisk.strategies import messages

CA_DIR = "ca"
COORDINATOR_DIR = "coordinator"
CA_CERT_FILE = "ca_cert.pem"
CA_KEY_FILE = "ca_key.pem"
SUPERLINK_CERT_FILE = "superlink_cert.pem"
SUPERLINK_KEY_FILE = "superlink_key.pem"
SUPERNODE_KEYS_DIR = "supernode_public_keys"
NODE_AUTH_KEY_FILE = "supernode_auth_key"
NODE_AUTH_PUBLIC_FILE = "supernode_auth_key.pub"
README_FILE = "README.txt"
SUPERLINK_ADDRESS_FILE = "superlink_address.txt"  # host:port the SuperNodes dial by default
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


def provision(spec: ConsortiumSpec, out: Path) -> list[Path]:
    """Generate every key and certificate of ``spec`` and write the party folders.

    Parameters
    ----------
    spec : ConsortiumSpec
        The validated specification.
    out : Path
        The parent folder; created if missing. Its ``ca``, ``coordinator`` and bank
        sub-folders must not exist.

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
    parts = [out / CA_DIR, out / COORDINATOR_DIR, *(out / bank for bank in spec.institutions)]
    for part in parts:
        if part.exists() or part.is_symlink():
            raise FileExistsError(f"{part} already exists (refusing to overwrite it)")
    out.mkdir(parents=True, exist_ok=True)
    created: list[Path] = []
    try:
        for part in parts:
            os.mkdir(part, _FOLDER_MODE)
            created.append(part)
        _write_all(spec, out)
    except BaseException:
        for part in created:
            shutil.rmtree(part, ignore_errors=True)
        raise
    return parts


def _write_all(spec: ConsortiumSpec, out: Path) -> None:
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
    os.mkdir(coordinator / SUPERNODE_KEYS_DIR, 0o755)
    address = superlink_address(hosts[0], FLEET_PORT).encode("ascii") + b"\n"
    write_new_file(coordinator / SUPERLINK_ADDRESS_FILE, address, private=False)

    records = []
    for bank in spec.institutions:
        folder = out / bank
        signing_key = generate_signing_key()
        save_private_key(signing_key, folder / SIGNING_KEY_FILE)
        records.append(
            InstitutionRecord(
                name=bank,
                public_key=public_key_text(signing_key.public_key()),
                budget_epsilon=spec.epsilon_budget,
                budget_delta=spec.delta,
            )
        )
        auth_private, auth_public = certs.node_auth_key_files(certs.generate_node_auth_key())
        write_new_file(folder / NODE_AUTH_KEY_FILE, auth_private, private=True)
        write_new_file(folder / NODE_AUTH_PUBLIC_FILE, auth_public, private=False)
        public_copy = coordinator / SUPERNODE_KEYS_DIR / f"{bank}.pub"
        write_new_file(public_copy, auth_public, private=False)
        write_new_file(folder / CA_CERT_FILE, ca_pem, private=False)
        write_new_file(folder / SUPERLINK_ADDRESS_FILE, address, private=False)
        _readme(folder, _bank_readme(bank, folder, hosts[0]))

    manifest = ConsortiumManifest(name=spec.name, institutions=tuple(records))
    manifest.save(coordinator / MANIFEST_FILE)
    manifest_bytes = (coordinator / MANIFEST_FILE).read_bytes()
    for bank in spec.institutions:
        write_new_file(out / bank / MANIFEST_FILE, manifest_bytes, private=False)
    _readme(coordinator, _coordinator_readme(spec.institutions))


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


def _coordinator_readme(banks: tuple[str, ...]) -> str:
    register = "\n".join(
        f"  flwr supernode register {SUPERNODE_KEYS_DIR}/{bank}.pub <superlink-connection>"
        for bank in banks
    )
    return f"""The coordinator's folder (SuperLink). It holds no bank's private key.

Start the SuperLink (TLS, SuperNode authentication, the banks below registered):
  fedrisk server --consortium <this folder>
Then submit a run (the same overrides as `fedrisk simulate`):
  fedrisk run --consortium <this folder> --test <held-out table> privacy=dpsgd secagg=secaggplus

What `fedrisk server` does, with Flower's own commands:
  flower-superlink --ssl-ca-certfile {CA_CERT_FILE} --ssl-certfile {SUPERLINK_CERT_FILE} \\
    --ssl-keyfile {SUPERLINK_KEY_FILE} --enable-supernode-auth --host 0.0.0.0 --port {FLEET_PORT}
Then register each bank's SuperNode public key (Flower 1.41 no longer reads a CSV list):
{register}
{MANIFEST_FILE} is the consortium manifest the ServerApp and auditors verify against.
"""


def _bank_readme(bank: str, folder: Path, host: str) -> str:
    node_config = (
        f'{messages.NODE_INSTITUTION}="{bank}" {messages.NODE_DATA_PATH}="<your table>" '
        f'{messages.NODE_STATE_DIR}="{folder.resolve()}" '
        f'{messages.NODE_MANIFEST}="{(folder / MANIFEST_FILE).resolve()}"'
    )
    address = superlink_address(host, FLEET_PORT)
    return f"""{bank}'s folder. {SIGNING_KEY_FILE} and {NODE_AUTH_KEY_FILE} are private (mode 0600).

Start the SuperNode once the coordinator's `fedrisk server` runs (it registers
{NODE_AUTH_PUBLIC_FILE}); your table is validated first and its path stays here:
  fedrisk node --consortium <this folder> --data <your table>

What `fedrisk node` does, with Flower's own command:
  flower-supernode --superlink {address} --root-certificates {CA_CERT_FILE} \\
    --auth-supernode-private-key {NODE_AUTH_KEY_FILE} \\
    --node-config '{node_config}'
"""
