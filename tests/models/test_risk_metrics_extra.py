"""Gini, calibration, recall at a false-positive budget and expected cost.

Checked against scikit-learn (and pandas for the ECE binning) on seeded data, and against
hand-computed cases.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.calibration import calibration_curve as sk_calibration_curve
from sklearn.metrics import confusion_matrix, roc_auc_score, roc_curve

from fedrisk.models.calibration_metrics import calibration_curve, expected_calibration_error
from fedrisk.models.metrics import (
    METRIC_KEYS,
    expected_cost,
    gini,
    recall_at_fpr,
    risk_metrics,
)

# Six rows, three of each class, no score on a bin edge of 4 or 10 bins.
# Sorted by score: 0.9 (pos), 0.7 (neg), 0.6 (pos), 0.3 (pos), 0.2 (neg), 0.1 (neg).
Y = np.array([0, 0, 1, 1, 0, 1])
P = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.9])


def _seeded_scores(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(np.int64)
    logits = 1.5 * y + rng.normal(size=n) - 0.5
    return y, 1.0 / (1.0 + np.exp(-logits))


# --- hand-computed cases -------------------------------------------------------------


def test_gini_hand_computed() -> None:
    # Positive/negative pairs: 0.3 beats 0.1, 0.2; 0.6 beats 0.1, 0.2; 0.9 beats all three
    # -> AUC = 7/9, Gini = 2 * 7/9 - 1 = 5/9.
    assert gini(Y, P) == pytest.approx(5 / 9, abs=1e-15)


def test_calibration_curve_and_ece_hand_computed() -> None:
    # 4 bins: [0, .25] holds 0.1, 0.2 (mean .15, rate 0); (.25, .5] holds 0.3 (.3, 1);
    # (.5, .75] holds 0.6, 0.7 (.65, 1/2); (.75, 1] holds 0.9 (.9, 1).
    # ECE = (2 * .15 + 1 * .7 + 2 * .15 + 1 * .1) / 6 = 1.4 / 6.
    curve = calibration_curve(Y, P, bins=4)

    np.testing.assert_allclose(curve.mean_predicted, [0.15, 0.3, 0.65, 0.9], atol=1e-15)
    np.testing.assert_allclose(curve.observed_rate, [0.0, 1.0, 0.5, 1.0], atol=1e-15)
    np.testing.assert_array_equal(curve.count, [2, 1, 2, 1])
    assert curve.count.dtype == np.int64
    assert expected_calibration_error(Y, P, bins=4) == pytest.approx(1.4 / 6, abs=1e-15)


def test_calibration_skips_empty_bins_and_puts_edges_in_the_lower_bin() -> None:
    # Edges of 4 bins are exact in binary: 0 and 0.25 -> bin 0, 0.5 -> bin 1, 1 -> bin 3;
    # bin 2 is empty and left out.
    y = np.array([0, 1, 1, 1])
    p = np.array([0.0, 0.25, 0.5, 1.0])

    curve = calibration_curve(y, p, bins=4)

    np.testing.assert_allclose(curve.mean_predicted, [0.125, 0.5, 1.0])
    np.testing.assert_allclose(curve.observed_rate, [0.5, 1.0, 1.0])
    np.testing.assert_array_equal(curve.count, [2, 1, 1])
    # Gaps: |.125 - .5| * 2 + |.5 - 1| * 1 + 0 -> 1.25 / 4.
    assert expected_calibration_error(y, p, bins=4) == pytest.approx(0.3125)


def test_ece_of_one_bin_is_the_gap_between_mean_score_and_base_rate() -> None:
    assert expected_calibration_error(Y, P, bins=1) == pytest.approx(abs(P.mean() - 0.5))


def test_perfectly_calibrated_bins_have_zero_ece() -> None:
    y = np.array([1, 0, 0, 0, 1, 1, 1, 0])
    p = np.array([0.25, 0.25, 0.25, 0.25, 0.75, 0.75, 0.75, 0.75])

    assert expected_calibration_error(y, p, bins=2) == 0.0


@pytest.mark.parametrize(
    ("budget", "recall", "threshold", "fpr"),
    [
        # Curve (threshold: TPR, FPR): 0.9: 1/3, 0; 0.7: 1/3, 1/3; 0.6: 2/3, 1/3;
        # 0.3: 1, 1/3; 0.2: 1, 2/3; 0.1: 1, 1.
        (0.0, 1 / 3, 0.9, 0.0),
        (0.3, 1 / 3, 0.9, 0.0),
        (0.34, 1.0, 0.3, 1 / 3),
        (1.0, 1.0, 0.3, 1 / 3),  # the highest threshold that reaches TPR 1
    ],
)
def test_recall_at_fpr_hand_computed(
    budget: float, recall: float, threshold: float, fpr: float
) -> None:
    result = recall_at_fpr(Y, P, fpr=budget)

    assert result.recall == pytest.approx(recall)
    assert result.threshold == threshold
    assert result.fpr == pytest.approx(fpr)


@pytest.mark.parametrize(
    ("y", "p"),
    [
        (np.array([0, 1]), np.array([0.9, 0.1])),  # the top score is a negative
        (np.array([0, 0, 1]), np.array([0.9, 0.9, 0.1])),  # tied negatives at the top
    ],
)
@pytest.mark.parametrize("budget", [0.0, 0.5])
def test_recall_at_fpr_flags_nothing_when_no_positive_fits(
    y: np.ndarray, p: np.ndarray, budget: float
) -> None:
    result = recall_at_fpr(y, p, fpr=budget)

    assert (result.recall, result.threshold, result.fpr) == (0.0, math.inf, 0.0)


def test_recall_at_fpr_prefers_flagging_nothing_over_a_useless_threshold() -> None:
    # Curve: 0.9: TPR 0, FPR 1/4; 0.8: 1/2, 1/2. With a budget of 1/4 the best recall is 0,
    # reached by flagging nothing (FPR 0) rather than by flagging the 0.9 (FPR 1/4).
    y = np.array([0, 1, 0, 1, 0, 0])
    p = np.array([0.9, 0.8, 0.8, 0.1, 0.1, 0.1])

    result = recall_at_fpr(y, p, fpr=0.25)

    assert (result.recall, result.threshold, result.fpr) == (0.0, math.inf, 0.0)


def test_recall_at_fpr_moves_tied_scores_together() -> None:
    # The tied 0.8s are one threshold: TPR 1/2 with FPR 1/2, never TPR 1/2 with FPR 0.
    # Curve: 0.8: 1/2, 1/2; 0.3: 1, 1/2; 0.1: 1, 1.
    y = np.array([1, 0, 1, 0])
    p = np.array([0.8, 0.8, 0.3, 0.1])

    below = recall_at_fpr(y, p, fpr=0.4)
    at = recall_at_fpr(y, p, fpr=0.5)

    assert (below.recall, below.threshold) == (0.0, math.inf)
    assert (at.recall, at.threshold, at.fpr) == (1.0, 0.3, 0.5)


@pytest.mark.parametrize(
    ("cost_fn", "cost_fp", "expected"),
    # At 0.5 the decisions are [0, 0, 0, 1, 1, 1]: one FN (0.3), one FP (0.7).
    [(5.0, 1.0, 6 / 6), (5.0, 2.0, 7 / 6), (0.0, 1.0, 1 / 6), (1.0, 0.0, 1 / 6)],
)
def test_expected_cost_hand_computed(cost_fn: float, cost_fp: float, expected: float) -> None:
    cost = expected_cost(Y, P, threshold=0.5, cost_fn=cost_fn, cost_fp=cost_fp)

    assert cost == pytest.approx(expected, abs=1e-15)


def test_risk_metrics_new_keys_hand_computed() -> None:
    metrics = risk_metrics(Y, P, threshold=0.5, fpr=0.34, cost_ratio=5.0)

    assert tuple(metrics)[-4:] == ("gini", "ece", "recall_at_fpr", "expected_cost")
    assert tuple(metrics) == METRIC_KEYS
    assert metrics["gini"] == pytest.approx(5 / 9)
    assert metrics["ece"] == pytest.approx(expected_calibration_error(Y, P, bins=10))
    assert metrics["recall_at_fpr"] == pytest.approx(1.0)
    assert metrics["expected_cost"] == pytest.approx(1.0)


def test_risk_metrics_defaults_for_the_new_keys() -> None:
    y, p = _seeded_scores(500, seed=7)

    metrics = risk_metrics(y, p)

    assert metrics["recall_at_fpr"] == recall_at_fpr(y, p, fpr=0.01).recall
    assert metrics["expected_cost"] == expected_cost(y, p, threshold=0.5, cost_fn=1.0)
    # With equal costs the expected cost is the error rate.
    assert metrics["expected_cost"] == pytest.approx(1.0 - metrics["accuracy"])


@pytest.mark.parametrize("label", [0, 1])
def test_risk_metrics_single_class_gives_nan_for_gini_and_recall_at_fpr(label: int) -> None:
    y = np.full(4, label)
    p = np.array([0.1, 0.4, 0.6, 0.9])

    metrics = risk_metrics(y, p)

    assert math.isnan(metrics["gini"]) and math.isnan(metrics["recall_at_fpr"])
    assert math.isfinite(metrics["ece"]) and math.isfinite(metrics["expected_cost"])


# --- against scikit-learn ------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gini_matches_scikit_learn(seed: int) -> None:
    y, p = _seeded_scores(2_000, seed)
    p = np.round(p, 2)

    assert gini(y, p) == pytest.approx(2 * roc_auc_score(y, p) - 1, abs=1e-12)
    assert gini(y, np.log(p + 1e-3)) == pytest.approx(gini(y, p), abs=1e-12)


@pytest.mark.parametrize(("seed", "bins"), [(0, 10), (1, 5), (2, 20), (3, 1), (4, 7)])
@pytest.mark.parametrize("rounded", [False, True])
def test_calibration_curve_matches_scikit_learn(seed: int, bins: int, rounded: bool) -> None:
    y, p = _seeded_scores(2_000, seed)
    if rounded:  # many scores on the bin edges
        p = np.round(p, 1)

    curve = calibration_curve(y, p, bins=bins)

    prob_true, prob_pred = sk_calibration_curve(y, p, n_bins=bins, strategy="uniform")
    np.testing.assert_allclose(curve.observed_rate, prob_true, rtol=0, atol=1e-12)
    np.testing.assert_allclose(curve.mean_predicted, prob_pred, rtol=0, atol=1e-12)
    assert curve.count.sum() == y.size


@pytest.mark.parametrize(("seed", "bins"), [(0, 10), (1, 15), (2, 3)])
def test_ece_matches_a_pandas_binning(seed: int, bins: int) -> None:
    y, p = _seeded_scores(3_000, seed)
    edges = np.linspace(0.0, 1.0, bins + 1)
    frame = pd.DataFrame({"y": y, "p": p, "bin": pd.cut(p, edges, right=True, include_lowest=True)})
    per_bin = frame.groupby("bin", observed=True).agg(
        n=("y", "size"), rate=("y", "mean"), score=("p", "mean")
    )
    oracle = float((per_bin.n * (per_bin.score - per_bin.rate).abs()).sum() / y.size)

    assert expected_calibration_error(y, p, bins=bins) == pytest.approx(oracle, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("budget", [0.0, 0.01, 0.05, 0.2, 1.0])
def test_recall_at_fpr_matches_scikit_learn_roc_curve(seed: int, budget: float) -> None:
    y, p = _seeded_scores(1_500, seed)
    p = np.round(p, 3)

    result = recall_at_fpr(y, p, fpr=budget)

    fpr, tpr, thresholds = roc_curve(y, p, drop_intermediate=False)
    within = fpr <= budget
    best = np.argmax(np.where(within, tpr, -1.0))
    assert result.recall == pytest.approx(tpr[best], abs=1e-12)
    assert result.fpr == pytest.approx(fpr[best], abs=1e-12)
    assert result.threshold == thresholds[best]
    flagged = p >= result.threshold
    assert np.mean(flagged[y == 1]) == pytest.approx(result.recall)
    assert np.mean(flagged[y == 0]) <= budget


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("threshold", [0.0, 0.2, 0.5, 1.0])
def test_expected_cost_matches_the_confusion_matrix(seed: int, threshold: float) -> None:
    y, p = _seeded_scores(1_000, seed)

    cost = expected_cost(y, p, threshold=threshold, cost_fn=7.5, cost_fp=0.5)

    _, fp, fn, _ = confusion_matrix(y, p >= threshold, labels=[0, 1]).ravel()
    assert cost == pytest.approx((7.5 * fn + 0.5 * fp) / y.size, abs=1e-12)


# --- properties ----------------------------------------------------------------------


@st.composite
def labelled_scores(draw: st.DrawFn, *, both_classes: bool) -> tuple[np.ndarray, np.ndarray]:
    n = draw(st.integers(min_value=2, max_value=60))
    labels = draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
    if both_classes:
        position = draw(st.integers(0, n - 2))
        labels[position], labels[position + 1] = 0, 1
    steps = draw(st.lists(st.integers(0, 100), min_size=n, max_size=n))
    return np.array(labels), np.array(steps, dtype=np.float64) / 100


@settings(max_examples=200, deadline=None)
@given(labelled_scores(both_classes=False), st.integers(1, 30))
def test_ece_is_in_unit_interval_and_bounded_by_the_per_row_error(
    data: tuple[np.ndarray, np.ndarray], bins: int
) -> None:
    y, p = data

    ece = expected_calibration_error(y, p, bins=bins)

    # Binning averages errors before taking |.|, so it never exceeds mean |p - y|.
    assert 0.0 <= ece <= np.mean(np.abs(p - y)) + 1e-12 <= 1.0 + 1e-12


@settings(max_examples=200, deadline=None)
@given(labelled_scores(both_classes=True), st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_gini_and_recall_at_fpr_bounds(
    data: tuple[np.ndarray, np.ndarray], low: float, high: float
) -> None:
    y, p = data
    low, high = sorted((low, high))

    g = gini(y, p)
    tight, loose = recall_at_fpr(y, p, fpr=low), recall_at_fpr(y, p, fpr=high)

    assert -1.0 <= g <= 1.0
    assert gini(y, 1.0 - p) == pytest.approx(-g, abs=1e-12)
    assert 0.0 <= tight.recall <= loose.recall <= 1.0
    assert tight.fpr <= low and loose.fpr <= high


@settings(max_examples=200, deadline=None)
@given(
    labelled_scores(both_classes=False),
    st.floats(0.0, 1.0),
    st.floats(0.0, 100.0),
    st.floats(0.0, 100.0),
)
def test_expected_cost_is_between_zero_and_the_larger_cost(
    data: tuple[np.ndarray, np.ndarray], threshold: float, cost_fn: float, cost_fp: float
) -> None:
    y, p = data

    cost = expected_cost(y, p, threshold=threshold, cost_fn=cost_fn, cost_fp=cost_fp)

    assert 0.0 <= cost <= max(cost_fn, cost_fp) + 1e-12


# --- invalid inputs ------------------------------------------------------------------

BAD_ARRAYS = [
    (np.array([0, 1]), np.array([0.5]), "`y_score` must have the shape"),
    (np.array([]), np.array([]), "`y_true` must be a non-empty 1-D array"),
    (np.array([[0, 1]]), np.array([[0.1, 0.2]]), "`y_true` must be a non-empty 1-D array"),
    (np.array([0, 2]), np.array([0.1, 0.2]), "`y_true` must hold only 0 and 1"),
    (np.array([0, np.nan]), np.array([0.1, 0.2]), "`y_true` must hold only 0 and 1"),
    (np.array([0, 1]), np.array([0.1, np.nan]), "`y_score` must be finite"),
    (np.array([0, 1]), np.array(["x", "y"]), "`y_score` must be numeric"),
]
OUT_OF_RANGE = (np.array([0, 1]), np.array([0.1, 1.5]), r"`y_score` must be probabilities")


@pytest.mark.parametrize(("y_true", "y_score", "match"), [*BAD_ARRAYS, OUT_OF_RANGE])
@pytest.mark.parametrize(
    "metric",
    [
        calibration_curve,
        expected_calibration_error,
        lambda y, p: expected_cost(y, p, threshold=0.5, cost_fn=1.0),
        lambda y, p: risk_metrics(y, p, fpr=0.1, cost_ratio=2.0),
    ],
    ids=["calibration_curve", "ece", "expected_cost", "risk_metrics"],
)
def test_probability_metrics_reject_bad_arrays(
    metric: object, y_true: np.ndarray, y_score: np.ndarray, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        metric(y_true, y_score)  # type: ignore[operator]


@pytest.mark.parametrize(("y_true", "y_score", "match"), BAD_ARRAYS)
@pytest.mark.parametrize("metric", [gini, recall_at_fpr])
def test_ranking_metrics_reject_bad_arrays(
    metric: object, y_true: np.ndarray, y_score: np.ndarray, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        metric(y_true, y_score)  # type: ignore[operator]


@pytest.mark.parametrize("metric", [gini, recall_at_fpr])
def test_ranking_metrics_accept_scores_of_any_scale(metric: object) -> None:
    metric(Y, 10.0 * P - 3.0)  # type: ignore[operator]


@pytest.mark.parametrize("label", [0, 1])
@pytest.mark.parametrize("metric", [gini, recall_at_fpr])
def test_ranking_metrics_reject_a_single_class(metric: object, label: int) -> None:
    with pytest.raises(ValueError, match="`y_true` must hold both classes"):
        metric(np.full(3, label), np.array([0.1, 0.5, 0.9]))  # type: ignore[operator]


@pytest.mark.parametrize("bins", [0, -1, 2.5, True, "10", None])
def test_invalid_bins_raise(bins: object) -> None:
    with pytest.raises(ValueError, match="`bins` must be a positive integer"):
        calibration_curve(Y, P, bins=bins)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`bins` must be a positive integer"):
        expected_calibration_error(Y, P, bins=bins)  # type: ignore[arg-type]


@pytest.mark.parametrize("fpr", [-0.01, 1.01, float("nan"), "0.1", None])
def test_invalid_fpr_raises(fpr: object) -> None:
    with pytest.raises(ValueError, match="`fpr` must be a number in"):
        recall_at_fpr(Y, P, fpr=fpr)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`fpr` must be a number in"):
        risk_metrics(Y, P, fpr=fpr)  # type: ignore[arg-type]


@pytest.mark.parametrize("cost", [-1.0, float("nan"), float("inf"), "1"])
def test_invalid_costs_raise(cost: object) -> None:
    with pytest.raises(ValueError, match="`cost_fn` must be a finite, non-negative"):
        expected_cost(Y, P, threshold=0.5, cost_fn=cost)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`cost_fp` must be a finite, non-negative"):
        expected_cost(Y, P, threshold=0.5, cost_fn=1.0, cost_fp=cost)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`cost_ratio` must be a finite, non-negative"):
        risk_metrics(Y, P, cost_ratio=cost)  # type: ignore[arg-type]


@pytest.mark.parametrize("threshold", [-0.1, 1.1, float("nan")])
def test_expected_cost_rejects_a_bad_threshold(threshold: float) -> None:
    with pytest.raises(ValueError, match="`threshold` must be a number in"):
        expected_cost(Y, P, threshold=threshold, cost_fn=1.0)
