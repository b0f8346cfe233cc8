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
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from flwr.app import ConfigRecord, RecordDict

from fedrisk.secure.masks import SEED_SIZE, mask_vector
from fedrisk.secure.shamir import combine_seed
from fedrisk.strategies.secagg.advert import Advertisement
from fedrisk.strategies.secagg.key_shares import holders_of, recover_round_key
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
        """Unmask the sum from the survivors' reveals, or fail closed.

        Parameters
        ----------
        reveals : Mapping[int, ConfigRecord]
            The ``REVEAL`` record of each survivor that answered, by node id.
        """
        info = self.info
        name = info.institution_of
        shares: dict[int, list[tuple[int, bytes]]] = {node: [] for node in self.survivors}
        key_shares: dict[int, list[tuple[int, bytes]]] = {node: [] for node in self.dropped}
        answered: set[int] = set()
        for holder, record in sorted(reveals.items()):
            if holder not in self._vectors:
                continue  # only survivors were asked
            try:
                check_header(record, Stage.unmask, run_tag=info.run_tag, round=info.round)
                self._read_reveal(holder, record, shares, key_shares)
            except ProtocolAbort:
                continue  # a malformed reveal counts as silence
            answered.add(holder)
        silent = [name[n] for n in self.survivors if n not in answered]
        problems = [
            f"{name[owner]}'s self-mask has {len(got)} of {info.threshold} shares"
            for owner, got in shares.items()
            if len(got) < info.threshold
        ]
        round_keys = {}
        for owner, got in key_shares.items():
            if not set(info.graph[owner]) & set(self._vectors):
                continue  # nobody masked with it
            try:
                round_keys[owner] = recover_round_key(
                    got,
                    owner=self._adverts[owner],
                    institutions=self._institutions,
                    round=info.round,
                )
            except ProtocolAbort as err:
                problems.append(f"{name[owner]}'s {err.reason}")
        if problems:
            return UnmaskOutcome(total=None, reason="; ".join(problems), silent=silent)
        total = self._unmask(shares, round_keys)
        return UnmaskOutcome(total=total, silent=silent)

    def _read_reveal(
        self,
        holder: int,
        record: ConfigRecord,
        shares: dict[int, list[tuple[int, bytes]]],
        key_shares: dict[int, list[tuple[int, bytes]]],
    ) -> None:
        info = self.info
        holder_name = info.institution_of[holder]
        found: list[tuple[dict[int, list[tuple[int, bytes]]], int, int, bytes]] = []
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
                found.append((shares, owner, index, _share(share, index, owner_name)))
            if key_share is not None:
                if owner in self._vectors:
                    raise ProtocolAbort(Stage.unmask, f"unasked key share of {owner_name}")
                index = holders_of(owner_name, self._institutions).index(holder_name) + 1
                found.append((key_shares, owner, index, _share(key_share, index, owner_name)))
        for target, owner, index, value in found:
            target[owner].append((index, value))

    def _unmask(
        self,
        shares: dict[int, list[tuple[int, bytes]]],
        round_keys: Mapping[int, object],
    ) -> np.ndarray:
        info = self.info
        bits = self._dtype.itemsize * 8
        total = np.zeros(self._length, dtype=self._dtype)
        for vector in self._vectors.values():
            np.add(total, vector, out=total)
        for got in shares.values():
            # the lowest share indices: with every holder answering, each seed is combined
            # from the same indices, whose Lagrange coefficients `combine_seed` caches
            lowest = sorted(got, key=lambda share: share[0])[: info.threshold]
            self_seed = combine_seed(lowest, threshold=info.threshold)
            np.subtract(total, mask_vector(self_seed, self._length, bits=bits), out=total)
        for owner, key in round_keys.items():
            for survivor in set(info.graph[owner]) & set(self._vectors):
                seed = pair_seed(
                    key,  # type: ignore[arg-type]
                    self._adverts[survivor],
                    me=owner,
                    peer=survivor,
                    info=info,
                )
                pad = mask_vector(seed, self._length, bits=bits)
                # the survivor added the pad if its id is the smaller one, else subtracted it
                if survivor < owner:
                    np.subtract(total, pad, out=total)
                else:
                    np.add(total, pad, out=total)
        return total


def _share(value: object, index: int, owner: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != 1 + SEED_SIZE or value[0] != index:
        raise ProtocolAbort(Stage.unmask, f"malformed share of {owner}")
    return value[1:]
