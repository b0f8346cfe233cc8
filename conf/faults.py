"""Schema of the ``faults`` settings: failures injected into simulated institutions.

Simulation only: a deployment ignores them. Each injected dropout makes the named
institution's node fail (an error reply, as if it crashed) at one stage of chosen rounds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class FaultStage(str, Enum):
    """Where an injected dropout strikes."""

    train = "train"  # before replying to the training instruction (before masking)
    consistency = "consistency"  # at the secure-aggregation consistency round
    unmask = "unmask"  # at the secure-aggregation unmask round
    evaluate = "evaluate"  # at federated evaluation


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
        if not self.institution:
            raise ValueError("`faults.dropouts[].institution` must name an institution; got ''")
        if any(r < 1 for r in self.rounds):
            raise ValueError(f"`faults.dropouts[].rounds` must be at least 1; got {self.rounds}")

    def strikes(self, institution: str, stage: FaultStage, server_round: int) -> bool:
        """Whether this fault makes ``institution`` drop at ``stage`` of ``server_round``."""
        return (
            institution == self.institution
            and stage is self.stage
            and (not self.rounds or server_round in self.rounds)
        )


@dataclass
class FaultsConfig:
    """Injected failures (simulation only).

    Parameters
    ----------
    dropouts : list[DropoutFault] (default: [])
        Institutions that drop out, and when.
    """

    dropouts: list[DropoutFault] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.dropouts = [
            d if isinstance(d, DropoutFault) else DropoutFault(**d) for d in self.dropouts
        ]
