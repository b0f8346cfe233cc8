"""Risk metrics shared by every task: discrimination, calibration, cost and classification.

Credit-risk practice reads a scorecard by its ROC-AUC (or Gini = 2·AUC − 1), its
Kolmogorov–Smirnov statistic, and the calibration of its probabilities (Brier score, log
loss, expected calibration error); fraud teams add the precision–recall AUC and the recall
they get at a fixed false-positive rate, because positives are rare and alerts cost analyst
time. All of them come from one call, :func:`risk_metrics`, so every task reports the same
keys. The calibration functions live in :mod:`fedrisk.models.calibration_metrics`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
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
    "gini",
    "ece",
    "recall_at_fpr",
    "expected_cost",
)


@dataclass(frozen=True)
class RecallAtFpr:
    """The best recall a score reaches within a false-positive budget.

    Attributes
    ----------
    recall : float
        The highest true-positive rate whose false-positive rate is at most the budget.
    threshold : float
        The highest threshold that reaches ``recall`` when rows with ``score >= threshold``
        are flagged; ``inf`` (flag nothing) when even the top score exceeds the budget.
    fpr : float
        The false-positive rate at ``threshold`` (at most the budget).
    """

    recall: float
    threshold: float
    fpr: float


def risk_metrics(
    y_true: np.ndarray,
    y_score: np.ndarray,
    *,
    threshold: float = 0.5,
    fpr: float = 0.01,
    cost_ratio: float = 1.0,
) -> dict[str, float]:
    """Return the standard risk metrics of predicted probabilities against binary labels.

    Parameters
    ----------
    y_true : numpy.ndarray
        Labels in {0, 1} (bool, int or float), shape ``(n,)``.
    y_score : numpy.ndarray
        Predicted probabilities of the positive class, finite and in [0, 1], shape ``(n,)``.
    threshold : float (default: 0.5)
        A row is predicted positive when ``y_score >= threshold``; used by ``accuracy``,
        ``recall`` and ``expected_cost``.
    fpr : float (default: 0.01)
        False-positive budget of ``recall_at_fpr``, in [0, 1].
    cost_ratio : float (default: 1.0)
        Cost of a missed positive relative to a false alarm (``cost_fn / cost_fp`` with
        ``cost_fp = 1``), finite and non-negative; used by ``expected_cost``.

    Returns
    -------
    dict[str, float]
        In the order of :data:`METRIC_KEYS`: ``auc`` (ROC-AUC), ``pr_auc`` (average
        precision), ``ks`` (see :func:`ks_statistic`), ``brier`` (mean squared error of the
        probabilities), ``log_loss`` (mean negative log-likelihood with probabilities
        clipped to [1e-7, 1 − 1e-7]), ``accuracy`` and ``recall`` at ``threshold``,
        ``positive_rate`` (share of positives in ``y_true``), ``n`` (number of rows, as a
        float), ``gini`` (2·AUC − 1), ``ece`` (expected calibration error over 10 equal-width
        bins), ``recall_at_fpr`` (see :func:`recall_at_fpr`) and ``expected_cost`` (see
        :func:`expected_cost`).

    Raises
    ------
    ValueError
        If the arrays are empty, not 1-D or of different lengths, if ``y_true`` holds a
        value other than 0 and 1, if ``y_score`` is not finite or leaves [0, 1], if
        ``threshold`` or ``fpr`` is not in [0, 1], or if ``cost_ratio`` is negative or not
        finite.

    Notes
    -----
    When ``y_true`` holds only one class, ``auc``, ``pr_auc``, ``ks``, ``gini`` and
    ``recall_at_fpr`` are undefined and returned as ``float("nan")``; so is ``recall`` when
    there are no positives. A small institution's evaluation split can be single-class,
    and NaN (rather than an exception) lets the server skip it when averaging.
    """
    # Imported here, not at the top: calibration_metrics builds on this module's `_checked`.
    from fedrisk.models.calibration_metrics import _calibration_curve, _ece

    y, p = _checked(y_true, y_score, probabilities=True)
    _check_unit("threshold", threshold)
    _check_unit("fpr", fpr)
    _check_cost("cost_ratio", cost_ratio)
    n = y.size
    n_pos = int(np.count_nonzero(y))
    both_classes = 0 < n_pos < n
    predicted = p >= threshold
    clipped = np.clip(p, LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS)
    log_loss = -float(np.mean(np.where(y, np.log(clipped), np.log1p(-clipped))))
    auc = float(roc_auc_score(y, p)) if both_classes else math.nan
    return {
        "auc": auc,
        "pr_auc": float(average_precision_score(y, p)) if both_classes else math.nan,
        "ks": _ks(y, p),
        "brier": float(np.mean((p - y) ** 2)),
        "log_loss": log_loss,
        "accuracy": float(np.mean(predicted == y)),
        "recall": float(np.count_nonzero(predicted & y) / n_pos) if n_pos else math.nan,
        "positive_rate": n_pos / n,
        "n": float(n),
        "gini": 2.0 * auc - 1.0,
        "ece": _ece(_calibration_curve(y, p, 10)),
        "recall_at_fpr": _recall_at_fpr(y, p, fpr).recall if both_classes else math.nan,
        "expected_cost": _cost(y, predicted, cost_fn=float(cost_ratio), cost_fp=1.0),
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


def gini(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Return the Gini coefficient (accuracy ratio) of a score: ``2·AUC − 1``.

    Parameters
    ----------
    y_true : numpy.ndarray
        Labels in {0, 1}, shape ``(n,)``, holding both classes.
    y_score : numpy.ndarray
        Finite scores of any scale (higher means riskier), shape ``(n,)``.

    Returns
    -------
    float
        In [−1, 1]: 1 for a perfect ranking, 0 for a random one.

    Raises
    ------
    ValueError
        If the arrays are empty, not 1-D or of different lengths, if ``y_true`` holds a
        value other than 0 and 1 or only one class, or if ``y_score`` is not finite.
    """
    y, s = _checked(y_true, y_score, probabilities=False)
    _require_both_classes(y, "gini")
    return 2.0 * float(roc_auc_score(y, s)) - 1.0


