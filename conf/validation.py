"""Schema of the ``validation`` settings: what the coordinator checks in every reply.

Shapes, dtypes, finite values and the run/round binding are always checked (see
:mod:`fedrisk.server.update_validation`). A norm bound is checked only where the run
makes one knowable: under ``privacy=central`` with clipping at the institution it is
the clipping norm; otherwise nothing bounds an honest update (DP-SGD clips per-sample
gradients, not the update), so a bound is the operator's explicit choice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class ValidationConfig:
    """Server-side checks of the institutions' updates.

    Parameters
    ----------
    max_update_norm : float | None (default: None)
        Reject an update whose L2 distance from the global model exceeds this (an
        operator's sanity bound, on top of any clipping bound the run implies).
    """

    max_update_norm: float | None = field(
        default=None, metadata={"help": "reject updates farther than this from the model"}
    )

    def __post_init__(self) -> None:
        bound = self.max_update_norm
        if bound is not None and not (math.isfinite(bound) and bound > 0):
            raise ValueError(
                f"`validation.max_update_norm` must be positive and finite; got {bound}"
            )
