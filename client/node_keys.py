"""Where a node keeps its private material, and the consortium manifest it trusts.

Deployment: the node config names ``state-dir`` and ``manifest``. Simulation: the run
config names a state root (one folder per institution) and the manifest. The signing
key (Ed25519, PKCS#8, mode 0600) lives in the state folder; so does the node's
secret-wrapping key, which seals what the node keeps in Flower's ``Context.state``.
"""

from __future__ import annotations

import contextlib
import functools
import secrets
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flwr.app import Context

from fedrisk.privacy.manifest import ConsortiumManifest
from fedrisk.secure.files import write_new_file
from fedrisk.secure.signing import load_private_key
from fedrisk.strategies import messages

SIGNING_KEY_FILE = "signing_key.pem"
WRAP_KEY_FILE = "state_wrap.key"
WRAP_KEY_SIZE = 32


def locations(context: Context, institution: str) -> tuple[Path, Path]:
    """Return the node's state folder and the consortium manifest path.

    Raises
    ------
    ValueError
        If neither the node config nor the run config says where they are.
    """
    node_config = context.node_config
    if messages.NODE_STATE_DIR in node_config:
        return (
            Path(str(node_config[messages.NODE_STATE_DIR])),
            Path(str(node_config[messages.NODE_MANIFEST])),
        )
    state_root = str(context.run_config.get(messages.STATE_DIR, ""))
    manifest = str(context.run_config.get(messages.MANIFEST, ""))
    if not state_root or not manifest:
        raise ValueError(
            "`state-dir` and `manifest` must name the institution's state folder (its signing "
            "key proves its identity in the roll call) and the consortium manifest; got "
            f"state-dir={state_root!r}, manifest={manifest!r}"
        )
    return Path(state_root) / institution, Path(manifest)


def signing_key(state_dir: Path) -> Ed25519PrivateKey:
    """Load the institution's Ed25519 signing key from its state folder."""
    return load_private_key(state_dir / SIGNING_KEY_FILE)


def manifest(path: Path) -> ConsortiumManifest:
    """Load the consortium manifest, validating each distinct content of the file once.

    A node answers many messages per run; the manifest is public and
    `ConsortiumManifest` immutable, so the parsed copy is reused for as long as the
    file's bytes are the same (they are read every time).
    """
    return _parsed_manifest(path.read_bytes(), path)


@functools.lru_cache(maxsize=8)
def _parsed_manifest(data: bytes, path: Path) -> ConsortiumManifest:
    return ConsortiumManifest.parse(data, source=path)


def wrap_key(state_dir: Path) -> bytes:
    """Return the node's 32-byte state-wrapping key, creating it (mode 0600) on first use.

    Raises
    ------
    ValueError
        If the key file exists with the wrong length.
    """
    path = state_dir / WRAP_KEY_FILE
    if not path.exists():
        with contextlib.suppress(FileExistsError):  # another message created it first
            write_new_file(path, secrets.token_bytes(WRAP_KEY_SIZE), private=True)
    key = path.read_bytes()
    if len(key) != WRAP_KEY_SIZE:
        raise ValueError(
            f"{path} must hold {WRAP_KEY_SIZE} bytes; got {len(key)} (delete it to renew)"
        )
    return key
