"""Empirical lower bounds on ε from one training run with randomly included canaries.

The pure statistics of the one-run audit of Steinke, Nasr and Jagielski ("Privacy
Auditing with One (1) Training Run", NeurIPS 2023): given which canaries were trained
on and the attacker's membership scores, how large must ε be for the attacker to do
this well? Nothing here trains or loads a model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = [
    "DEFAULT_GUESS_GRID",
    "OneRunAudit",
    "audit_scores",
    "correct_guesses",
    "one_run_epsilon_lower_bound",
    "one_run_p_value",
]

#: Guess counts ``(k_in, k_out)`` tried by :func:`audit_scores`, as fractions of the
#: canaries: the top ``k_in`` scores are guessed "in", the bottom ``k_out`` "out".
#: Fixed before any run; the significance level is split across them (Bonferroni).
DEFAULT_GUESS_GRID: tuple[tuple[float, float], ...] = (
    (0.05, 0.0),
    (0.1, 0.0),
    (0.0, 0.05),
    (0.0, 0.1),
    (0.0, 0.2),
    (0.05, 0.05),
    (0.1, 0.1),
    (0.25, 0.25),
)

_EPSILON_CEILING = 100.0
_BISECTIONS = 80


@dataclass(frozen=True)
class OneRunAudit:
    """The outcome of a one-run audit at its best guess count.

    Attributes
    ----------
    m : int
        Canaries, each included independently with probability 1/2.
    k_in, k_out : int
        Canaries guessed "in" (highest scores) and "out" (lowest scores).
    correct : int
        Correct guesses among the ``k_in + k_out``.
    beta : float
        Overall significance: the bound is wrong with probability at most ``beta``.
    delta : float
        δ of the null hypothesis (ε, δ)-DP.
    tests : int
        Guess counts tried; each was tested at level ``beta / tests``.
    epsilon : float
        The largest ε rejected at that level: the run is not (ε, δ)-DP for any
        smaller ε, with confidence ``1 - beta``.
    """

    m: int
    k_in: int
    k_out: int
    correct: int
    beta: float
    delta: float
    tests: int
    epsilon: float

    @property
    def guesses(self) -> int:
        """Number of guesses made (abstentions excluded)."""
        return self.k_in + self.k_out


def one_run_p_value(*, m: int, guesses: int, correct: int, epsilon: float, delta: float) -> float:
    """Probability of at least ``correct`` right guesses if the run were (ε, δ)-DP.

    Parameters
    ----------
    m : int
        Canaries, each included independently with probability 1/2.
    guesses : int
        Guesses made, ``0 <= guesses <= m``.
    correct : int
        Correct guesses, ``0 <= correct <= guesses``.
    epsilon : float
        ε of the null hypothesis, ``>= 0``.
    delta : float
        δ of the null hypothesis, in ``[0, 1]``.

    Returns
    -------
    float
        An upper bound on the p-value, in ``[0, 1]``.

    Raises
    ------
    ValueError
        If a count or parameter is outside its range.

    Notes
    -----
    Under ε-DP each guess is right with probability at most ``q = e^ε / (1 + e^ε)``
    given all others, so the number right is stochastically dominated by
    ``Binomial(guesses, q)`` (Steinke, Nasr and Jagielski 2023, Theorem 3.1). With
    δ > 0 their Theorem 5.2 adds ``2 m δ max_{1<=i<=v} P[v - i <= Binomial < v] / i``
    for ``v = correct``.
    """
    _check_counts(m=m, guesses=guesses, correct=correct)
    if not (math.isfinite(epsilon) and epsilon >= 0):
        raise ValueError(f"`epsilon` must be a finite number >= 0; got {epsilon}")
    _check_delta(delta)
    q = 1.0 / (1.0 + math.exp(-epsilon))
    tail = float(stats.binom.sf(correct - 1, guesses, q))
    if delta > 0 and correct > 0:
        below = stats.binom.pmf(np.arange(correct - 1, -1, -1), guesses, q)
        windows = np.cumsum(below) / np.arange(1, correct + 1)
        tail += 2.0 * m * delta * float(windows.max())
    return min(tail, 1.0)


def one_run_epsilon_lower_bound(
    *, m: int, guesses: int, correct: int, beta: float = 0.05, delta: float = 0.0
) -> float:
    """Largest ε that ``correct`` right guesses out of ``guesses`` rule out at level β.

    Parameters
    ----------
    m : int
        Canaries, each included independently with probability 1/2.
    guesses : int
        Guesses made, ``0 <= guesses <= m``.
    correct : int
        Correct guesses, ``0 <= correct <= guesses``.
    beta : float (default: 0.05)
        Significance level in ``(0, 1)``.
    delta : float (default: 0.0)
        δ of the null hypothesis, in ``[0, 1]``.

    Returns
    -------
    float
        ε such that the run is not (ε', δ)-DP for any ε' below it, with confidence
        ``1 - beta``; 0.0 when nothing can be rejected. Accurate to about 1e-12.

    Raises
    ------
    ValueError
        If a count or parameter is outside its range.
    """
    _check_counts(m=m, guesses=guesses, correct=correct)
    _check_beta(beta)
    _check_delta(delta)

    def rejected(eps: float) -> bool:
        p = one_run_p_value(m=m, guesses=guesses, correct=correct, epsilon=eps, delta=delta)
        return p <= beta

    if not rejected(0.0):
        return 0.0
    low, high = 0.0, 1.0
    while rejected(high):
        low, high = high, 2.0 * high
        if high > _EPSILON_CEILING:
            return _EPSILON_CEILING
    for _ in range(_BISECTIONS):
        middle = 0.5 * (low + high)
        if rejected(middle):
            low = middle
        else:
            high = middle
    return low


def correct_guesses(scores: np.ndarray, included: np.ndarray, *, k_in: int, k_out: int) -> int:
    """Count right guesses when the top ``k_in`` are called "in", the bottom ``k_out`` "out".

    Parameters
    ----------
    scores : numpy.ndarray
        Membership score per canary; higher means "more likely trained on".
    included : numpy.ndarray
        Boolean per canary: whether it was in the training data.
    k_in, k_out : int
        Guesses of each kind, ``k_in + k_out <= len(scores)``.

    Returns
    -------
    int
        Number of right guesses. Ties are broken by position (a stable sort), which is
        independent of membership.

    Raises
    ------
    ValueError
        If the arrays differ in length, are not 1-D, the scores are not finite, or the
        guess counts do not fit.
    """
    score, member = _check_scores(scores, included)
    if k_in < 0 or k_out < 0 or k_in + k_out > score.size:
        raise ValueError(
            f"`k_in` and `k_out` must be >= 0 with sum <= {score.size}; got {k_in} and {k_out}"
        )
    order = np.argsort(-score, kind="stable")
    right_in = int(member[order[:k_in]].sum())
    right_out = int((~member[order[score.size - k_out :]]).sum()) if k_out else 0
    return right_in + right_out


def audit_scores(
    scores: np.ndarray,
    included: np.ndarray,
    *,
    beta: float = 0.05,
    delta: float = 0.0,
    grid: Sequence[tuple[float, float]] = DEFAULT_GUESS_GRID,
) -> OneRunAudit:
    """Best one-run lower bound on ε over a fixed grid of guess counts.

    Parameters
    ----------
    scores : numpy.ndarray
        Membership score per canary; higher means "more likely trained on".
    included : numpy.ndarray
        Boolean per canary: whether it was in the training data (drawn independently
        with probability 1/2 before training).
    beta : float (default: 0.05)
        Overall significance level in ``(0, 1)``.
    delta : float (default: 0.0)
        δ of the null hypothesis, in ``[0, 1]``.
    grid : Sequence[tuple[float, float]] (default: DEFAULT_GUESS_GRID)
        ``(k_in, k_out)`` as fractions of the canaries, fixed before looking at scores.

    Returns
    -------
    OneRunAudit
        The grid point with the largest bound, each point tested at ``beta / len(grid)``.

    Raises
    ------
    ValueError
        If the inputs are inconsistent, or the grid is empty or holds fractions outside
        ``[0, 1]`` or pairs summing above 1.

    Notes
    -----
    Trying several guess counts and keeping the best is a multiple test. Splitting β
    evenly over the grid (a union bound) keeps the reported ε a valid lower bound with
    confidence ``1 - beta`` overall; the price is a slightly smaller bound than a single
    count chosen in advance would give if it happened to be the best one.
    """
    score, member = _check_scores(scores, included)
    _check_beta(beta)
    _check_delta(delta)
    if not grid:
        raise ValueError("`grid` must hold at least one (k_in, k_out) pair; got none")
    for pair in grid:
        if len(pair) != 2 or min(pair) < 0 or sum(pair) > 1:
            raise ValueError(f"`grid` pairs must be two fractions >= 0 summing to <= 1; got {pair}")
    m, level = score.size, beta / len(grid)
    best: OneRunAudit | None = None
    for frac_in, frac_out in grid:
        k_in, k_out = round(frac_in * m), round(frac_out * m)
        if k_in + k_out == 0:
            continue
        right = correct_guesses(score, member, k_in=k_in, k_out=k_out)
        eps = one_run_epsilon_lower_bound(
            m=m, guesses=k_in + k_out, correct=right, beta=level, delta=delta
        )
        if best is None or eps > best.epsilon:
            best = OneRunAudit(m, k_in, k_out, right, beta, delta, len(grid), eps)
    if best is None:
        raise ValueError(f"`grid` must give at least one guess for {m} canaries; got {grid}")
    return best


def _check_counts(*, m: int, guesses: int, correct: int) -> None:
    for name, value in (("m", m), ("guesses", guesses), ("correct", correct)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise ValueError(f"`{name}` must be an integer; got {value!r}")
    if not 0 <= correct <= guesses <= m:
        raise ValueError(
            "`correct`, `guesses` and `m` must satisfy 0 <= correct <= guesses <= m; "
            f"got {correct}, {guesses} and {m}"
        )


def _check_beta(beta: float) -> None:
    if not 0.0 < beta < 1.0:
        raise ValueError(f"`beta` must be in (0, 1); got {beta}")


def _check_delta(delta: float) -> None:
    if not 0.0 <= delta <= 1.0:
        raise ValueError(f"`delta` must be in [0, 1]; got {delta}")


def _check_scores(scores: np.ndarray, included: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    score = np.asarray(scores, dtype=np.float64)
    member = np.asarray(included)
    if score.ndim != 1 or score.size == 0:
        raise ValueError(f"`scores` must be a non-empty 1-D array; got shape {score.shape}")
    if member.shape != score.shape:
        raise ValueError(
            f"`included` must have the shape of `scores` {score.shape}; got {member.shape}"
        )
    if member.dtype != np.bool_:
        if not np.isin(member, (0, 1)).all():
            raise ValueError("`included` must hold booleans (or 0 and 1); got other values")
        member = member.astype(bool)
    if not np.isfinite(score).all():
        raise ValueError("`scores` must be finite; got NaN or infinity")
    return score, member
