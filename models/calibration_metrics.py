"""Calibration of predicted probabilities: reliability curve and expected calibration error.

A probability of default is used as a number (in pricing, provisions and capital), not
only as a ranking, so a model must also be calibrated: among rows scored about 0.2, about
a fifth should default. Both functions bin the scores into equal-width bins on [0, 1] the
way ``sklearn.calibration.calibration_curve(strategy="uniform")`` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral

import numpy as np

from fedrisk.models.metrics import _checked


@dataclass(frozen=True)
class CalibrationCurve:
    """Per-bin reliability of probabilities, for the non-empty bins in ascending order.

    Attributes
    ----------
    mean_predicted : numpy.ndarray
        Mean predicted probability in each bin (float64).
    observed_rate : numpy.ndarray
        Share of positives in each bin (float64).
    count : numpy.ndarray
        Rows in each bin (int64, all positive).
    """

    mean_predicted: np.ndarray
    observed_rate: np.ndarray
    count: np.ndarray


def calibration_curve(
    y_true: np.ndarray, y_score: np.ndarray, *, bins: int = 10
) -> CalibrationCurve:
    """Return the reliability curve of probabilities over equal-width bins.

    Parameters
    ----------
    y_true : numpy.ndarray
        Labels in {0, 1}, shape ``(n,)``.
    y_score : numpy.ndarray
        Predicted probabilities, finite and in [0, 1], shape ``(n,)``.
    bins : int (default: 10)
        Number of equal-width bins on [0, 1], at least 1.

    Returns
    -------
    CalibrationCurve
        Mean predicted probability, observed positive rate and row count of every
        non-empty bin.

    Raises
    ------
    ValueError
        If the arrays are empty, not 1-D or of different lengths, if ``y_true`` holds a
        value other than 0 and 1, if ``y_score`` is not finite or leaves [0, 1], or if
        ``bins`` is not a positive integer.

    Notes
    -----
    Bin ``k`` holds the scores in ``(edge[k], edge[k + 1]]`` with
    ``edge = numpy.linspace(0, 1, bins + 1)``; the first bin also holds 0. This is the
    binning of ``sklearn.calibration.calibration_curve(strategy="uniform")``, whose
    ``prob_pred`` and ``prob_true`` equal ``mean_predicted`` and ``observed_rate``.
    """
    y, p = _checked(y_true, y_score, probabilities=True)
    return _calibration_curve(y, p, _checked_bins(bins))


def expected_calibration_error(y_true: np.ndarray, y_score: np.ndarray, *, bins: int = 10) -> float:
    """Return the expected calibration error (ECE) of probabilities.

    Parameters
    ----------
    y_true : numpy.ndarray
        Labels in {0, 1}, shape ``(n,)``.
    y_score : numpy.ndarray
        Predicted probabilities, finite and in [0, 1], shape ``(n,)``.
    bins : int (default: 10)
        Number of equal-width bins on [0, 1] (as in :func:`calibration_curve`), at least 1.

    Returns
    -------
    float
        ``Σ_k (n_k / n) · |mean score_k − positive rate_k|`` over the non-empty bins, in
        [0, 1]; 0 for perfectly calibrated bins.

    Raises
    ------
    ValueError
        As :func:`calibration_curve`.

    Notes
    -----
    Naeini, Cooper and Hauskrecht, "Obtaining Well Calibrated Probabilities Using
    Bayesian Binning", AAAI 2015. The value depends on ``bins``; compare models only at
    the same ``bins``.
    """
    y, p = _checked(y_true, y_score, probabilities=True)
    return _ece(_calibration_curve(y, p, _checked_bins(bins)))


def _calibration_curve(y: np.ndarray, p: np.ndarray, bins: int) -> CalibrationCurve:
    """Reliability curve of checked bool labels ``y`` and probabilities ``p``."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    bin_of = np.searchsorted(edges[1:-1], p)  # side="left", as scikit-learn
    count = np.bincount(bin_of, minlength=bins)
    score_sum = np.bincount(bin_of, weights=p, minlength=bins)
    positives = np.bincount(bin_of, weights=y, minlength=bins)
    filled = count > 0
    return CalibrationCurve(
        mean_predicted=score_sum[filled] / count[filled],
        observed_rate=positives[filled] / count[filled],
        count=count[filled].astype(np.int64),
    )


def _ece(curve: CalibrationCurve) -> float:
    gaps = np.abs(curve.mean_predicted - curve.observed_rate)
    return float(np.sum(curve.count * gaps) / np.sum(curve.count))


def _checked_bins(bins: object) -> int:
    if isinstance(bins, bool) or not isinstance(bins, Integral) or bins < 1:
        raise ValueError(f"`bins` must be a positive integer; got {bins!r}")
    return int(bins)
