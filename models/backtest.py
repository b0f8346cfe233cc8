"""Backtesting of risk forecasts: Kupiec's proportion-of-failures test and the hit rate.

A Value-at-Risk model at coverage ``c`` promises that losses exceed the VaR on a share
``1 − c`` of days. Kupiec's test asks whether the observed number of exceptions is
consistent with that promise; the Basel traffic-light framework backtests 250 days of a
99 % VaR this way. The hit rate asks the complementary question of an alerting model:
what share of the actual events did it flag?
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
from scipy.stats import chi2

from fedrisk.models.metrics import _labels


@dataclass(frozen=True)
class KupiecResult:
    """The outcome of :func:`kupiec_pof`.

    Attributes
    ----------
    lr : float
        The likelihood-ratio statistic, non-negative.
    p_value : float
        ``P(χ²₁ ≥ lr)``.
    expected_exceptions : float
        ``n · (1 − coverage)``.
    reject : bool
        Whether ``p_value < significance``: the exception count is inconsistent with the
        stated coverage.
    """

    lr: float
    p_value: float
    expected_exceptions: float
    reject: bool


def kupiec_pof(
    exceptions: int, n: int, *, coverage: float, significance: float = 0.05
) -> KupiecResult:
    """Test whether ``exceptions`` in ``n`` observations match a VaR's ``coverage``.

    Parameters
    ----------
    exceptions : int
        Observations whose loss exceeded the VaR, in ``[0, n]``.
    n : int
        Observations backtested, at least 1.
    coverage : float
        The VaR's confidence level, strictly between 0 and 1 (e.g. 0.99).
    significance : float (default: 0.05)
        Size of the test, strictly between 0 and 1.

    Returns
    -------
    KupiecResult
        The LR statistic, its p-value, the expected number of exceptions and the verdict.

    Raises
    ------
    ValueError
        If ``n`` is not a positive integer, ``exceptions`` not an integer in ``[0, n]``,
        or ``coverage`` or ``significance`` not strictly between 0 and 1.

    Notes
    -----
    Kupiec, "Techniques for Verifying the Accuracy of Risk Measurement Models", Journal of
    Derivatives 3(2), 1995. With ``p = 1 − coverage`` and ``x`` exceptions::

        LR = −2 ln[(1 − p)^(n−x) p^x] + 2 ln[(1 − x/n)^(n−x) (x/n)^x]

    which is asymptotically χ² with 1 degree of freedom under the null. The convention
    ``0 · ln 0 = 0`` makes it finite at ``x = 0`` (``LR = −2 n ln(1 − p)``) and at
    ``x = n`` (``LR = −2 n ln p``).
    """
    if isinstance(n, bool) or not isinstance(n, Integral) or n < 1:
        raise ValueError(f"`n` must be a positive integer; got {n!r}")
    if isinstance(exceptions, bool) or not isinstance(exceptions, Integral):
        raise ValueError(f"`exceptions` must be an integer; got {exceptions!r}")
    if not 0 <= exceptions <= n:
        raise ValueError(f"`exceptions` must be in [0, n={n}]; got {exceptions}")
    _check_open_unit("coverage", coverage)
    _check_open_unit("significance", significance)
    x, total, c = int(exceptions), int(n), float(coverage)
    null = _xlog(total - x, c) + _xlog(x, 1.0 - c)
    fitted = _xlog(total - x, (total - x) / total) + _xlog(x, x / total)
    lr = max(0.0, 2.0 * (fitted - null))  # rounding can dip below 0 when x / n = 1 − c
    p_value = float(chi2.sf(lr, df=1))
    return KupiecResult(
        lr=lr, p_value=p_value, expected_exceptions=total * (1.0 - c), reject=p_value < significance
    )


def hit_rate(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Return the share of actual events that were flagged: ``TP / (TP + FN)``.

    Parameters
    ----------
    y_true : numpy.ndarray
        Whether each event happened, in {0, 1}, shape ``(n,)``, with at least one event.
    y_pred : numpy.ndarray
        Whether each was flagged, in {0, 1}, shape ``(n,)``.

    Returns
    -------
    float
        In [0, 1].

    Raises
    ------
    ValueError
        If an array is empty, not 1-D or holds a value other than 0 and 1, if the lengths
        differ, or if ``y_true`` holds no event.
    """
    y = _labels(y_true, name="y_true")
    pred = _labels(y_pred, name="y_pred")
    if pred.shape != y.shape:
        raise ValueError(f"`y_pred` must have the shape of `y_true` {y.shape}; got {pred.shape}")
    events = int(np.count_nonzero(y))
    if events == 0:
        raise ValueError("`y_true` must hold at least one event for the hit rate; got none")
    return int(np.count_nonzero(y & pred)) / events


def _xlog(count: int, prob: float) -> float:
    """``count · ln(prob)`` with the convention ``0 · ln 0 = 0``."""
    return 0.0 if count == 0 else count * math.log(prob)


def _check_open_unit(name: str, value: float) -> None:
    if not (isinstance(value, Real) and 0.0 < value < 1.0):
        raise ValueError(f"`{name}` must be a number strictly between 0 and 1; got {value!r}")
