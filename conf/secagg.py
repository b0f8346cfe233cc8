"""Schema of the ``secagg`` config group: secure aggregation of the institutions' updates."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum

from fedrisk.secure.quantize import check_overflow

SUPPORTED_BITS = (32, 64)


class SecAggMode(str, Enum):
    """How institutions' updates reach the coordinator."""

    none = "none"
    secaggplus = "secaggplus"


class FailurePolicy(str, Enum):
    """What the run does when a round cannot be unmasked."""

    skip = "skip"
    stop = "stop"


@dataclass
class StageTimeouts:
    """Seconds the coordinator waits at each secure-aggregation stage.

    Parameters
    ----------
    keys : float (default: 120.0)
        Key-share stage (once per advertisement: at round 1, after a restart).
    train : float | None (default: None)
        Masked-update stage (the training round); ``None`` uses ``round_timeout``.
    consistency : float (default: 60.0)
        The consistency round.
    unmask : float (default: 60.0)
        The unmask round.
    """

    keys: float = field(default=120.0, metadata={"help": "key-share stage (s)"})
    train: float | None = field(default=None, metadata={"help": "masked-update stage (s)"})
    consistency: float = field(default=60.0, metadata={"help": "consistency round (s)"})
    unmask: float = field(default=60.0, metadata={"help": "unmask round (s)"})

    def __post_init__(self) -> None:
        for name in ("keys", "train", "consistency", "unmask"):
            value = getattr(self, name)
            if value is None and name == "train":
                continue
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"`secagg.timeouts.{name}` must be positive; got {value}")


