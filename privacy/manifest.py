"""The consortium manifest: every institution's public keys and privacy budget.

The manifest is public. It is what a verifier trusts: a ledger is checked against the
key the manifest names for its institution, and spending against the budget it states.
In a deployment it also binds each institution's name to its SuperNode authentication
key, the only keys the SuperLink registers. Every key in it was generated at its bank.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from fedrisk.privacy.atomic_file import write_atomically
from fedrisk.privacy.ledger_format import INSTITUTION_PATTERN
from fedrisk.secure.signing import public_key_from_text

#: File name of the consortium manifest in every provisioned folder and run directory.
MANIFEST_FILE = "consortium.json"

MANIFEST_VERSION = 1
_INSTITUTION_KEYS = ("budget_delta", "budget_epsilon", "name", "public_key")
#: Optional in a record: absent in simulations, where no SuperNode connects.
NODE_AUTH_KEY = "node_auth_key"
_MANIFEST_KEYS = ("institutions", "name", "version")


class UnknownInstitution(ValueError):
    """A name that the consortium manifest does not list."""


@dataclass(frozen=True)
class InstitutionRecord:
    """One institution as the manifest lists it.

    Parameters
    ----------
    name : str
        The institution's id (letters, digits, ``_ . -``; at most 64 characters).
    public_key : str
        Its Ed25519 public key, base64 of the 32 raw bytes (`public_key_text`).
    budget_epsilon : float
        Its ε budget per dataset; positive and finite.
    budget_delta : float
        Its δ budget per dataset, in (0, 1).
    node_auth_key : str | None (default: None)
        Its SuperNode authentication public key, one OpenSSH line
        (``ecdsa-sha2-nistp384 …``); None in simulations.

    Raises
    ------
    ValueError
        If a field is malformed.
    """

    name: str
    public_key: str
    budget_epsilon: float
    budget_delta: float
    node_auth_key: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not INSTITUTION_PATTERN.fullmatch(self.name):
            pattern = INSTITUTION_PATTERN.pattern
            raise ValueError(f"`name` must match {pattern}; got {self.name!r}")
        try:
            public_key_from_text(self.public_key)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"`public_key` of {self.name!r} must decode: {exc}") from None
        epsilon, delta = self.budget_epsilon, self.budget_delta
        if not _is_number(epsilon) or not (math.isfinite(epsilon) and epsilon > 0):
            raise ValueError(f"`budget_epsilon` of {self.name!r} must be positive; got {epsilon!r}")
        if not _is_number(delta) or not 0.0 < delta < 1.0:
            raise ValueError(f"`budget_delta` of {self.name!r} must be in (0, 1); got {delta!r}")
        if self.node_auth_key is not None:
            _check_node_auth_key(self.name, self.node_auth_key)
        object.__setattr__(self, "budget_epsilon", float(epsilon))  # JSON may hold an int
        object.__setattr__(self, "budget_delta", float(delta))


@dataclass(frozen=True)
class ConsortiumManifest:
    """The consortium's public roster.

    Parameters
    ----------
    name : str
        The consortium's name.
    institutions : tuple[InstitutionRecord, ...]
        The members; names and public keys unique.
    version : int (default: 1)
        The manifest format version; only `MANIFEST_VERSION` is understood.

    Raises
    ------
    ValueError
        If the version is unknown, the name empty, or a name or key repeats.
    """

    name: str
    institutions: tuple[InstitutionRecord, ...]
    version: int = MANIFEST_VERSION

    def __post_init__(self) -> None:
        if isinstance(self.version, bool) or self.version != MANIFEST_VERSION:
            raise ValueError(f"`version` must be {MANIFEST_VERSION}; got {self.version!r}")
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"`name` must be a non-empty string; got {self.name!r}")
        if not isinstance(self.institutions, tuple) or not all(
            isinstance(record, InstitutionRecord) for record in self.institutions
        ):
            raise ValueError(
                f"`institutions` must be a tuple of InstitutionRecord; got {self.institutions!r}"
            )
        for attribute in ("name", "public_key", NODE_AUTH_KEY):
            values = [getattr(record, attribute) for record in self.institutions]
            values = [value for value in values if value is not None]
            repeated = sorted({value for value in values if values.count(value) > 1})
            if repeated:
                raise ValueError(f"`institutions[].{attribute}` must be unique; got {repeated}")

    def institution(self, name: str) -> InstitutionRecord:
        """Return the record of ``name``.

        Raises
        ------
        UnknownInstitution
            If the manifest does not list ``name``.
        """
        for record in self.institutions:
            if record.name == name:
                return record
        known = [record.name for record in self.institutions]
        raise UnknownInstitution(
            f"`name` must be an institution of the manifest {known}; got {name!r}"
        )

    def public_key(self, name: str) -> Ed25519PublicKey:
        """Return the Ed25519 public key of ``name``.

        Raises
        ------
        UnknownInstitution
            If the manifest does not list ``name``.
        """
        return public_key_from_text(self.institution(name).public_key)

    def to_json(self) -> dict[str, object]:
        """Return the manifest as its JSON object."""
        return {
            "version": self.version,
            "name": self.name,
            "institutions": [_record_json(record) for record in self.institutions],
        }

    def save(self, path: Path) -> None:
        """Write the manifest as JSON, atomically (temporary file, fsync, rename).

        Raises
        ------
        OSError
            If the file cannot be written; an existing manifest is then left intact.
        """
        text = json.dumps(self.to_json(), indent=2, sort_keys=True, allow_nan=False) + "\n"
        write_atomically(Path(path), text.encode("utf-8"))

    @classmethod
    def load(cls, path: Path) -> ConsortiumManifest:
        """Read and validate a manifest written by `save`.

        Raises
        ------
        ValueError
            Naming the file and the field: not JSON, unknown version or keys, a repeated
            name or key, a key that does not decode, or a budget out of range.
        FileNotFoundError
            If ``path`` does not exist.
        """
        path = Path(path)
        return cls.parse(path.read_bytes(), source=path)

    @classmethod
    def parse(cls, data: bytes, *, source: Path) -> ConsortiumManifest:
        """Validate a manifest's bytes as `load` does; errors name ``source``.

        Raises
        ------
        ValueError
            As `load`.
        """
        try:
            obj = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"manifest {source}: not valid JSON ({exc})") from None
        try:
            _check_keys(obj, _MANIFEST_KEYS, "manifest")
            if not isinstance(obj["institutions"], list):
                raise ValueError(f"`institutions` must be a list; got {obj['institutions']!r}")
            records = []
            for i, item in enumerate(obj["institutions"]):
                optional = (NODE_AUTH_KEY,) if isinstance(item, dict) else ()
                _check_keys(item, _INSTITUTION_KEYS, f"institutions[{i}]", optional=optional)
                try:
                    records.append(InstitutionRecord(**item))
                except ValueError as exc:
                    raise ValueError(f"institutions[{i}]: {exc}") from None
            return cls(name=obj["name"], institutions=tuple(records), version=obj["version"])
        except ValueError as exc:
            raise ValueError(f"manifest {source}: {exc}") from None


def _record_json(record: InstitutionRecord) -> dict[str, object]:
    entry: dict[str, object] = {key: getattr(record, key) for key in _INSTITUTION_KEYS}
    if record.node_auth_key is not None:
        entry[NODE_AUTH_KEY] = record.node_auth_key
    return entry


def _check_node_auth_key(name: str, text: object) -> None:
    """Check that ``text`` is one OpenSSH line of an EC public key (as Flower registers)."""
    where = f"`{NODE_AUTH_KEY}` of {name!r}"
    if not isinstance(text, str) or "\n" in text:
        raise ValueError(f"{where} must be one OpenSSH public key line; got {text!r}")
    try:
        key = serialization.load_ssh_public_key(text.encode("ascii"))
    except (UnicodeEncodeError, ValueError, TypeError):
        raise ValueError(f"{where} must be an OpenSSH public key; got {text[:40]!r}…") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError(f"{where} must be an EC public key; got {type(key).__name__}")


def _check_keys(
    obj: object, keys: tuple[str, ...], where: str, *, optional: tuple[str, ...] = ()
) -> None:
    if not isinstance(obj, dict) or not set(keys) <= set(obj) <= set(keys) | set(optional):
        got = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
        raise ValueError(f"`{where}` must be an object with keys {list(keys)}; got {got}")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
