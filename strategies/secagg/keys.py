"""An institution's keys for one run, all derived from one 32-byte master secret.

- the **identity key** (X25519) seals Shamir shares between two institutions; it is
  never revealed;
- one **round key** (X25519) per round keys that round's pairwise masks; when an
  institution drops before masking, its round key for that round alone is reconstructed
  from shares it handed out at the start of the run (Bonawitz et al.'s recovery), which
  reveals nothing about other rounds or about the identity key.

Each key is HKDF-SHA256 over the master with the run tag as salt and an ``info`` naming
the key (and the round); the master comes from ``os.urandom`` and is kept only sealed.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MASTER_SIZE = 32
IDENTITY_KEY_LABEL = b"fedrisk/secagg-identity-key/v1"
ROUND_KEY_LABEL = b"fedrisk/secagg-round-key/v1"


@dataclass(frozen=True)
class NodeKeys:
    """The key material of one institution in one run.

    Parameters
    ----------
    master : bytes
        32 secret bytes.
    run_tag : str
        The run the keys belong to.
    """

    master: bytes = field(repr=False)
    run_tag: str

    def __post_init__(self) -> None:
        if not isinstance(self.master, bytes) or len(self.master) != MASTER_SIZE:
            raise ValueError(f"`master` must be {MASTER_SIZE} bytes")
        if not self.run_tag:
            raise ValueError("`run_tag` must be non-empty; got ''")

    @classmethod
    def generate(cls, run_tag: str) -> NodeKeys:
        """Draw a fresh master secret from the operating system's CSPRNG."""
        return cls(master=os.urandom(MASTER_SIZE), run_tag=run_tag)

    def identity(self) -> X25519PrivateKey:
        """Return the run's identity key (seals shares; never revealed)."""
        return self._derive(IDENTITY_KEY_LABEL)

    def round_key(self, round: int) -> X25519PrivateKey:
        """Return the key of ``round``'s pairwise masks."""
        if not isinstance(round, int) or not 1 <= round < 2**32:
            raise ValueError(f"`round` must be in [1, 2**32); got {round}")
        return self._derive(ROUND_KEY_LABEL + struct.pack(">I", round))

    def _derive(self, info: bytes) -> X25519PrivateKey:
        hkdf = HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=self.run_tag.encode("utf-8"),
            info=info,
        )
        return X25519PrivateKey.from_private_bytes(hkdf.derive(self.master))
