"""Schema of the ``privacy`` config group."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class PrivacyMode(str, Enum):
    """Which differential-privacy mechanism protects the run."""

    none = "none"


@dataclass
class PrivacyConfig:
    """Schema of ``privacy/*.yaml``.

    Parameters
    ----------
    mode : PrivacyMode (default: none)
        ``none``: no differential privacy (record-level DP-SGD is ``privacy=dpsgd``).
    """

    mode: PrivacyMode = field(default=PrivacyMode.none, metadata={"help": "DP mechanism"})

    def __post_init__(self) -> None:
        self.mode = PrivacyMode(self.mode)