@dataclass
class SecAggConfig:
    """Schema of ``secagg/*.yaml``.

    Parameters
    ----------
    mode : SecAggMode (default: none)
        ``none``: updates travel in the clear to the coordinator. ``secaggplus``:
        masked updates; the coordinator learns only their sum.
    degree : int (default: 0)
        Neighbours per institution in the SecAgg+ graph (an even number); 0, or a
        degree at least the number of participants, uses the full graph.
    threshold : int (default: 0)
        Self-mask shares needed to unmask one institution, which keeps one share and
        gives one to each neighbour (``s`` = degree + 1 shares; the number of
        institutions on the complete graph). 0 picks ``⌊2s/3⌋ + 1``, strictly above two
        thirds (Bonawitz et al.'s active-adversary bound). An explicit threshold may be
        lower, down to a strict majority of ``s``; see Notes for what that gives up.
    bits : int (default: 64)
        Word size of the fixed-point encoding: 64, or 32 to halve what travels (at
        about 1e-5 resolution; training amplifies that over rounds, measured +0.0009
        held-out AUC after 10 rounds on banks_5, against 6e-8 with 64 bits).
    clip : float (default: 4.0)
        Each coordinate of a weighted update is clipped to ``[-clip, clip]``.
    scale_bits : int | None (default: None)
        Fractional bits; ``None`` picks the largest that cannot overflow for the
        consortium's size.
    stochastic_rounding : bool (default: True)
        Unbiased random rounding; ``False`` rounds to nearest.
    max_rows : int (default: 1000000)
        Public bound on any institution's training rows: updates are weighted by
        rows / max_rows, and the row count itself travels only masked.
    consistency_check : bool (default: True)
        Run Bonawitz et al.'s consistency round: survivors sign the survivor set, and a
        bank reveals only if a quorum of survivors (the threshold, on the complete
        graph) signed exactly the set it is shown. One more message round per
        training round. Turning it off gives up the guarantee against a coordinator
        that shows different banks different survivor sets (see Notes).
    on_failure : FailurePolicy (default: skip)
        When a round cannot be unmasked: ``skip`` keeps the previous model and goes
        on; ``stop`` ends the run.
    timeouts : StageTimeouts
        Per-stage timeouts.

    Notes
    -----
    Whatever the settings, a bank reveals nothing at unmask when the survivor set it
    is shown holds fewer than ``t`` of its own share holders (itself and its
    neighbours), and reveals at most once per round.

    **Who can unmask an honest bank** (complete graph, ``n`` institutions, ``s = n``
    shares, threshold ``t``, round keys shared among the other ``n − 1`` with
    threshold ``m = ⌊(n−1)/2⌋ + 1``), the coordinator together with ``k`` colluding
    banks can unmask it

    - with the consistency check, when ``k ≥ min(2t − s, t − 1, m)``, and not with
      fewer (Bonawitz et al.'s argument: honest banks sign one set each): ``2t − s``
      colluders sign two survivor sets, each reaching ``t`` signatures with a
      different group of honest banks, one group revealing the bank's self-mask and
      the other its round key; ``t − 1`` colluders make a survivor set of the bank
      and themselves, whose sum is the bank's update; ``m`` colluders rebuild the
      bank's round key from their own shares;
    - without it, already when ``k ≥ t + m − n`` (at least 1 for any valid ``t``; the
      smallest coalition we know of, not a proven bound): the coordinator tells
      ``t − 1 − k`` honest banks that the bank survived and ``m − k`` others that it
      dropped, no signature binding the two sets together.

    ============  ==========  ========  ========  ===========  ===================
    institutions  t (auto)    dropouts  k, check  k, no check  k, check, majority t
    ============  ==========  ========  ========  ===========  ===================
    3             3           0         2         2            1 (t = 2)
    5             4           1         3         2            1 (t = 3)
    10            7           3         4         2            2 (t = 6)
    20            14          6         8         4            2 (t = 11)
    ============  ==========  ========  ========  ===========  ===================

    "dropouts": banks that may drop before masking or go silent at unmask, in total,
    and the round still unmasks (``s − t``). With 3 institutions nobody may drop: a
    run that must tolerate a dropout needs at least 4 (or an explicit lower
    threshold, accepting the column on the right). On a sparse graph (``degree``)
    ``s`` is the degree + 1 and the bounds hold per neighbourhood; the consistency
    quorum is then ``n − (s − t)`` survivors so that two groups of honest signers
    cannot both reach it.
    """

    mode: SecAggMode = field(default=SecAggMode.none, metadata={"help": "secure aggregation"})
    degree: int = field(default=0, metadata={"help": "SecAgg+ neighbours; 0 = full graph"})
    threshold: int = field(default=0, metadata={"help": "shares to unmask; 0 = above 2/3"})
    bits: int = field(default=64, metadata={"help": "fixed-point word size: 64 or 32"})
    clip: float = field(default=4.0, metadata={"help": "clipping range of a coordinate"})
    scale_bits: int | None = field(default=None, metadata={"help": "fractional bits"})
    stochastic_rounding: bool = field(default=True, metadata={"help": "unbiased rounding"})
    max_rows: int = field(default=1_000_000, metadata={"help": "public bound on rows"})
    consistency_check: bool = field(default=True, metadata={"help": "consistency round"})
    on_failure: FailurePolicy = field(
        default=FailurePolicy.skip, metadata={"help": "skip | stop a failed round"}
    )
    timeouts: StageTimeouts = field(default_factory=StageTimeouts)

    def __post_init__(self) -> None:
        self.mode = SecAggMode(self.mode)
        self.on_failure = FailurePolicy(self.on_failure)
        if isinstance(self.timeouts, dict):
            self.timeouts = StageTimeouts(**self.timeouts)
        if self.degree < 0 or self.degree % 2:
            raise ValueError(
                f"`secagg.degree` must be 0 or a positive even number; got {self.degree}"
            )
        if self.threshold < 0:
            raise ValueError(
                f"`secagg.threshold` must be 0 (auto) or positive; got {self.threshold}"
            )
        if self.bits not in SUPPORTED_BITS:
            raise ValueError(f"`secagg.bits` must be 32 or 64; got {self.bits}")
        if not (math.isfinite(self.clip) and self.clip > 0):
            raise ValueError(f"`secagg.clip` must be positive and finite; got {self.clip}")
        if self.scale_bits is not None and not 0 <= self.scale_bits < self.bits - 1:
            raise ValueError(
                f"`secagg.scale_bits` must be in [0, {self.bits - 1}); got {self.scale_bits}"
            )
        if self.max_rows < 1:
            raise ValueError(f"`secagg.max_rows` must be at least 1; got {self.max_rows}")

    @property
    def enabled(self) -> bool:
        """Whether updates are securely aggregated."""
        return self.mode is SecAggMode.secaggplus

    def checked_for(self, institutions: int) -> int:
        """Check the encoding against a consortium's size and return its scale bits.

        With ``scale_bits`` unset this is the largest number of fractional bits for
        which ``institutions`` clipped, weighted updates cannot overflow; the sum of
        the row counts (at most ``institutions × max_rows``) must fit as well.

        Raises
        ------
        ValueError
            If the consortium is too small for secure aggregation (fewer than 3
            institutions), the threshold cannot be met by the full graph, or the
            configured encoding could overflow.
        """
        if institutions < 3:
            raise ValueError(
                "secure aggregation needs at least 3 institutions (with 2, each learns the "
                f"other's update from the sum); got {institutions}"
            )
        neighbours = institutions - 1
        if self.degree and self.degree < neighbours:
            neighbours = self.degree
        shares = neighbours + 1
        if self.threshold and not shares / 2 < self.threshold <= shares:
            raise ValueError(
                f"`secagg.threshold` must exceed half of the {shares} shares of one self-mask "
                f"(the institution and its {neighbours} neighbours) and not exceed them; "
                f"got {self.threshold}"
            )
        if institutions * self.max_rows >= 2 ** (self.bits - 1):
            raise ValueError(
                f"`secagg.max_rows` × institutions must stay below 2^{self.bits - 1} with "
                f"bits={self.bits}; got {self.max_rows} × {institutions}"
            )
        if self.scale_bits is not None:
            check_overflow(
                clip=self.clip, count=institutions, bits=self.bits, scale_bits=self.scale_bits
            )
            return self.scale_bits
        for scale_bits in range(self.bits - 2, -1, -1):
            try:
                check_overflow(
                    clip=self.clip, count=institutions, bits=self.bits, scale_bits=scale_bits
                )
            except ValueError:
                continue
            return scale_bits
        raise ValueError(
            f"`secagg.clip` × institutions must stay below 2^{self.bits - 1}; got "
            f"{self.clip} × {institutions} with bits={self.bits} (raise `secagg.bits` to 64)"
        )
