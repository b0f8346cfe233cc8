"""In-process SecAgg+ rounds for the tests: banks mask, the coordinator unmasks.

Nothing here talks to Flower's Grid: the records each side would send are built with the
same functions the client and server apps use and handed over directly, so a test can
drop, silence, replay or tamper with any message in between.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, RecordDict

from fedrisk.secure.signing import generate_signing_key
from fedrisk.strategies.secagg.advert import Advertisement, advertise
from fedrisk.strategies.secagg.key_shares import seal_round_key_shares
from fedrisk.strategies.secagg.keys import NodeKeys
from fedrisk.strategies.secagg.masking import (
    MaskedInput,
    Reveal,
    mask_input,
    reveal,
    reveal_record,
    shares_record,
)
from fedrisk.strategies.secagg.round_info import RoundInfo
from fedrisk.strategies.secagg.unmasking import RoundUnmasker, UnmaskOutcome
from fedrisk.strategies.secagg.wire import (
    KEY_SHARE_PREFIX,
    MASKED,
    SHARE_PREFIX,
    SHARES,
    SURVIVORS_KEY,
    VECTOR_KEY,
    ProtocolAbort,
)

DTYPES: dict[int, np.dtype] = {32: np.dtype(np.uint32), 64: np.dtype(np.uint64)}
RUN_TAG = "run-7f3a"
SALT = bytes(range(16))
ROUNDS = range(1, 6)


@dataclass
class SimRound:
    """One simulated round: the banks' keys and plaintext vectors, and the coordinator."""

    info: RoundInfo
    keys: dict[int, NodeKeys]
    adverts: dict[int, Advertisement]
    key_shares: dict[tuple[str, str, int], bytes]  # (owner, holder, round) → sealed share
    vectors: dict[int, np.ndarray]
    unmasker: RoundUnmasker
    masked: dict[int, MaskedInput] = field(default_factory=dict)
    #: banks that refused to reveal (e.g. a survivor set below their threshold), and why
    refused: dict[str, ProtocolAbort] = field(default_factory=dict)

    def node(self, name: str) -> int:
        """Node id of institution ``name``."""
        return self.info.node_of[name]

    def name(self, node: int) -> str:
        """Institution of ``node``."""
        return self.info.institution_of[node]

    def mask(self, node: int, vector: np.ndarray | None = None) -> MaskedInput:
        """Mask ``node``'s vector (its own by default) as its client app would."""
        plain = self.vectors[node] if vector is None else vector
        return mask_input(plain, me=node, keys=self.keys[node], peers=self.adverts, info=self.info)

    def reply(self, node: int, masked: MaskedInput, *, info: RoundInfo | None = None) -> RecordDict:
        """The training reply carrying ``masked`` (built for ``info``, this round by default)."""
        about = self.info if info is None else info
        return RecordDict(
            {
                MASKED: ArrayRecord({VECTOR_KEY: Array(masked.vector)}),
                SHARES: shares_record(masked, info=about, institution=self.name(node)),
            }
        )

    def train(self, dropped: Collection[str] = ()) -> None:
        """Every bank not in ``dropped`` masks its vector and the coordinator accepts it."""
        for name, node in sorted(self.info.node_of.items()):
            if name in dropped:
                continue
            self.masked[node] = self.mask(node)
            self.unmasker.accept(node, self.reply(node, self.masked[node]))

    def reveals(
        self,
        silent: Collection[str] = (),
        *,
        tamper: Callable[[int, dict[int, bytes]], None] | None = None,
    ) -> dict[int, ConfigRecord]:
        """Close the round, deliver the unmask requests and collect the reveal records.

        ``tamper(node, sealed_to_me)`` may alter a request's sealed shares in transit.
        A bank that refuses by a rule (a `ProtocolAbort` naming one) sends no reveal;
        its refusal is kept in ``refused``.
        """
        reveals: dict[int, ConfigRecord] = {}
        for node, request in self.unmasker.requests().items():
            if self.name(node) in silent:
                continue
            sealed = {
                self.node(key[len(SHARE_PREFIX) :]): value
                for key, value in request.items()
                if key.startswith(SHARE_PREFIX)
            }
            key_shares = {
                self.node(key[len(KEY_SHARE_PREFIX) :]): value
                for key, value in request.items()
                if key.startswith(KEY_SHARE_PREFIX)
            }
            if tamper is not None:
                tamper(node, sealed)
            try:
                answer = self.reveal_for(node, request, sealed, key_shares)
            except ProtocolAbort as err:
                if err.rule is None:
                    raise
                self.refused[self.name(node)] = err
                continue
            reveals[node] = reveal_record(answer, info=self.info, institution=self.name(node))
        return reveals

    def reveal_for(
        self,
        node: int,
        request: ConfigRecord,
        sealed: dict[int, bytes],
        key_shares: dict[int, bytes],
    ) -> Reveal:
        """What ``node`` reveals for ``request`` (its sealed shares already read out)."""
        return reveal(
            me=node,
            keys=self.keys[node],
            peers=self.adverts,
            own=self.adverts[node],
            info=self.info,
            survivors=set(request[SURVIVORS_KEY]),
            sealed_to_me=sealed,
            key_shares_to_me=key_shares,
            institutions=sorted(self.info.node_of),
            own_share=self.masked[node].own_share,
        )

    def run(self, dropped: Collection[str] = (), silent: Collection[str] = ()) -> UnmaskOutcome:
        """Train (with ``dropped`` missing) and unmask (with ``silent`` not answering)."""
        self.train(dropped)
        return self.unmasker.finish(self.reveals(silent))

    def plaintext_sum(self, nodes: Collection[int]) -> np.ndarray:
        """Modular sum of ``nodes``' plaintext vectors."""
        total = np.zeros(self.unmasker._length, dtype=self.unmasker._dtype)
        for node in nodes:
            np.add(total, self.vectors[node], out=total)
        return total