def recall_at_fpr(y_true: np.ndarray, y_score: np.ndarray, *, fpr: float = 0.01) -> RecallAtFpr:
    """Return the highest recall (TPR) reachable with a false-positive rate of at most ``fpr``.

    Parameters
    ----------
    y_true : numpy.ndarray
        Labels in {0, 1}, shape ``(n,)``, holding both classes.
    y_score : numpy.ndarray
        Finite scores of any scale (higher means riskier), shape ``(n,)``.
    fpr : float (default: 0.01)
        The false-positive budget, in [0, 1].

    Returns
    -------
    RecallAtFpr
        The recall, the threshold that reaches it and the false-positive rate there.

    Raises
    ------
    ValueError
        If the arrays are empty, not 1-D or of different lengths, if ``y_true`` holds a
        value other than 0 and 1 or only one class, if ``y_score`` is not finite, or if
        ``fpr`` is not in [0, 1].

    Notes
    -----
    The candidates are the points of the ROC curve (``sklearn.metrics.roc_curve`` with
    ``drop_intermediate=False``): "flag nothing", then one per distinct score, since tied
    rows are flagged together. Of the thresholds reaching the best recall, the highest is
    returned, so ``recall = 0`` comes with ``threshold = inf``.
    """
    y, s = _checked(y_true, y_score, probabilities=False)
    _check_unit("fpr", fpr)
    _require_both_classes(y, "recall_at_fpr")
    return _recall_at_fpr(y, s, fpr)


def expected_cost(
    y_true: np.ndarray,
    y_score: np.ndarray,
    *,
    threshold: float,
    cost_fn: float,
    cost_fp: float = 1.0,
) -> float:
    """Return the mean misclassification cost per row when flagging ``y_score >= threshold``.

    Parameters
    ----------
    y_true : numpy.ndarray
        Labels in {0, 1}, shape ``(n,)``.
    y_score : numpy.ndarray
        Predicted probabilities, finite and in [0, 1], shape ``(n,)``.
    threshold : float
        Decision threshold in [0, 1].
    cost_fn : float
        Cost of a missed positive (false negative), finite and non-negative.
    cost_fp : float (default: 1.0)
        Cost of a false alarm (false positive), finite and non-negative.

    Returns
    -------
    float
        ``(cost_fn · FN + cost_fp · FP) / n``.

    Raises
    ------
    ValueError
        If the arrays are empty, not 1-D or of different lengths, if ``y_true`` holds a
        value other than 0 and 1, if ``y_score`` is not finite or leaves [0, 1], if
        ``threshold`` is not in [0, 1], or if a cost is negative or not finite.
    """
    y, p = _checked(y_true, y_score, probabilities=True)
    _check_unit("threshold", threshold)
    _check_cost("cost_fn", cost_fn)
    _check_cost("cost_fp", cost_fp)
    return _cost(y, p >= threshold, cost_fn=float(cost_fn), cost_fp=float(cost_fp))


