"""Schema of the ``secagg`` config group."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class SecAggMode(str, Enum):
    """How institutions' updates reach the coordinator."""

    none = "none"


@dataclass
class SecAggConfig:
    """Schema of ``secagg/*.yaml``.

    Parameters
    ----------
    mode : SecAggMode (default: none)
        ``none``: updates are sent in the clear to the coordinator.
    """

    mode: SecAggMode = field(default=SecAggMode.none, metadata={"help": "secure aggregation"})

    def __post_init__(self) -> None:
        self.mode = SecAggMode(self.mode)
