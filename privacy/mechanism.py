"""The mechanism an institution's local training releases, as recorded in the ledger.

A round of DP-SGD with Poisson sampling is ``steps`` compositions of the sampled
Gaussian mechanism with sampling rate ``sample_rate`` and noise multiplier
``noise_multiplier`` (noise std = noise_multiplier × max_grad_norm), under the
add/remove-one-record neighbouring relation that Poisson-subsampling analyses assume.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

MECHANISM_TYPE = "poisson_gaussian"
NEIGHBOURING = "add_remove_one"


@dataclass(frozen=True)
class PoissonGaussian:
    """One round's DP-SGD release at one institution.

    Parameters
    ----------
    noise_multiplier : float
        Gaussian noise std divided by the clipping norm; positive.
    sample_rate : float
        Poisson sampling probability of each record per step, in (0, 1].
    steps : int
        Noisy optimiser steps taken in the round; at least 1.
    max_grad_norm : float
        Per-sample gradient clipping norm; positive.

    Raises
    ------
    ValueError
        If a value is outside its range.
    """

    noise_multiplier: float
    sample_rate: float
    steps: int
    max_grad_norm: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.noise_multiplier) and self.noise_multiplier > 0):
            raise ValueError(f"`noise_multiplier` must be positive; got {self.noise_multiplier}")
        if not 0.0 < self.sample_rate <= 1.0:
            raise ValueError(f"`sample_rate` must be in (0, 1]; got {self.sample_rate}")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"`steps` must be a positive integer; got {self.steps!r}")
        if not (math.isfinite(self.max_grad_norm) and self.max_grad_norm > 0):
            raise ValueError(f"`max_grad_norm` must be positive; got {self.max_grad_norm}")

    def to_record(self) -> dict[str, object]:
        """Encode as the ledger's ``mechanism`` field (a published contract)."""
        return {
            "type": MECHANISM_TYPE,
            "noise_multiplier": self.noise_multiplier,
            "sample_rate": self.sample_rate,
            "steps": self.steps,
            "max_grad_norm": self.max_grad_norm,
            "neighbouring": NEIGHBOURING,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, object]) -> PoissonGaussian:
        """Decode a ledger ``mechanism`` field.

        Raises
        ------
        ValueError
            If the type or neighbouring relation is not the one fedrisk accounts
            for, a field is missing, or a value is out of range.
        """
        if record.get("type") != MECHANISM_TYPE:
            raise ValueError(
                f"`mechanism.type` must be {MECHANISM_TYPE!r}; got {record.get('type')!r}"
            )
        if record.get("neighbouring") != NEIGHBOURING:
            raise ValueError(
                f"`mechanism.neighbouring` must be {NEIGHBOURING!r}; "
                f"got {record.get('neighbouring')!r}"
            )
        missing = [
            k
            for k in ("noise_multiplier", "sample_rate", "steps", "max_grad_norm")
            if k not in record
        ]
        if missing:
            raise ValueError(f"`mechanism` must have {missing}; got keys {sorted(record)}")
        steps = record["steps"]
        if isinstance(steps, float) and steps.is_integer():
            steps = int(steps)
        return cls(
            noise_multiplier=float(record["noise_multiplier"]),  # type: ignore[arg-type]
            sample_rate=float(record["sample_rate"]),  # type: ignore[arg-type]
            steps=steps,  # type: ignore[arg-type]
            max_grad_norm=float(record["max_grad_norm"]),  # type: ignore[arg-type]
        )
