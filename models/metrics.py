"""Risk metrics shared by every task: discrimination, calibration and classification.

Credit-risk practice reads a scorecard by its ROC-AUC (or Gini = 2·AUC − 1), its
Kolmogorov–Smirnov statistic, and the calibration of its probabilities (Brier score, log
loss); fraud teams add the precision–recall AUC because positives are rare. All of them
come from one call, :func:`risk_metrics`, so every task reports the same keys.
"""

from __future__ import annotations

import math
from numbers import Real

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

#: Probabilities are clipped to ``[LOG_LOSS_EPS, 1 - LOG_LOSS_EPS]`` before the log loss.
LOG_LOSS_EPS = 1e-7

#: The keys of :func:`risk_metrics`, in order.
METRIC_KEYS = (
    "auc",
    "pr_auc",
    "ks",
    "brier",
    "log_loss",
    "accuracy",
    "recall",
    "positive_rate",
    "n",
)


def risk_metrics(
    y_true: np.ndarray, y_score: np.ndarray, *, threshold: float = 0.5
) -> dict[str, float]:
    """Return the standard risk metrics of predicted probabilities against binary labels.

    Parameters
    ----------
    y_true : numpy.ndarray
        Labels in {0, 1} (bool, int or float), shape ``(n,)``.
    y_score : numpy.ndarray
        Predicted probabilities of the positive class, finite and in [0, 1], shape ``(n,)``.
    threshold : float (default: 0.5)
        A row is predicted positive when ``y_score >= threshold``; used by ``accuracy``
        and ``recall``.

    Returns
    -------
    dict[str, float]
        ``auc`` (ROC-AUC), ``pr_auc`` (average precision), ``ks`` (Kolmogorov–Smirnov
        statistic, see :func:`ks_statistic`), ``brier`` (mean squared error of the
        probabilities), ``log_loss`` (mean negative log-likelihood with probabilities
        clipped to [1e-7, 1 − 1e-7]), ``accuracy`` and ``recall`` at ``threshold``,
        ``positive_rate`` (share of positives in ``y_true``) and ``n`` (number of rows,
        as a float).

    Raises
    ------
    ValueError
        If the arrays are empty, not 1-D or of different lengths, if ``y_true`` holds a
        value other than 0 and 1, if ``y_score`` is not finite or leaves [0, 1], or if
        ``threshold`` is not in [0, 1].

    Notes
    -----
    When ``y_true`` holds only one class, ``auc``, ``pr_auc`` and ``ks`` are undefined
    and returned as ``float("nan")``; so is ``recall`` when there are no positives. A
    small institution's evaluation split can be single-class, and NaN (rather than an
    exception) lets the server skip it when averaging.
    """
    y, p = _checked(y_true, y_score, probabilities=True)
    if not (isinstance(threshold, Real) and 0.0 <= threshold <= 1.0):
        raise ValueError(f"`threshold` must be a number in [0, 1]; got {threshold!r}")
    n = y.size
    n_pos = int(np.count_nonzero(y))
    both_classes = 0 < n_pos < n
    predicted = p >= threshold
    clipped = np.clip(p, LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS)
    log_loss = -float(np.mean(np.where(y, np.log(clipped), np.log1p(-clipped))))
    return {
        "auc": float(roc_auc_score(y, p)) if both_classes else math.nan,
        "pr_auc": float(average_precision_score(y, p)) if both_classes else math.nan,
        "ks": _ks(y, p),
        "brier": float(np.mean((p - y) ** 2)),
        "log_loss": log_loss,
        "accuracy": float(np.mean(predicted == y)),
        "recall": float(np.count_nonzero(predicted & y) / n_pos) if n_pos else math.nan,
        "positive_rate": n_pos / n,
        "n": float(n),
    }


def ks_statistic(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Return the Kolmogorov–Smirnov statistic of a score: ``max |TPR − FPR|``.

    Parameters
    ----------
    y_true : numpy.ndarray
        Labels in {0, 1}, shape ``(n,)``.
    y_score : numpy.ndarray
        Finite scores of any scale (higher means riskier), shape ``(n,)``.

    Returns
    -------
    float
        The largest distance, over all thresholds, between the empirical score
        distributions of positives and negatives, in [0, 1]; ``nan`` if ``y_true`` holds
        only one class.

    Raises
    ------
    ValueError
        If the arrays are empty, not 1-D or of different lengths, if ``y_true`` holds a
        value other than 0 and 1, or if ``y_score`` is not finite.

    Notes
    -----
    Equal to the two-sample KS statistic between the positives' and the negatives' scores
    (``scipy.stats.ks_2samp``): at threshold ``t``, TPR − FPR equals
    ``F_neg(t) − F_pos(t)`` of the two empirical CDFs. Tied scores move together, so only
    thresholds between distinct scores are considered.
    """
    y, s = _checked(y_true, y_score, probabilities=False)
    return _ks(y, s)


def _ks(y: np.ndarray, s: np.ndarray) -> float:
    """KS statistic of checked boolean labels ``y`` and float scores ``s``."""
    n_pos = int(np.count_nonzero(y))
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    order = np.argsort(-s, kind="stable")
    s_sorted = s[order]
    true_pos = np.cumsum(y[order])
    false_pos = np.arange(1, y.size + 1) - true_pos
    # Only the last row of each run of tied scores is a reachable threshold.
    last_of_tie = np.append(s_sorted[1:] != s_sorted[:-1], True)
    tpr = true_pos[last_of_tie] / n_pos
    fpr = false_pos[last_of_tie] / n_neg
    return float(np.max(np.abs(tpr - fpr)))


def _checked(
    y_true: np.ndarray, y_score: np.ndarray, *, probabilities: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Validate labels and scores; return them as a bool array and a float64 array."""
    y = np.asarray(y_true)
    try:
        s = np.asarray(y_score, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"`y_score` must be numeric; got {exc}") from None
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"`y_true` must be a non-empty 1-D array; got shape {y.shape}")
    if s.shape != y.shape:
        raise ValueError(f"`y_score` must have the shape of `y_true` {y.shape}; got {s.shape}")
    if y.dtype.kind not in "biuf" or not np.isin(y, (0, 1)).all():
        raise ValueError(f"`y_true` must hold only 0 and 1; got values {np.unique(y)[:10]}")
    if not np.isfinite(s).all():
        raise ValueError(f"`y_score` must be finite; got {int(np.sum(~np.isfinite(s)))} NaN/inf")
    if probabilities and (s.min() < 0.0 or s.max() > 1.0):
        raise ValueError(
            f"`y_score` must be probabilities in [0, 1]; got min={s.min()}, max={s.max()}"
        )
    return y.astype(bool), s
