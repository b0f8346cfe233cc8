"""The coordinator's record of a run's keys: advertisements, deliveries, key shares.

It verifies every advertisement against the manifest (institutions do it again
themselves), remembers which advertisements each node has verified so each is relayed
once per run, and keeps the sealed round-key shares each institution handed out, so
they can be forwarded to their holders when the institution drops out of a round.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from flwr.app import ConfigRecord, Message, RecordDict
from flwr.serverapp import Grid

from fedrisk.strategies.messages import error_summary
from fedrisk.strategies.secagg.advert import Advertisement, verify_advertisement
from fedrisk.strategies.secagg.round_info import check_header, header
from fedrisk.strategies.secagg.wire import (
    ABORT,
    ADVERTS,
    KEY_SHARE_PREFIX,
    KEYS,
    KEYS_MESSAGE_TYPE,
    REASON_KEY,
    SALT_KEY,
    ProtocolAbort,
    Stage,
)


class KeyRegistry:
    """Advertisements and key shares of one run.

    Parameters
    ----------
    run_tag : str
        The run's tag.
    salt : bytes
        The run's HKDF salt.
    signers : Mapping[str, Ed25519PublicKey]
        Every institution's signing key from the consortium manifest.
    """

    def __init__(
        self, *, run_tag: str, salt: bytes, signers: Mapping[str, Ed25519PublicKey]
    ) -> None:
        self.run_tag = run_tag
        self.salt = salt
        self._signers = dict(signers)
        self._blobs: dict[str, bytes] = {}
        self.adverts: dict[str, Advertisement] = {}
        self.node_of: dict[str, int] = {}
        self._delivered: dict[int, dict[str, bytes]] = {}
        self._offered: dict[int, dict[str, bytes]] = {}
        self._shares: dict[str, dict[tuple[str, int], bytes]] = {}
        self._retired: dict[str, dict[tuple[str, int], bytes]] = {}  # of replaced keys

    @property
    def institutions(self) -> list[str]:
        """Every institution of the manifest, sorted (fixes round-key share indices)."""
        return sorted(self._signers)

    def register(self, institution: str, node: int, blob: object) -> None:
        """Accept an institution's (re-)advertisement after checking it.

        Raises
        ------
        ProtocolAbort
            At stage ``advertise``, naming the institution, if the advertisement does
            not verify against the manifest or names another run or node.
        """
        signer = self._signers.get(institution)
        if signer is None:
            raise ProtocolAbort(Stage.advertise, "not in the consortium manifest", peer=institution)
        advert = verify_advertisement(
            blob, peer=institution, signer=signer, run_tag=self.run_tag, node_id=node
        )
        self._blobs[institution] = advert.to_bytes()
        self.adverts[institution] = advert
        self.node_of[institution] = node
        self._delivered.pop(node, None)  # a restarted node has lost what it was sent
        # Its new keys need new shares; the shares of its old keys still unmask the rounds
        # before the new ones start (the round it re-advertised in was masked with them).
        old = self._shares.pop(institution, {})
        self._retired[institution] = {k: v for k, v in old.items() if k[1] < advert.first_round}

    def offer(self, node: int, names: Iterable[str]) -> ConfigRecord:
        """Return the advertisements of ``names`` that ``node`` has not verified yet."""
        delivered = self._delivered.get(node, {})
        fresh = {
            name: self._blobs[name]
            for name in sorted(names)
            if name in self._blobs and delivered.get(name) != self._blobs[name]
        }
        self._offered[node] = fresh
        return ConfigRecord(dict(fresh.items()))

    def delivered(self, node: int) -> None:
        """``node`` answered with a valid masked reply: it verified what it was offered."""
        self._delivered.setdefault(node, {}).update(self._offered.pop(node, {}))

    def share(self, owner: str, holder: str, round: int) -> bytes | None:
        """Return the sealed share of ``owner``'s key of ``round`` held by ``holder``."""
        blob = self._shares.get(owner, {}).get((holder, round))
        return blob if blob is not None else self._retired.get(owner, {}).get((holder, round))

    def collect_shares(
        self, grid: Grid, names: Iterable[str], *, round: int, timeout: float
    ) -> dict[str, str]:
        """Ask institutions without stored key shares for them; return who failed, and why."""
        missing = [n for n in sorted(names) if n not in self._shares]
        if not missing:
            return {}
        bundle = ConfigRecord(dict(self._blobs.items()))
        request = header(run_tag=self.run_tag, round=round)
        request[SALT_KEY] = self.salt
        messages = [
            Message(
                content=RecordDict({KEYS: request, ADVERTS: bundle}),
                dst_node_id=self.node_of[name],
                message_type=KEYS_MESSAGE_TYPE,
            )
            for name in missing
        ]
        name_of = {self.node_of[name]: name for name in missing}
        failed = {name: f"no key shares within {timeout:g} s" for name in missing}
        for reply in grid.send_and_receive(messages, timeout=timeout):
            name = name_of.get(reply.metadata.src_node_id)
            if name is None:
                continue
            if reply.has_error():
                failed[name] = f"key shares: {error_summary(reply.error.reason)}"
                continue
            records = reply.content.config_records
            if ABORT in records:
                failed[name] = f"key shares: {records[ABORT].get(REASON_KEY)!s}"
                continue
            try:
                self._shares[name] = _read_shares(records.get(KEYS), self, name, round)
            except ProtocolAbort as err:
                failed[name] = f"key shares: {err.reason}"
                continue
            del failed[name]
            self._delivered[self.node_of[name]] = dict(self._blobs)
        return failed


def _read_shares(
    record: ConfigRecord | None, registry: KeyRegistry, owner: str, round: int
) -> dict[tuple[str, int], bytes]:
    if record is None:
        raise ProtocolAbort(Stage.keys, "reply lacks the key shares", peer=owner)
    check_header(record, Stage.keys, run_tag=registry.run_tag, round=round)
    advert = registry.adverts[owner]
    rounds = range(advert.first_round, advert.first_round + len(advert.round_keys))
    out: dict[tuple[str, int], bytes] = {}
    for key, value in record.items():
        if not key.startswith(KEY_SHARE_PREFIX):
            continue
        holder, _, number = key[len(KEY_SHARE_PREFIX) :].rpartition(":")
        if (
            holder not in registry.institutions
            or not number.isdigit()
            or not isinstance(value, bytes)
        ):
            raise ProtocolAbort(Stage.keys, f"malformed key share {key!r}", peer=owner)
        if int(number) in rounds:
            out[(holder, int(number))] = value
    if not out:
        raise ProtocolAbort(Stage.keys, "reply holds no key shares", peer=owner)
    return out
