"""The party folders provisioning writes, opened and checked for use.

A coordinator folder is recognised by its SuperLink certificate and a manifest that
lists every bank's SuperNode key; a bank folder by its signing key and join request,
whose keys name the bank in the manifest (the folder's name is not trusted), and by
the manifest's SHA-256 pinned there. Each check fails with one line naming the folder,
the missing or wrong file and what to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fedrisk.client.node_keys import SIGNING_KEY_FILE
from fedrisk.deploy.join import (
    CA_CERT_FILE,
    JOIN_REQUEST_FILE,
    NODE_AUTH_KEY_FILE,
    SUPERLINK_ADDRESS_FILE,
    JoinError,
    check_own_keys,
    check_pin,
    own_request,
)
from fedrisk.deploy.provision import FLEET_PORT, SUPERLINK_CERT_FILE, SUPERLINK_KEY_FILE
from fedrisk.privacy.manifest import MANIFEST_FILE, ConsortiumManifest

#: Runtime files of ``fedrisk server`` (state database, logs, Flower's home) go here.
SUPERLINK_RUNTIME_DIR = "superlink"
#: Runtime files of ``fedrisk node`` (log, Flower's home) go here.
SUPERNODE_RUNTIME_DIR = "supernode"
#: Written by a running ``fedrisk server``: the address ``fedrisk run`` connects to.
LISTENING_FILE = "listening.txt"


class FolderError(ValueError):
    """A consortium folder is missing, incomplete or of the wrong kind."""


@dataclass(frozen=True)
class CoordinatorFolder:
    """The coordinator's folder.

    Attributes
    ----------
    path : Path
        The folder (absolute).
    manifest : ConsortiumManifest
        The consortium manifest.
    """

    path: Path
    manifest: ConsortiumManifest

    @classmethod
    def open(cls, path: Path) -> CoordinatorFolder:
        """Check and open a coordinator folder.

        Raises
        ------
        FolderError
            If a file is missing or the manifest does not load.
        """
        path = Path(path).resolve()
        _require(path, "coordinator", (
            CA_CERT_FILE, SUPERLINK_CERT_FILE, SUPERLINK_KEY_FILE,
            MANIFEST_FILE,
        ))  # fmt: skip
        manifest = _manifest(path)
        for i, record in enumerate(manifest.institutions):
            if record.node_auth_key is None:
                raise FolderError(
                    f"{path / MANIFEST_FILE}: `institutions[{i}].node_auth_key` must be the "
                    f"SuperNode key of {record.name}; got none (assemble the manifest from "
                    "the banks' join requests)"
                )
        return cls(path=path, manifest=manifest)

    @property
    def ca_cert(self) -> Path:
        """The consortium CA certificate."""
        return self.path / CA_CERT_FILE

    @property
    def manifest_file(self) -> Path:
        """The consortium manifest."""
        return self.path / MANIFEST_FILE

    def node_public_key(self, bank: str) -> bytes:
        """Return the SuperNode authentication public key of ``bank`` (an OpenSSH line)."""
        key = self.manifest.institution(bank).node_auth_key
        if key is None:  # `open` checked every record
            raise FolderError(f"`node_auth_key` of {bank!r} must be set; got none")
        return key.encode("ascii")

    @property
    def runtime(self) -> Path:
        """Where the SuperLink's state, logs and Flower's home live."""
        return self.path / SUPERLINK_RUNTIME_DIR

    def default_address(self) -> str:
        """Return the SuperLink address ``fedrisk run`` connects to on this machine.

        A running ``fedrisk server`` records it; otherwise the first host the
        certificate was issued for, on the default port.
        """
        listening = self.runtime / LISTENING_FILE
        if listening.is_file():
            return listening.read_text(encoding="utf-8").strip()
        return _provisioned_address(self.path)


@dataclass(frozen=True)
class BankFolder:
    """One bank's folder.

    Attributes
    ----------
    path : Path
        The folder (absolute).
    institution : str
        The bank's name in the manifest (found by its signing key).
    manifest : ConsortiumManifest
        The consortium manifest.
    """

    path: Path
    institution: str
    manifest: ConsortiumManifest

    @classmethod
    def open(cls, path: Path) -> BankFolder:
        """Check and open a bank folder.

        Raises
        ------
        FolderError
            If a file is missing, the manifest does not load, no longer matches the
            SHA-256 pinned in the folder, or does not list this bank's own keys under
            the name it joined as.
        """
        path = Path(path).resolve()
        _require(path, "bank", (
            SIGNING_KEY_FILE, NODE_AUTH_KEY_FILE, JOIN_REQUEST_FILE,
        ))  # fmt: skip
        try:
            request = own_request(path)
            check_pin(path)
            _require(path, "bank", (CA_CERT_FILE, MANIFEST_FILE))
            manifest = _manifest(path)
            check_own_keys(manifest, request, source=path / MANIFEST_FILE)
        except JoinError as err:
            raise FolderError(" ".join(str(err).split())) from None
        return cls(path=path, institution=request.institution, manifest=manifest)

    @property
    def ca_cert(self) -> Path:
        """The consortium CA certificate."""
        return self.path / CA_CERT_FILE

    @property
    def auth_key(self) -> Path:
        """The SuperNode authentication private key."""
        return self.path / NODE_AUTH_KEY_FILE

    @property
    def manifest_file(self) -> Path:
        """The consortium manifest."""
        return self.path / MANIFEST_FILE

    @property
    def runtime(self) -> Path:
        """Where the SuperNode's log and Flower's home live."""
        return self.path / SUPERNODE_RUNTIME_DIR

    def default_address(self) -> str:
        """Return the SuperLink address written at provisioning (first host, default port)."""
        return _provisioned_address(self.path)


def _require(path: Path, kind: str, files: tuple[str, ...]) -> None:
    step = "join" if kind == "bank" else "assemble"
    if not path.is_dir():
        raise FolderError(f"{path}: no such folder (run `fedrisk consortium {step}` first)")
    for name in files:
        if not (path / name).is_file():
            raise FolderError(
                f"{path}: missing {name} (is this a {kind} folder written by "
                f"`fedrisk consortium {step}` or `init`?)"
            )


def _manifest(path: Path) -> ConsortiumManifest:
    try:
        return ConsortiumManifest.load(path / MANIFEST_FILE)
    except (OSError, ValueError) as err:
        raise FolderError(" ".join(str(err).split())) from None


def _provisioned_address(path: Path) -> str:
    file = path / SUPERLINK_ADDRESS_FILE
    if file.is_file():
        return file.read_text(encoding="utf-8").strip()
    return f"localhost:{FLEET_PORT}"