def _cost(y: np.ndarray, predicted: np.ndarray, *, cost_fn: float, cost_fp: float) -> float:
    false_neg = int(np.count_nonzero(y & ~predicted))
    false_pos = int(np.count_nonzero(~y & predicted))
    return (cost_fn * false_neg + cost_fp * false_pos) / y.size


def _roc_points(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FPR, TPR and threshold of the ROC curve of a two-class ``y``, highest threshold first.

    The points are those of ``sklearn.metrics.roc_curve(drop_intermediate=False)``: "flag
    nothing" (threshold ``inf``), then one per distinct score.
    """
    order = np.argsort(-s, kind="stable")
    s_sorted = s[order]
    true_pos = np.cumsum(y[order])
    false_pos = np.arange(1, y.size + 1) - true_pos
    # Only the last row of each run of tied scores is a reachable threshold.
    last_of_tie = np.append(s_sorted[1:] != s_sorted[:-1], True)
    tpr = np.concatenate(([0.0], true_pos[last_of_tie] / true_pos[-1]))
    fpr = np.concatenate(([0.0], false_pos[last_of_tie] / false_pos[-1]))
    return fpr, tpr, np.concatenate(([np.inf], s_sorted[last_of_tie]))


def _ks(y: np.ndarray, s: np.ndarray) -> float:
    """KS statistic of checked boolean labels ``y`` and float scores ``s``."""
    if not 0 < np.count_nonzero(y) < y.size:
        return math.nan
    fpr, tpr, _ = _roc_points(y, s)
    return float(np.max(np.abs(tpr - fpr)))


def _recall_at_fpr(y: np.ndarray, s: np.ndarray, budget: float) -> RecallAtFpr:
    """Best TPR within ``budget`` for checked two-class ``y``, at its fewest false positives."""
    fpr, tpr, thresholds = _roc_points(y, s)
    within = np.flatnonzero(fpr <= budget)  # never empty: "flag nothing" has FPR 0
    best = within[np.argmax(tpr[within])]  # the first, i.e. highest, threshold reaching it
    return RecallAtFpr(
        recall=float(tpr[best]), threshold=float(thresholds[best]), fpr=float(fpr[best])
    )


def _require_both_classes(y: np.ndarray, metric: str) -> None:
    n_pos = int(np.count_nonzero(y))
    if not 0 < n_pos < y.size:
        raise ValueError(
            f"`y_true` must hold both classes for `{metric}`; got {n_pos} positives of {y.size}"
        )


def _check_unit(name: str, value: float) -> None:
    if not (isinstance(value, Real) and 0.0 <= value <= 1.0):
        raise ValueError(f"`{name}` must be a number in [0, 1]; got {value!r}")


def _check_cost(name: str, value: float) -> None:
    if not (isinstance(value, Real) and math.isfinite(value) and value >= 0.0):
        raise ValueError(f"`{name}` must be a finite, non-negative number; got {value!r}")


def _labels(values: np.ndarray, *, name: str) -> np.ndarray:
    """Validate a non-empty 1-D array of 0/1 labels; return it as bool."""
    y = np.asarray(values)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"`{name}` must be a non-empty 1-D array; got shape {y.shape}")
    if y.dtype.kind not in "biuf" or not np.isin(y, (0, 1)).all():
        raise ValueError(f"`{name}` must hold only 0 and 1; got values {np.unique(y)[:10]}")
    return y.astype(bool)


def _checked(
    y_true: np.ndarray, y_score: np.ndarray, *, probabilities: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Validate labels and scores; return them as a bool array and a float64 array."""
    y = _labels(y_true, name="y_true")
    try:
        s = np.asarray(y_score, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"`y_score` must be numeric; got {exc}") from None
    if s.shape != y.shape:
        raise ValueError(f"`y_score` must have the shape of `y_true` {y.shape}; got {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError(f"`y_score` must be finite; got {int(np.sum(~np.isfinite(s)))} NaN/inf")
    if probabilities and (s.min() < 0.0 or s.max() > 1.0):
        raise ValueError(
            f"`y_score` must be probabilities in [0, 1]; got min={s.min()}, max={s.max()}"
        )
    return y, s
