"""Privacy budgets and the gate that keeps an institution within its own.

The gate is validate-then-commit: before any local training it projects the cumulative
ε of everything spent so far *plus* the planned round, and allows the round only if the
projection stays within the budget. Nothing is recorded here; the caller commits the
round to the ledger only after the update has actually been released.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from fedrisk.privacy.accountant import AccountantKind, epsilon_spent
from fedrisk.privacy.mechanism import PoissonGaussian


class PrivacyConfigError(ValueError):
    """A privacy setting is unsafe for the data it would protect."""


@dataclass(frozen=True)
class Budget:
    """An institution's record-level (ε, δ) budget on one dataset, across all runs.

    Parameters
    ----------
    epsilon : float
        Largest cumulative ε the institution may spend; positive and finite.
    delta : float
        The δ at which ε is accounted; in (0, 1).

    Raises
    ------
    ValueError
        If a value is outside its range.
    """

    epsilon: float
    delta: float

    def __post_init__(self) -> None:
        if not (_is_real(self.epsilon) and math.isfinite(self.epsilon) and self.epsilon > 0):
            raise ValueError(f"`epsilon` must be positive and finite; got {self.epsilon!r}")
        if not (_is_real(self.delta) and 0.0 < self.delta < 1.0):
            raise ValueError(f"`delta` must be in (0, 1); got {self.delta!r}")


def check_delta(delta: float, *, n_records: int, institution: str) -> None:
    """Refuse a δ larger than 1/n for an institution with ``n_records`` records.

    A δ of 1/n or more admits mechanisms that publish a whole record outright with
    probability δ; (ε, δ)-DP is only meaningful for δ well below 1/n.

    Parameters
    ----------
    delta : float
        The institution's δ.
    n_records : int
        Number of records the mechanism protects (the training rows); at least 1.
    institution : str
        The institution's name, for the message.

    Raises
    ------
    ValueError
        If ``n_records`` is not a positive integer.
    PrivacyConfigError
        If ``delta`` is not in (0, 1) or exceeds ``1 / n_records``.
    """
    if isinstance(n_records, bool) or not isinstance(n_records, int) or n_records < 1:
        raise ValueError(f"`n_records` must be a positive integer; got {n_records!r}")
    if not (_is_real(delta) and 0.0 < delta < 1.0):
        raise PrivacyConfigError(f"`delta` must be in (0, 1); got {delta!r}")
    bound = 1.0 / n_records
    if delta > bound:
        raise PrivacyConfigError(
            f"δ={delta:g} exceeds 1/n={bound:.3g} for institution {institution} with "
            f"{n_records} records; choose δ ≤ {bound:.3g} (well below, e.g. {bound / 10:.1g})"
        )


class PrivacyBudgetExceeded(Exception):
    """A round would take an institution's cumulative ε over its budget.

    Parameters
    ----------
    institution : str
        Who would overspend.
    spent : float
        Cumulative ε before the round.
    projected : float
        Cumulative ε if the round ran.
    budget : Budget
        The institution's budget.

    Attributes
    ----------
    institution, spent, projected, budget
        As given.
    cost : float
        ``projected - spent``: what the round would add.
    """

    def __init__(self, *, institution: str, spent: float, projected: float, budget: Budget):
        self.institution = institution
        self.spent = spent
        self.projected = projected
        self.cost = projected - spent
        self.budget = budget
        digits = _digits_to_tell_apart(projected, budget.epsilon)
        super().__init__(
            f"{institution}: this round would take ε from {spent:.{digits}f} to "
            f"{projected:.{digits}f}, over its budget {budget.epsilon:.{digits}f}"
        )


@dataclass(frozen=True)
class BudgetDecision:
    """The gate's verdict on one planned round.

    Parameters
    ----------
    allowed : bool
        Whether the round may run: ``projected <= budget.epsilon``.
    spent : float
        Cumulative ε before the round.
    projected : float
        Cumulative ε if the round runs.
    budget : Budget
        The budget the round was checked against.

    Raises
    ------
    ValueError
        If ε values are negative or not finite, or ``allowed`` contradicts them.
    """

    allowed: bool
    spent: float
    projected: float
    budget: Budget

    def __post_init__(self) -> None:
        for name in ("spent", "projected"):
            value = getattr(self, name)
            if not (_is_real(value) and math.isfinite(value) and value >= 0):
                raise ValueError(f"`{name}` must be non-negative and finite; got {value!r}")
        if self.allowed != (self.projected <= self.budget.epsilon):
            raise ValueError(
                f"`allowed` must be projected ≤ budget ({self.projected} ≤ "
                f"{self.budget.epsilon}); got {self.allowed}"
            )

    @property
    def cost(self) -> float:
        """ε the round adds: ``projected - spent``."""
        return self.projected - self.spent


def gate_round(
    history: Sequence[PoissonGaussian],
    planned: PoissonGaussian,
    *,
    budget: Budget,
    accountant: AccountantKind,
    institution: str,
) -> BudgetDecision:
    """Decide, before training, whether a planned round fits the institution's budget.

    Parameters
    ----------
    history : Sequence[PoissonGaussian]
        Everything already spent on the dataset (the ledger's mechanisms).
    planned : PoissonGaussian
        The round about to run.
    budget : Budget
        The institution's budget; ε is accounted at ``budget.delta``.
    accountant : AccountantKind
        The accountant ε is measured with (`epsilon_spent`).
    institution : str
        The institution's name (for `require_within_budget`'s message; kept in the
        signature so both gates read alike).

    Returns
    -------
    BudgetDecision
        ``allowed`` iff ε(history + planned) ≤ ``budget.epsilon``. Equality is allowed:
        the budget is the most the institution may spend, and calibration aims at it.

    Raises
    ------
    ValueError
        If ``accountant`` is unknown.
    TypeError
        If an element of ``history`` or ``planned`` is not a `PoissonGaussian`.
    """
    del institution  # the decision does not depend on who asks
    spent = epsilon_spent(history, delta=budget.delta, accountant=accountant)
    projected = epsilon_spent([*history, planned], delta=budget.delta, accountant=accountant)
    return BudgetDecision(
        allowed=projected <= budget.epsilon, spent=spent, projected=projected, budget=budget
    )


def require_within_budget(
    history: Sequence[PoissonGaussian],
    planned: PoissonGaussian,
    *,
    budget: Budget,
    accountant: AccountantKind,
    institution: str,
) -> BudgetDecision:
    """Like `gate_round`, but raise instead of returning a refusal.

    Returns
    -------
    BudgetDecision
        The (allowed) decision.

    Raises
    ------
    PrivacyBudgetExceeded
        If the round would take cumulative ε over ``budget.epsilon``.
    ValueError
        If ``accountant`` is unknown.
    TypeError
        If an element of ``history`` or ``planned`` is not a `PoissonGaussian`.
    """
    decision = gate_round(
        history, planned, budget=budget, accountant=accountant, institution=institution
    )
    if not decision.allowed:
        raise PrivacyBudgetExceeded(
            institution=institution,
            spent=decision.spent,
            projected=decision.projected,
            budget=budget,
        )
    return decision


def _is_real(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _digits_to_tell_apart(projected: float, budget: float) -> int:
    """Fewest decimals (at least 2) at which ``projected`` and ``budget`` print differently."""
    for digits in range(2, 10):
        if f"{projected:.{digits}f}" != f"{budget:.{digits}f}":
            return digits
    return 10