def round_info(
    banks: int,
    *,
    degree: int = 0,
    round: int = 3,
    threshold: int = 0,
    run_tag: str = RUN_TAG,
) -> RoundInfo:
    """A round of ``banks`` institutions ``bank-0``… on non-contiguous node ids."""
    node_of = {f"bank-{i}": 1000 + 37 * i for i in range(banks)}
    return RoundInfo(
        run_tag=run_tag,
        salt=SALT,
        round=round,
        node_of=node_of,
        degree=degree,
        threshold_setting=threshold,
    )


def make_round(
    banks: int,
    *,
    bits: int = 32,
    length: int = 64,
    degree: int = 0,
    round: int = 3,
    threshold: int = 0,
    seed: int = 0,
) -> SimRound:
    """A fresh round with seeded uniform plaintext vectors and fresh keys.

    Every bank advertises its keys for ``ROUNDS`` and hands out sealed shares of its
    round keys to every other bank, as at the start of a run.
    """
    info = round_info(banks, degree=degree, round=round, threshold=threshold)
    rng = np.random.default_rng(seed)
    dtype = DTYPES[bits]
    names = sorted(info.node_of)
    keys = {node: NodeKeys.generate(RUN_TAG) for node in info.institution_of}
    adverts = {
        node: advertise(
            generate_signing_key(),
            keys[node],
            institution=info.institution_of[node],
            node_id=node,
            rounds=ROUNDS,
        )
        for node in info.institution_of
    }
    by_name = {advert.institution: advert for advert in adverts.values()}
    key_shares: dict[tuple[str, str, int], bytes] = {}
    for node, advert in adverts.items():
        sealed = seal_round_key_shares(
            keys[node],
            owner=advert,
            holders={n: a for n, a in by_name.items() if n != advert.institution},
            institutions=names,
            rounds=ROUNDS,
            salt=SALT,
        )
        for (holder, r), blob in sealed.items():
            key_shares[(advert.institution, holder, r)] = blob
    return SimRound(
        info=info,
        keys=keys,
        adverts=adverts,
        key_shares=key_shares,
        vectors={
            node: rng.integers(0, 2**bits, size=length, dtype=dtype, endpoint=False)
            for node in info.institution_of
        },
        unmasker=RoundUnmasker(
            info,
            length=length,
            dtype=dtype,
            adverts=adverts,
            key_shares=lambda owner, holder: key_shares.get((owner, holder, round)),
            institutions=names,
        ),
    )
