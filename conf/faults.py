"""Schema of the ``faults`` settings: failures injected into simulated institutions.

Simulation only: a deployment ignores them. A dropout makes the institution's node
fail (an error reply, as if it crashed) at one stage of chosen rounds, or at random
with a seeded probability; a straggler answers late; a corrupt bank sends a broken
update (NaN, Inf, wrong shape, wrong dtype, a huge norm); a replaying bank sends its
previous round's reply again. The coordinator must reject or time out every one of
them and carry on (see :mod:`fedrisk.server.update_validation`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import TypeVar

_T = TypeVar("_T")


class FaultStage(str, Enum):
    """Where an injected dropout strikes."""

    train = "train"  # before replying to the training instruction (before masking)
    consistency = "consistency"  # at the secure-aggregation consistency round
    unmask = "unmask"  # at the secure-aggregation unmask round
    evaluate = "evaluate"  # at federated evaluation


class CorruptionKind(str, Enum):
    """How a corrupt bank breaks its training reply."""

    nan = "nan"  # one weight becomes NaN
    inf = "inf"  # one weight becomes +Inf
    wrong_shape = "wrong_shape"  # the first parameter loses its last row
    wrong_dtype = "wrong_dtype"  # every parameter is sent as float64
    huge_norm = "huge_norm"  # the update (reply minus global model) scaled by 1e6


@dataclass
class DropoutFault:
    """One institution dropping out.

    Parameters
    ----------
    institution : str
        Who drops.
    stage : FaultStage (default: train)
        When in the round.
    rounds : list[int] (default: [])
        Which rounds; empty means every round.
    """

    institution: str = field(default="", metadata={"help": "institution that drops"})
    stage: FaultStage = field(default=FaultStage.train, metadata={"help": "stage it drops at"})
    rounds: list[int] = field(default_factory=list, metadata={"help": "rounds; [] = all"})

    def __post_init__(self) -> None:
        self.stage = FaultStage(self.stage)
        _check_target("dropouts", self.institution, self.rounds)

    def strikes(self, institution: str, stage: FaultStage, server_round: int) -> bool:
        """Whether this fault makes ``institution`` drop at ``stage`` of ``server_round``."""
        return stage is self.stage and _targets(
            self.institution, self.rounds, institution, server_round
        )


@dataclass
class RandomDropouts:
    """Every listed institution drops at one stage with a probability, per round.

    The draw is a pure function of the run seed, institution, stage and round (a
    SHA-256 of them), so a rerun or a resumed run drops the same banks at the same time.

    Parameters
    ----------
    probability : float (default: 0.0)
        Chance of dropping in each round, in [0, 1].
    stage : FaultStage (default: train)
        When in the round.
    institutions : list[str] (default: [])
        Who may drop; empty means every institution.
    """

    probability: float = field(default=0.0, metadata={"help": "chance per round"})
    stage: FaultStage = field(default=FaultStage.train, metadata={"help": "stage it drops at"})
    institutions: list[str] = field(default_factory=list, metadata={"help": "[] = all"})

    def __post_init__(self) -> None:
        self.stage = FaultStage(self.stage)
        if not (math.isfinite(self.probability) and 0.0 <= self.probability <= 1.0):
            raise ValueError(
                f"`faults.random_dropouts[].probability` must be in [0, 1]; got {self.probability}"
            )

    def strikes(self, institution: str, stage: FaultStage, server_round: int, *, seed: int) -> bool:
        """Whether ``institution`` drops at ``stage`` of ``server_round`` in a run on ``seed``."""
        if stage is not self.stage or (self.institutions and institution not in self.institutions):
            return False
        label = f"fedrisk/fault/{seed}/{institution}/{stage.value}/{server_round}".encode()
        draw = int.from_bytes(hashlib.sha256(label).digest()[:8], "big") / 2**64
        return draw < self.probability


@dataclass
class Straggler:
    """An institution that answers late (and is a dropout if later than the timeout).

    Parameters
    ----------
    institution : str
        Who is slow.
    delay : float (default: 0.0)
        Seconds it waits before handling the message.
    stage : FaultStage (default: train)
        Which message it is slow to answer.
    rounds : list[int] (default: [])
        Which rounds; empty means every round.
    """

    institution: str = field(default="", metadata={"help": "institution that is slow"})
    delay: float = field(default=0.0, metadata={"help": "seconds of delay"})
    stage: FaultStage = field(default=FaultStage.train, metadata={"help": "stage it is slow at"})
    rounds: list[int] = field(default_factory=list, metadata={"help": "rounds; [] = all"})

    def __post_init__(self) -> None:
        self.stage = FaultStage(self.stage)
        _check_target("stragglers", self.institution, self.rounds)
        if not (math.isfinite(self.delay) and self.delay > 0):
            raise ValueError(f"`faults.stragglers[].delay` must be positive; got {self.delay}")

    def strikes(self, institution: str, stage: FaultStage, server_round: int) -> bool:
        """Whether ``institution`` is slow at ``stage`` of ``server_round``."""
        return stage is self.stage and _targets(
            self.institution, self.rounds, institution, server_round
        )


@dataclass
class CorruptUpdate:
    """An institution whose training reply is broken on the way out.

    Parameters
    ----------
    institution : str
        Who sends garbage.
    kind : str (default: "nan")
        How the update is broken: a `CorruptionKind` value. A string, not the Enum:
        Hydra reads an unquoted ``nan`` or ``inf`` on the command line as a float.
    rounds : list[int] (default: [])
        Which rounds; empty means every round.
    """

    institution: str = field(default="", metadata={"help": "institution that corrupts"})
    kind: str = field(default="nan", metadata={"help": "nan|inf|wrong_shape|wrong_dtype|huge_norm"})
    rounds: list[int] = field(default_factory=list, metadata={"help": "rounds; [] = all"})

    def __post_init__(self) -> None:
        kinds = [k.value for k in CorruptionKind]
        self.kind = str(self.kind)
        if self.kind not in kinds:
            raise ValueError(f"`faults.corrupt[].kind` must be one of {kinds}; got {self.kind!r}")
        _check_target("corrupt", self.institution, self.rounds)

    @property
    def corruption(self) -> CorruptionKind:
        """How the update is broken."""
        return CorruptionKind(self.kind)

    def strikes(self, institution: str, server_round: int) -> bool:
        """Whether ``institution`` corrupts its reply in ``server_round``."""
        return _targets(self.institution, self.rounds, institution, server_round)


@dataclass
class ReplayUpdate:
    """An institution that sends its previous round's training reply again.

    Parameters
    ----------
    institution : str
        Who replays.
    rounds : list[int] (default: [])
        Which rounds (from 2: round 1 has nothing to replay); empty means every round.
    """

    institution: str = field(default="", metadata={"help": "institution that replays"})
    rounds: list[int] = field(default_factory=list, metadata={"help": "rounds; [] = all"})

    def __post_init__(self) -> None:
        _check_target("replay", self.institution, self.rounds)

    def strikes(self, institution: str, server_round: int) -> bool:
        """Whether ``institution`` replays in ``server_round``."""
        return _targets(self.institution, self.rounds, institution, server_round)


@dataclass
class FaultsConfig:
    """Injected failures (simulation only).

    Parameters
    ----------
    dropouts : list[DropoutFault] (default: [])
        Institutions that drop out, and when.
    random_dropouts : list[RandomDropouts] (default: [])
        Seeded random dropouts per round and stage.
    stragglers : list[Straggler] (default: [])
        Institutions that answer late.
    corrupt : list[CorruptUpdate] (default: [])
        Institutions that send broken updates.
    replay : list[ReplayUpdate] (default: [])
        Institutions that replay their previous round's reply.
    """

    dropouts: list[DropoutFault] = field(default_factory=list)
    random_dropouts: list[RandomDropouts] = field(default_factory=list)
    stragglers: list[Straggler] = field(default_factory=list)
    corrupt: list[CorruptUpdate] = field(default_factory=list)
    replay: list[ReplayUpdate] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.dropouts = [_as(DropoutFault, d) for d in self.dropouts]
        self.random_dropouts = [_as(RandomDropouts, d) for d in self.random_dropouts]
        self.stragglers = [_as(Straggler, d) for d in self.stragglers]
        self.corrupt = [_as(CorruptUpdate, d) for d in self.corrupt]
        self.replay = [_as(ReplayUpdate, d) for d in self.replay]

    @property
    def any(self) -> bool:
        """Whether any fault is configured."""
        return bool(
            self.dropouts or self.random_dropouts or self.stragglers or self.corrupt or self.replay
        )

    def check_institutions(self, names: Iterable[str]) -> None:
        """Check that every fault names an institution of the consortium.

        Raises
        ------
        ValueError
            Naming the fault group and the unknown institution.
        """
        known = sorted(names)
        named: list[tuple[str, str]] = [
            *(("dropouts", f.institution) for f in self.dropouts),
            *(("random_dropouts", n) for f in self.random_dropouts for n in f.institutions),
            *(("stragglers", f.institution) for f in self.stragglers),
            *(("corrupt", f.institution) for f in self.corrupt),
            *(("replay", f.institution) for f in self.replay),
        ]
        for group, name in named:
            if name not in known:
                key = "institutions" if group == "random_dropouts" else "institution"
                raise ValueError(f"`faults.{group}[].{key}` must be one of {known}; got {name!r}")

    def check_with_secagg(self) -> None:
        """Check the corruptions against secure aggregation's masked words.

        Raises
        ------
        ValueError
            If a corruption cannot exist in masked integer words (NaN, Inf, a norm).
        """
        for fault in self.corrupt:
            if fault.corruption not in (CorruptionKind.wrong_shape, CorruptionKind.wrong_dtype):
                raise ValueError(
                    "`faults.corrupt[].kind` must be wrong_shape or wrong_dtype with "
                    "secagg=secaggplus (masked integer words carry no NaN, Inf or norm); "
                    f"got {fault.kind}"
                )


def _check_target(group: str, institution: str, rounds: list[int]) -> None:
    if not institution:
        raise ValueError(f"`faults.{group}[].institution` must name an institution; got ''")
    if any(r < 1 for r in rounds):
        raise ValueError(f"`faults.{group}[].rounds` must be at least 1; got {rounds}")


def _targets(target: str, rounds: list[int], institution: str, server_round: int) -> bool:
    """Whether a fault aimed at ``target`` in ``rounds`` ([] = all) hits this round."""
    return institution == target and (not rounds or server_round in rounds)


def _as(kind: type[_T], value: _T | Mapping[str, object]) -> _T:
    return value if isinstance(value, kind) else kind(**value)  # type: ignore[arg-type]
