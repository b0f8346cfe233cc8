"""A bank's signed statement that it sent an already released update again.

When a coordinator crashes after a bank released round ``r`` but before it aggregated
the round, the resumed run asks for round ``r`` again. The bank answers with the very
update it released (its ledger already holds the round; training again would spend the
privacy twice). Under secure aggregation that update must be masked afresh under the
resumed run's keys, so the message sent differs from the one whose SHA-256 the ledger
entry signed. The bank therefore signs a `ResendStatement` binding the two digests to
the ledger entry; the coordinator keeps it in ``metrics.jsonl`` (``resent``) and the
auditor accepts the new digest only if the statement verifies against the bank's key
in the consortium manifest and names that very entry.

Notes
-----
The statement spends no privacy: the re-sent update is the released one, re-encoded,
which is post-processing. A coordinator cannot forge a statement (it holds no bank's
signing key), so it cannot explain away an update digest the bank never signed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from fedrisk.privacy.ledger_format import canonical_json
from fedrisk.secure.signing import SignatureInvalid, sign, verify_signature

#: Domain-separation label of a resend statement's Ed25519 signature.
RESEND_SIGNATURE_CONTEXT = b"fedrisk/resend-statement/v1"
RESEND_VERSION = 1
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX128 = re.compile(r"[0-9a-f]{128}")


class ResendInvalid(ValueError):
    """A resend statement that is malformed, unsigned or does not verify."""


@dataclass(frozen=True)
class ResendStatement:
    """What a bank signs when it sends a released update again, masked anew.

    Attributes
    ----------
    run_id : str
        The run of the ledger entry (a resumed run keeps its run id).
    round : int
        The round released once and sent again.
    institution : str
        The bank.
    ledger_seq : int
        ``seq`` of the ledger entry that recorded the release.
    ledger_sha256 : str
        The entry's ``update_sha256``: the digest of the message first sent.
    sent_sha256 : str
        The digest of the message sent again.
    signature : str (default: "")
        Hex Ed25519 signature over the canonical JSON of the other fields and the
        version, under `RESEND_SIGNATURE_CONTEXT`; empty until `signed`.
    """

    run_id: str
    round: int
    institution: str
    ledger_seq: int
    ledger_sha256: str
    sent_sha256: str
    signature: str = ""

    def __post_init__(self) -> None:
        for name in ("run_id", "institution"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ResendInvalid(f"`{name}` must be a non-empty string; got {value!r}")
        for name in ("round", "ledger_seq"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ResendInvalid(f"`{name}` must be a non-negative integer; got {value!r}")
        for name in ("ledger_sha256", "sent_sha256"):
            value = getattr(self, name)
            if not isinstance(value, str) or not _HEX64.fullmatch(value):
                raise ResendInvalid(f"`{name}` must be 64 lowercase hex digits; got {value!r}")
        if self.signature and not _HEX128.fullmatch(self.signature):
            raise ResendInvalid(
                f"`signature` must be 128 lowercase hex digits; got {self.signature!r}"
            )

    def signed_bytes(self) -> bytes:
        """Return the canonical JSON that the signature covers."""
        body = {k: v for k, v in asdict(self).items() if k != "signature"}
        return canonical_json({**body, "version": RESEND_VERSION})

    def signed(self, key: Ed25519PrivateKey) -> ResendStatement:
        """Return this statement signed with the bank's ledger key."""
        signature = sign(key, self.signed_bytes(), context=RESEND_SIGNATURE_CONTEXT)
        return replace(self, signature=signature.hex())

    def verify(self, public_key: Ed25519PublicKey) -> None:
        """Check the signature; return nothing.

        Raises
        ------
        ResendInvalid
            If the statement is unsigned or its signature does not verify for this key.
        """
        if not self.signature:
            raise ResendInvalid(f"the resend statement of {self.institution} is not signed")
        try:
            verify_signature(
                public_key,
                bytes.fromhex(self.signature),
                self.signed_bytes(),
                context=RESEND_SIGNATURE_CONTEXT,
            )
        except SignatureInvalid:
            raise ResendInvalid(
                f"the resend statement of {self.institution} (round {self.round}) does not "
                "verify with its manifest key"
            ) from None

    def to_json(self) -> dict[str, str | int]:
        """Return the statement as a JSON object (as ``metrics.jsonl`` keeps it)."""
        return dict(asdict(self))

    @classmethod
    def from_json(cls, obj: Mapping[str, object]) -> ResendStatement:
        """Read a statement written by `to_json`.

        Raises
        ------
        ResendInvalid
            Naming the field, if one is missing, unknown or of the wrong type.
        """
        fields = set(cls.__dataclass_fields__)
        missing = sorted(fields - {"signature"} - set(obj))
        unknown = sorted(set(obj) - fields)
        if missing or unknown:
            raise ResendInvalid(
                f"a resend statement must hold exactly {sorted(fields)}; "
                f"missing {missing}, unknown {unknown}"
            )
        return cls(**obj)  # type: ignore[arg-type]  # __post_init__ checks every type
