"""Recomputing every ledger entry's ε from its mechanism entries alone.

The claimed ``epsilon`` of an entry is never an input: the history of mechanisms up to
and including the entry is composed again, once with the library and accountant the
entry names (Opacus, `epsilon_spent`) and once with Google's ``dp_accounting``
(`independent_epsilon`: RDP for ``rdp`` entries, PLD for ``prv`` entries).

Notes
-----
What is recomputed where (composition is monotone, so the ε of a prefix of the history
never exceeds the ε of the whole of it):

* ``rdp`` entries: Opacus RDP and dp_accounting RDP at **every** entry (a few ms each;
  `epsilon_spent` merges identical mechanisms first).
* ``prv`` entries: Opacus PRV and dp_accounting PLD (≈0.4 s per distinct mechanism per
  call) only at the **last entry of each run** and at the final entry (`checkpoints`).
  The entries between are covered by the reader's rule that ε never decreases and by
  the recomputation at the run's last entry.

Tolerances: the same library must reproduce the claimed ε to `SAME_LIBRARY_RTOL`
(1e-9 relative). dp_accounting must agree within `INDEPENDENT_RTOL` (1 %) relative or
`INDEPENDENT_ATOL` (0.011) absolute: Opacus's PRV returns the upper end of its error
interval (estimate + ``eps_error`` = 0.01), so it sits ≈0.01 above PLD, which matters
below ε ≈ 1. Below ε ≈ 0.2 Opacus RDP (orders stop at 63) reports more than
dp_accounting RDP, up to several times; there a claimed ε *above* the independent one is
accepted as conservative if it is at most `LOW_EPSILON_CEILING` (`LOW_EPSILON`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from fedrisk.privacy.accountant import (
    AccountantKind,
    IndependentMethod,
    epsilon_spent,
    independent_epsilon,
)
from fedrisk.privacy.ledger import LedgerEntry
from fedrisk.privacy.mechanism import PoissonGaussian

SAME_LIBRARY_RTOL = 1e-9
INDEPENDENT_RTOL = 0.01
INDEPENDENT_ATOL = 0.011
LOW_EPSILON = 0.2
LOW_EPSILON_CEILING = 1.0

#: The independent method that checks each Opacus accountant.
INDEPENDENT_OF: dict[AccountantKind, IndependentMethod] = {
    AccountantKind.rdp: IndependentMethod.rdp,
    AccountantKind.prv: IndependentMethod.pld,
}


@dataclass
class Recomputation:
    """ε recomputed for one ledger, keyed by entry ``seq``.

    Attributes
    ----------
    same_library : dict[int, float]
        Opacus ε with the entry's accountant, where recomputed.
    independent : dict[int, float]
        dp_accounting ε (RDP or PLD), where recomputed.
    same_library_failures, independent_failures : list[str]
        One sentence per entry that disagrees, in ledger order.
    """

    same_library: dict[int, float] = field(default_factory=dict)
    independent: dict[int, float] = field(default_factory=dict)
    same_library_failures: list[str] = field(default_factory=list)
    independent_failures: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class EpsilonPoint:
    """One ledger entry's ε: as claimed, and as recomputed where it was.

    Attributes
    ----------
    seq : int
        The entry's sequence number.
    run_id : str
        The run that wrote the entry.
    round : int
        The round of that run.
    claimed : float
        The ε the entry claims (untrusted).
    recomputed : float | None
        Opacus ε from the mechanisms, or ``None`` where not recomputed (module Notes).
    independent : float | None
        dp_accounting ε, or ``None`` where not recomputed.
    """

    seq: int
    run_id: str
    round: int
    claimed: float
    recomputed: float | None
    independent: float | None


def epsilon_curve(entries: Sequence[LedgerEntry], again: Recomputation) -> list[EpsilonPoint]:
    """Return one `EpsilonPoint` per entry, in ledger order, from `recompute`'s result."""
    return [
        EpsilonPoint(
            seq=entry.seq,
            run_id=entry.run_id,
            round=entry.round,
            claimed=entry.epsilon,
            recomputed=again.same_library.get(entry.seq),
            independent=again.independent.get(entry.seq),
        )
        for entry in entries
    ]


def checkpoints(entries: Sequence[LedgerEntry]) -> set[int]:
    """Return the indices of the last entry of each run and of the final entry."""
    last: dict[str, int] = {}
    for index, entry in enumerate(entries):
        last[entry.run_id] = index
    return set(last.values()) | ({len(entries) - 1} if entries else set())


def recompute(entries: Sequence[LedgerEntry]) -> Recomputation:
    """Recompute ε at the entries of one verified ledger (see module Notes for where).

    Parameters
    ----------
    entries : Sequence[LedgerEntry]
        The ledger's entries, as `read_ledger` returned them.

    Returns
    -------
    Recomputation
        The recomputed values and every disagreement with the claimed ε.
    """
    result = Recomputation()
    marks = checkpoints(entries)
    history: list[PoissonGaussian] = []
    for index, entry in enumerate(entries):
        history.append(entry.mechanism_obj)
        kind = AccountantKind(entry.accountant)
        if kind is AccountantKind.prv and index not in marks:
            continue
        where = f"entry {entry.seq} (run {entry.run_id}, round {entry.round})"
        try:
            same = epsilon_spent(history, delta=entry.delta, accountant=kind)
            method = INDEPENDENT_OF[kind]
            other = independent_epsilon(history, delta=entry.delta, method=method)
        except (ValueError, ArithmeticError) as exc:
            result.same_library_failures.append(f"{where}: ε cannot be recomputed ({exc})")
            continue
        result.same_library[entry.seq] = same
        result.independent[entry.seq] = other
        if not math.isclose(entry.epsilon, same, rel_tol=SAME_LIBRARY_RTOL, abs_tol=1e-12):
            result.same_library_failures.append(
                f"{where}: claimed ε {entry.epsilon!r} but the mechanisms give "
                f"{same!r} (opacus {kind.value})"
            )
        if not independent_agrees(entry.epsilon, other, method):
            result.independent_failures.append(
                f"{where}: claimed ε {entry.epsilon!r} but dp_accounting {method.value} "
                f"gives {other!r}"
            )
    return result


def independent_agrees(claimed: float, independent: float, method: IndependentMethod) -> bool:
    """Whether a claimed ε agrees with dp_accounting's (tolerances in module Notes)."""
    if abs(claimed - independent) <= INDEPENDENT_ATOL:
        return True
    if abs(claimed - independent) <= INDEPENDENT_RTOL * abs(independent):
        return True
    low = method is IndependentMethod.rdp and independent < LOW_EPSILON
    return low and independent <= claimed <= LOW_EPSILON_CEILING
