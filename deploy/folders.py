"""The party folders ``fedrisk consortium init`` writes, opened and checked for use.

A coordinator folder is recognised by its SuperLink certificate and the SuperNode
public keys; a bank folder by its signing key, whose public half names the bank in
the manifest (the folder's name is not trusted). Each check fails with one line
naming the folder, the missing or wrong file and what to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fedrisk.client.node_keys import SIGNING_KEY_FILE
from fedrisk.deploy.provision import (
    CA_CERT_FILE,
    FLEET_PORT,
    NODE_AUTH_KEY_FILE,
    SUPERLINK_ADDRESS_FILE,
    SUPERLINK_CERT_FILE,
    SUPERLINK_KEY_FILE,
    SUPERNODE_KEYS_DIR,
)
from fedrisk.privacy.manifest import MANIFEST_FILE, ConsortiumManifest
from fedrisk.secure.signing import load_private_key, public_key_text

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
        for record in manifest.institutions:
            key = path / SUPERNODE_KEYS_DIR / f"{record.name}.pub"
            if not key.is_file():
                raise FolderError(f"{path}: missing {key.relative_to(path)} for {record.name}")
        return cls(path=path, manifest=manifest)

    @property
    def ca_cert(self) -> Path:
        """The consortium CA certificate."""
        return self.path / CA_CERT_FILE

    @property
    def manifest_file(self) -> Path:
        """The consortium manifest."""
        return self.path / MANIFEST_FILE

    def node_public_key(self, bank: str) -> Path:
        """Return the SuperNode authentication public key file of ``bank``."""
        return self.path / SUPERNODE_KEYS_DIR / f"{bank}.pub"

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
            If a file is missing, the manifest does not load, or the signing key is
            not one the manifest lists.
        """
        path = Path(path).resolve()
        _require(path, "bank", (
            CA_CERT_FILE, SIGNING_KEY_FILE, NODE_AUTH_KEY_FILE, MANIFEST_FILE,
        ))  # fmt: skip
        manifest = _manifest(path)
        try:
            public = public_key_text(load_private_key(path / SIGNING_KEY_FILE).public_key())
        except (OSError, TypeError, ValueError) as err:
            raise FolderError(f"{path / SIGNING_KEY_FILE}: cannot be read ({err})") from None
        names = [r.name for r in manifest.institutions if r.public_key == public]
        if not names:
            raise FolderError(
                f"{path / SIGNING_KEY_FILE}: its public key is not in {path / MANIFEST_FILE} "
                "(a folder from another consortium?)"
            )
        return cls(path=path, institution=names[0], manifest=manifest)

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
    if not path.is_dir():
        raise FolderError(f"{path}: no such folder (run `fedrisk consortium init` first)")
    for name in files:
        if not (path / name).is_file():
            raise FolderError(
                f"{path}: missing {name} (is this a {kind} folder written by "
                "`fedrisk consortium init`?)"
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
