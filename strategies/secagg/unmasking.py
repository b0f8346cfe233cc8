"""The coordinator's half of a round: collect masked vectors, ask for reveals, unmask.

The coordinator learns the sum of the survivors' vectors and nothing else, provided
fewer than ``threshold`` neighbours of any institution collude with it: it removes the
self-masks of institutions that sent a vector (reconstructed from ``threshold`` shares)
and the pairwise masks those institutions share with neighbours that dropped before
masking (revealed by the survivors). When that is impossible — too few shares, or a
pairwise seed whose only holders are both gone — the round fails closed: nothing is
reconstructed and the reason names the institutions involved.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from flwr.app import ConfigRecord, RecordDict

from fedrisk.secure.masks import SEED_SIZE, mask_vector
from fedrisk.secure.shamir import combine_seed
from fedrisk.strategies.secagg.masking import peers_index
from fedrisk.strategies.secagg.round_info import RoundInfo, check_header, header
from fedrisk.strategies.secagg.wire import (
    DROPPED_KEY,
    MASKED,
    PAIR_SEED_PREFIX,
    REVEALED_SHARE_PREFIX,
    SHARE_PREFIX,
    SHARES,
    SURVIVORS_KEY,
    VECTOR_KEY,
    ProtocolAbort,
    Stage,
)


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
    """

    def __init__(self, info: RoundInfo, *, length: int, dtype: np.dtype) -> None:
        self.info = info
        self._length = length
        self._dtype = dtype
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

    def close(self) -> None:
        """Stop accepting masked replies (the training stage is over)."""
        self._closed = True

    def requests(self) -> dict[int, ConfigRecord]:
        """Close the training stage and build every survivor's unmask request."""
        self.close()
        survivors = self.survivors
        dropped = self.dropped
        out = {}
        for node in survivors:
            record = ConfigRecord(
                {
                    **header(run_tag=self.info.run_tag, round=self.info.round),
                    SURVIVORS_KEY: survivors,
                    DROPPED_KEY: dropped,
                }
            )
            for sender in self.info.graph[node]:
                blob = self._sealed.get(sender, {}).get(node)
                if blob is not None:
                    record[SHARE_PREFIX + self.info.institution_of[sender]] = blob
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
        seeds: dict[tuple[int, int], bytes] = {}
        answered: set[int] = set()
        for holder, record in sorted(reveals.items()):
            if holder not in self._vectors:
                continue  # only survivors were asked
            try:
                check_header(record, Stage.unmask, run_tag=info.run_tag, round=info.round)
                self._read_reveal(holder, record, shares, seeds)
            except ProtocolAbort:
                continue  # a malformed reveal counts as silence
            answered.add(holder)
        silent = [name[n] for n in self.survivors if n not in answered]
        problems = []
        for owner, got in shares.items():
            if len(got) < info.threshold:
                problems.append(
                    f"{name[owner]}'s self-mask has {len(got)} of {info.threshold} shares"
                )
        for survivor in self.survivors:
            for peer in set(info.graph[survivor]) - set(self._vectors):
                if (survivor, peer) not in seeds:
                    problems.append(
                        f"the pairwise mask of {name[survivor]} (silent at unmask) and "
                        f"{name[peer]} (dropped before masking) has no holder left"
                    )
        if problems:
            return UnmaskOutcome(total=None, reason="; ".join(problems), silent=silent)
        return UnmaskOutcome(total=self._unmask(shares, seeds), silent=silent)

    def _read_reveal(
        self,
        holder: int,
        record: ConfigRecord,
        shares: dict[int, list[tuple[int, bytes]]],
        seeds: dict[tuple[int, int], bytes],
    ) -> None:
        info = self.info
        found_shares: list[tuple[int, int, bytes]] = []
        found_seeds: list[tuple[int, bytes]] = []
        for peer in info.graph[holder]:
            peer_name = info.institution_of[peer]
            share = record.get(REVEALED_SHARE_PREFIX + peer_name)
            seed = record.get(PAIR_SEED_PREFIX + peer_name)
            if share is not None and seed is not None:
                raise ProtocolAbort(Stage.unmask, "revealed both secrets of one peer")
            if share is not None:
                index = peers_index(info, owner=peer, holder=holder)
                if (
                    peer not in self._vectors
                    or not isinstance(share, bytes)
                    or len(share) != 1 + SEED_SIZE
                    or share[0] != index
                ):
                    raise ProtocolAbort(Stage.unmask, f"bad share of {peer_name}")
                found_shares.append((peer, index, share[1:]))
            if seed is not None:
                if peer in self._vectors or not isinstance(seed, bytes) or len(seed) != SEED_SIZE:
                    raise ProtocolAbort(Stage.unmask, f"bad pairwise seed with {peer_name}")
                found_seeds.append((peer, seed))
        for owner, index, value in found_shares:
            shares[owner].append((index, value))
        for peer, seed in found_seeds:
            seeds[(holder, peer)] = seed

    def _unmask(
        self, shares: dict[int, list[tuple[int, bytes]]], seeds: dict[tuple[int, int], bytes]
    ) -> np.ndarray:
        bits = self._dtype.itemsize * 8
        total = np.zeros(self._length, dtype=self._dtype)
        for vector in self._vectors.values():
            np.add(total, vector, out=total)
        for got in shares.values():
            self_seed = combine_seed(got[: self.info.threshold], threshold=self.info.threshold)
            np.subtract(total, mask_vector(self_seed, self._length, bits=bits), out=total)
        for (survivor, peer), seed in seeds.items():
            pad = mask_vector(seed, self._length, bits=bits)
            # the survivor added the pad if its id is the smaller one, else subtracted it
            if survivor < peer:
                np.subtract(total, pad, out=total)
            else:
                np.add(total, pad, out=total)
        return total
