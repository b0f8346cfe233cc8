"""The coordinator's half of a round: collect masked vectors, ask for reveals, unmask.

The coordinator learns the sum of the survivors' vectors and nothing else, provided
fewer than a threshold of an institution's share holders collude with it. It removes
the self-masks of institutions that sent a vector (each reconstructed from
``threshold`` shares held by its neighbours) and the pairwise masks survivors made with
participants that dropped before masking (from those participants' round keys,
reconstructed from the shares they handed out when they advertised). A survivor that
goes silent at unmask is still covered: its self-mask comes from its neighbours' shares.
When too few shares arrive the round fails closed: nothing is reconstructed and the
reason names the institutions involved.

Reveals are taken one at a time as they arrive (`RoundUnmasker.take`): each secret is
reconstructed, and its mask removed from the running sum, the moment it has a
threshold of shares, so the Shamir arithmetic (pure Python, about 0.2 ms per field
multiplication) overlaps the wait for later reveals, and the coordinator need not wait
for reveals it no longer needs. Which shares are used does not change the sum: any
threshold of correct shares gives the same secret. Nothing is revealed twice or both
ways: a bank still reveals, per institution, either a self-mask share or a round-key
share, as the request's survivor set dictates, however early the coordinator stops.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from flwr.app import ConfigRecord, RecordDict

from fedrisk.secure.masks import SEED_SIZE, mask_vector
from fedrisk.secure.shamir import combine_seed
from fedrisk.strategies.secagg.advert import Advertisement
from fedrisk.strategies.secagg.key_shares import (
    holders_of,
    key_share_threshold,
    recover_round_key,
)
from fedrisk.strategies.secagg.masking import pair_seed, peers_index
from fedrisk.strategies.secagg.round_info import RoundInfo, check_header, header
from fedrisk.strategies.secagg.wire import (
    DROPPED_KEY,
    KEY_SHARE_PREFIX,
    MASKED,
    REVEALED_KEY_PREFIX,
    REVEALED_SHARE_PREFIX,
    SHARE_PREFIX,
    SHARES,
    SURVIVORS_KEY,
    VECTOR_KEY,
    ProtocolAbort,
    Stage,
)

#: ``(owner, holder) → sealed share`` of the owner's key for the round being unmasked.
KeyShareLookup = Callable[[str, str], bytes | None]


@dataclass
class UnmaskOutcome:
    """How the unmasking of one round ended."""

    total: np.ndarray | None
    reason: str = ""
    silent: list[str] = field(default_factory=list)  # survivors that did not reveal
    #: survivors whose reveal was not needed: the sum was complete before they answered
    not_awaited: list[str] = field(default_factory=list)


class RoundUnmasker:
    """Server-side state of one round, from masked replies to the unmasked sum.

    Parameters
    ----------
    info : RoundInfo
        The round as announced to the participants.
    length : int
        Words in every vector.
    dtype : np.dtype
        ``uint32`` or ``uint64``.
    adverts : Mapping[int, Advertisement]
        Every participant's verified advertisement, by node id.
    key_shares : KeyShareLookup
        Sealed round-key shares handed out by the participants.
    institutions : Sequence[str]
        Every institution of the consortium manifest.
    """

    def __init__(
        self,
        info: RoundInfo,
        *,
        length: int,
        dtype: np.dtype,
        adverts: Mapping[int, Advertisement],
        key_shares: KeyShareLookup,
        institutions: Sequence[str],
    ) -> None:
        self.info = info
        self._length = length
        self._dtype = dtype
        self._adverts = dict(adverts)
        self._key_shares = key_shares
        self._institutions = list(institutions)
        self._vectors: dict[int, np.ndarray] = {}
        self._sealed: dict[int, dict[int, bytes]] = {}  # sender → recipient → blob
        self._closed = False
        self._bits = np.dtype(dtype).itemsize * 8
        # unmasking, filled by `requests` and `take`
        self._needed: list[int] = []  # dropped participants some survivor masked with
        self._heard: set[int] = set()  # survivors whose reveal (or error) arrived
        self._answered: set[int] = set()  # ... and whose reveal was well formed
        self._shares: dict[int, list[tuple[int, bytes]]] = {}
        self._got_key_shares: dict[int, list[tuple[int, bytes]]] = {}
        self._keys_done: set[int] = set()
        self._key_problems: dict[int, str] = {}
        self._sum: np.ndarray | None = None

    @property
    def survivors(self) -> list[int]:
        """Nodes whose masked vector was accepted, sorted."""
        return sorted(self._vectors)

    @property
    def dropped(self) -> list[int]:
        """Participants without an accepted vector, sorted."""
        return sorted(set(self.info.institution_of) - set(self._vectors))

    def accept(self, node: int, content: RecordDict) -> None:
        """Take one institution's masked reply.

        Raises
        ------
        ProtocolAbort
            At stage ``train``, naming the sender, if the round is closed (a late
            reply), the sender is not a participant, or the reply is malformed, of
            another run or round (a replay), or lacks a share for a neighbour.
        """
        name = self.info.institution_of.get(node)
        if name is None:
            raise ProtocolAbort(Stage.train, f"node {node} is not a participant of this round")
        if self._closed:
            raise ProtocolAbort(Stage.train, "late reply: the round is closed", peer=name)
        shares = content.config_records.get(SHARES)
        masked = content.array_records.get(MASKED)
        if shares is None or masked is None or list(masked.keys()) != [VECTOR_KEY]:
            raise ProtocolAbort(Stage.train, "reply lacks the masked vector or shares", peer=name)
        check_header(
            shares, Stage.train, run_tag=self.info.run_tag, round=self.info.round, institution=name
        )
        vector = masked[VECTOR_KEY].numpy()
        if vector.dtype != self._dtype or vector.shape != (self._length,):
            raise ProtocolAbort(
                Stage.train,
                f"masked vector is {vector.dtype}{list(vector.shape)}, expected "
                f"{self._dtype}[{self._length}]",
                peer=name,
            )
        sealed: dict[int, bytes] = {}
        for peer in self.info.graph[node]:
            blob = shares.get(SHARE_PREFIX + self.info.institution_of[peer])
            if not isinstance(blob, bytes):
                raise ProtocolAbort(
                    Stage.train,
                    f"reply lacks the share for {self.info.institution_of[peer]}",
                    peer=name,
                )
            sealed[peer] = blob
        self._vectors[node] = vector
        self._sealed[node] = sealed

    def requests(self) -> dict[int, ConfigRecord]:
        """Close the training stage and build every survivor's unmask request."""
        self._closed = True
        info = self.info
        name = info.institution_of
        survivors, dropped = self.survivors, self.dropped
        needed = [j for j in dropped if set(info.graph[j]) & set(self._vectors)]
        self._needed = needed
        self._shares = {node: [] for node in survivors}
        self._got_key_shares = {node: [] for node in needed}
        out = {}
        for node in survivors:
            record = header(run_tag=info.run_tag, round=info.round)
            record[SURVIVORS_KEY] = survivors
            record[DROPPED_KEY] = dropped
            for sender in info.graph[node]:
                blob = self._sealed.get(sender, {}).get(node)
                if blob is not None:
                    record[SHARE_PREFIX + name[sender]] = blob
            for owner in needed:
                blob = self._key_shares(name[owner], name[node])
                if blob is not None:
                    record[KEY_SHARE_PREFIX + name[owner]] = blob
            out[node] = record
        return out

    def finish(self, reveals: Mapping[int, ConfigRecord]) -> UnmaskOutcome:
        """Unmask the sum from every reveal that arrived, or fail closed.

        Parameters
        ----------
        reveals : Mapping[int, ConfigRecord]
            The ``REVEAL`` record of each survivor that answered, by node id; survivors
            missing here are silent.
        """
        for holder, record in sorted(reveals.items()):
            self.take(holder, record)
        return self.outcome(awaited_all=True)

    def take(self, holder: int, record: ConfigRecord | None) -> bool:
        """Read one survivor's reveal as it arrives; return True once the sum can be unmasked.

        Each secret is reconstructed, and its mask removed from the running sum, as soon
        as it has enough shares, so the work overlaps the wait for later reveals. A
        malformed reveal, or ``None`` (an error reply), counts as silence.
        """
        if holder not in self._vectors or holder in self._heard:
            return self.complete  # only survivors were asked, each once
        self._heard.add(holder)
        if record is None:
            return self.complete
        info = self.info
        try:
            check_header(record, Stage.unmask, run_tag=info.run_tag, round=info.round)
            found = self._read_reveal(holder, record)
        except ProtocolAbort:
            return self.complete
        self._answered.add(holder)
        for secret, owner, index, value in found:
            got = (self._shares if secret == "self" else self._got_key_shares)[owner]
            got.append((index, value))
            if secret == "self" and len(got) == info.threshold:
                self._remove_self_mask(got)
            elif secret == "key" and len(got) == self._key_threshold(owner):
                self._remove_pair_masks(owner, got)
        return self.complete

    @property
    def complete(self) -> bool:
        """Whether every mask that must come off has been removed.

        A self-mask comes off when its seed reaches the threshold of shares; a round
        key that fails to reconstruct keeps the round incomplete.
        """
        threshold = self.info.threshold
        return (
            self._closed
            and all(len(got) >= threshold for got in self._shares.values())
            and all(owner in self._keys_done for owner in self._needed)
        )

    def outcome(self, *, awaited_all: bool) -> UnmaskOutcome:
        """End the unmasking: the sum if every mask came off, otherwise why not.

        Parameters
        ----------
        awaited_all : bool
            True when every survivor was waited for: those that did not answer are
            ``silent``. False when the sum was complete before they answered: they are
            ``not_awaited`` instead.
        """
        name = self.info.institution_of
        waited = awaited_all or not self.complete  # then whoever did not answer is silent
        silent = [
            name[n]
            for n in self.survivors
            if n not in self._answered and (waited or n in self._heard)
        ]
        not_awaited = [] if waited else [name[n] for n in self.survivors if n not in self._heard]
        problems = [
            f"{name[owner]}'s self-mask has {len(self._shares[owner])} of "
            f"{self.info.threshold} shares"
            for owner in self.survivors
            if len(self._shares[owner]) < self.info.threshold
        ]
        for owner in self._needed:
            if owner in self._key_problems:
                problems.append(f"{name[owner]}'s {self._key_problems[owner]}")
            elif owner not in self._keys_done:
                shares = len(self._got_key_shares[owner])
                problems.append(
                    f"{name[owner]}'s round key has {shares} of {self._key_threshold(owner)} shares"
                )
        if problems:
            return UnmaskOutcome(
                total=None, reason="; ".join(problems), silent=silent, not_awaited=not_awaited
            )
        return UnmaskOutcome(total=self._total(), silent=silent, not_awaited=not_awaited)

    def _read_reveal(self, holder: int, record: ConfigRecord) -> list[tuple[str, int, int, bytes]]:
        info = self.info
        holder_name = info.institution_of[holder]
        found: list[tuple[str, int, int, bytes]] = []
        for owner, owner_name in info.institution_of.items():
            share = record.get(REVEALED_SHARE_PREFIX + owner_name)
            key_share = record.get(REVEALED_KEY_PREFIX + owner_name)
            if share is not None and key_share is not None:
                raise ProtocolAbort(Stage.unmask, "revealed both secrets of one institution")
            if share is not None:
                if owner not in self._vectors or (
                    holder != owner and holder not in info.graph[owner]
                ):
                    raise ProtocolAbort(Stage.unmask, f"unasked share of {owner_name}")
                index = peers_index(info, owner=owner, holder=holder)
                found.append(("self", owner, index, _share(share, index, owner_name)))
            if key_share is not None:
                if owner in self._vectors:
                    raise ProtocolAbort(Stage.unmask, f"unasked key share of {owner_name}")
                if owner not in self._needed:
                    continue  # nobody masked with it: not needed
                index = holders_of(owner_name, self._institutions).index(holder_name) + 1
                found.append(("key", owner, index, _share(key_share, index, owner_name)))
        return found

    def _key_threshold(self, owner: int) -> int:
        owner_name = self.info.institution_of[owner]
        return key_share_threshold(len(holders_of(owner_name, self._institutions)))

    def _total(self) -> np.ndarray:
        """Return the running sum: every vector, less the masks removed so far."""
        if self._sum is None:
            self._sum = np.zeros(self._length, dtype=self._dtype)
            for vector in self._vectors.values():
                np.add(self._sum, vector, out=self._sum)
        return self._sum

    def _remove_self_mask(self, got: list[tuple[int, bytes]]) -> None:
        # sorted by index: a seed combined from the same indices reuses the Lagrange
        # coefficients `combine_seed` caches (replies tend to arrive in the same order)
        self_seed = combine_seed(sorted(got), threshold=self.info.threshold)
        total = self._total()
        np.subtract(total, mask_vector(self_seed, self._length, bits=self._bits), out=total)

    def _remove_pair_masks(self, owner: int, got: list[tuple[int, bytes]]) -> None:
        info = self.info
        try:
            key = recover_round_key(
                sorted(got),
                owner=self._adverts[owner],
                institutions=self._institutions,
                round=info.round,
            )
        except ProtocolAbort as err:
            self._key_problems[owner] = err.reason
            return
        total = self._total()
        for survivor in set(info.graph[owner]) & set(self._vectors):
            seed = pair_seed(key, self._adverts[survivor], me=owner, peer=survivor, info=info)
            pad = mask_vector(seed, self._length, bits=self._bits)
            # the survivor added the pad if its id is the smaller one, else subtracted it
            if survivor < owner:
                np.subtract(total, pad, out=total)
            else:
                np.add(total, pad, out=total)
        self._keys_done.add(owner)


def _share(value: object, index: int, owner: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != 1 + SEED_SIZE or value[0] != index:
        raise ProtocolAbort(Stage.unmask, f"malformed share of {owner}")
    return value[1:]
