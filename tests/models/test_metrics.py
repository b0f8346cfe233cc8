"""Risk metrics against scikit-learn, SciPy and hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import ks_2samp
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    roc_auc_score,
)

from fedrisk.models import METRIC_KEYS, ks_statistic, risk_metrics


def _seeded_scores(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(np.int64)
    logits = 1.5 * y + rng.normal(size=n)
    return y, 1.0 / (1.0 + np.exp(-logits))


def test_hand_computed_case() -> None:
    # y = [0, 0, 1, 1], p = [0.1, 0.4, 0.35, 0.8]
    # AUC: positive/negative pairs (0.35>0.1, 0.35<0.4, 0.8>0.1, 0.8>0.4) -> 3 of 4 = 0.75.
    # KS, thresholds from the top: p>=0.8 TPR 1/2 FPR 0 (0.5); p>=0.4 1/2, 1/2 (0);
    #   p>=0.35 1, 1/2 (0.5); p>=0.1 1, 1 (0) -> 0.5.
    # AP: ranks 0.8 (pos, P=1, R=1/2), 0.4 (neg), 0.35 (pos, P=2/3, R=1)
    #   -> 1/2 * 1 + 1/2 * 2/3 = 5/6.
    # Brier: (0.01 + 0.16 + 0.4225 + 0.04) / 4 = 0.158125.
    # Log loss: -(ln 0.9 + ln 0.6 + ln 0.35 + ln 0.8) / 4.
    # At 0.5 the predictions are [0, 0, 0, 1]: accuracy 3/4, recall 1/2.
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.4, 0.35, 0.8])

    metrics = risk_metrics(y, p)

    assert metrics["auc"] == pytest.approx(0.75)
    assert metrics["ks"] == pytest.approx(0.5)
    assert metrics["pr_auc"] == pytest.approx(5 / 6)
    assert metrics["brier"] == pytest.approx(0.158125)
    expected_log_loss = -(math.log(0.9) + math.log(0.6) + math.log(0.35) + math.log(0.8)) / 4
    assert metrics["log_loss"] == pytest.approx(expected_log_loss)
    assert metrics["accuracy"] == pytest.approx(0.75)
    assert metrics["recall"] == pytest.approx(0.5)
    assert metrics["positive_rate"] == pytest.approx(0.5)
    assert metrics["n"] == 4.0


def test_keys_are_exactly_the_documented_ones() -> None:
    y, p = _seeded_scores(50, seed=1)

    metrics = risk_metrics(y, p)

    assert tuple(metrics) == METRIC_KEYS
    assert all(isinstance(v, float) for v in metrics.values())


def test_ks_with_ties_only_uses_reachable_thresholds() -> None:
    # y = [0, 1, 0, 1, 1], p = [0.2, 0.2, 0.5, 0.7, 0.9]; 3 positives, 2 negatives.
    # p>=0.9: TPR 1/3, FPR 0 (1/3); p>=0.7: 2/3, 0 (2/3); p>=0.5: 2/3, 1/2 (1/6);
    # p>=0.2 takes both tied rows at once: 1, 1 (0) -> KS = 2/3.
    # AUC: pairs (0.2~0.2 tie = 1/2, 0.2<0.5 = 0, 0.7 beats both, 0.9 beats both) -> 4.5/6.
    y = np.array([0, 1, 0, 1, 1])
    p = np.array([0.2, 0.2, 0.5, 0.7, 0.9])

    metrics = risk_metrics(y, p)

    assert metrics["ks"] == pytest.approx(2 / 3)
    assert metrics["auc"] == pytest.approx(0.75)


def test_ks_of_fully_tied_scores_is_zero() -> None:
    # One threshold only: both rows are taken together, TPR = FPR = 1.
    assert ks_statistic(np.array([1, 0]), np.array([0.5, 0.5])) == 0.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_scikit_learn_and_scipy(seed: int) -> None:
    y, p = _seeded_scores(2_000, seed=seed)
    p = np.round(p, 2)  # ties exercise the threshold handling

    metrics = risk_metrics(y, p, threshold=0.4)

    assert metrics["auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert metrics["pr_auc"] == pytest.approx(average_precision_score(y, p), abs=1e-12)
    assert metrics["brier"] == pytest.approx(brier_score_loss(y, p), abs=1e-12)
    clipped = np.clip(p, 1e-7, 1 - 1e-7)
    assert metrics["log_loss"] == pytest.approx(log_loss(y, clipped), abs=1e-12)
    assert metrics["ks"] == pytest.approx(ks_2samp(p[y == 1], p[y == 0]).statistic, abs=1e-12)
    assert metrics["accuracy"] == pytest.approx(np.mean((p >= 0.4) == y))
    assert metrics["recall"] == pytest.approx(np.mean(p[y == 1] >= 0.4))
    assert metrics["positive_rate"] == pytest.approx(y.mean())


def test_log_loss_clips_certain_wrong_predictions() -> None:
    y = np.array([1, 0])
    p = np.array([0.0, 0.0])  # first row certain and wrong

    metrics = risk_metrics(y, p)

    expected = -(math.log(1e-7) + math.log(1 - 1e-7)) / 2
    assert metrics["log_loss"] == pytest.approx(expected)


def test_accepts_bool_and_float_labels() -> None:
    y, p = _seeded_scores(100, seed=3)

    as_int = risk_metrics(y, p)
    as_bool = risk_metrics(y.astype(bool), p)
    as_float = risk_metrics(y.astype(np.float64), p)

    assert as_int == as_bool == as_float


@pytest.mark.parametrize("label", [0, 1])
def test_single_class_gives_nan_for_ranking_metrics(label: int) -> None:
    y = np.full(5, label)
    p = np.array([0.1, 0.2, 0.6, 0.7, 0.9])

    metrics = risk_metrics(y, p)

    assert math.isnan(metrics["auc"])
    assert math.isnan(metrics["pr_auc"])
    assert math.isnan(metrics["ks"])
    assert math.isnan(ks_statistic(y, p))
    assert metrics["positive_rate"] == float(label)
    assert metrics["brier"] == pytest.approx(np.mean((p - label) ** 2))
    assert metrics["accuracy"] == pytest.approx(np.mean((p >= 0.5) == label))


def test_recall_is_nan_without_positives() -> None:
    metrics = risk_metrics(np.zeros(3), np.array([0.2, 0.7, 0.9]))

    assert math.isnan(metrics["recall"])


def test_ks_statistic_accepts_unbounded_scores() -> None:
    y = np.array([0, 0, 1, 1])
    scores = np.array([-3.0, 2.0, 1.0, 40.0])  # same order as the hand-computed case

    assert ks_statistic(y, scores) == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("y_true", "y_score", "match"),
    [
        (np.array([0, 1]), np.array([0.5]), "`y_score` must have the shape"),
        (np.array([]), np.array([]), "`y_true` must be a non-empty 1-D array"),
        (np.array([[0, 1]]), np.array([[0.1, 0.2]]), "`y_true` must be a non-empty 1-D"),
        (np.array([0, 2]), np.array([0.1, 0.2]), "`y_true` must hold only 0 and 1"),
        (np.array([0, 0.5]), np.array([0.1, 0.2]), "`y_true` must hold only 0 and 1"),
        (np.array(["a", "b"]), np.array([0.1, 0.2]), "`y_true` must hold only 0 and 1"),
        (np.array([0, 1]), np.array([0.1, np.nan]), "`y_score` must be finite"),
        (np.array([0, 1]), np.array([0.1, np.inf]), "`y_score` must be finite"),
        (np.array([0, 1]), np.array([-0.1, 0.5]), r"`y_score` must be probabilities in \[0, 1\]"),
        (np.array([0, 1]), np.array([0.1, 1.5]), r"got min=0.1, max=1.5"),
        (np.array([0, 1]), np.array(["x", "y"]), "`y_score` must be numeric"),
    ],
)
def test_invalid_inputs_raise(y_true: np.ndarray, y_score: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        risk_metrics(y_true, y_score)


@pytest.mark.parametrize("threshold", [-0.1, 1.1, float("nan"), "0.5"])
def test_invalid_threshold_raises(threshold: object) -> None:
    with pytest.raises(ValueError, match="`threshold` must be a number in"):
        risk_metrics(np.array([0, 1]), np.array([0.2, 0.8]), threshold=threshold)


def test_ks_statistic_validates_scores() -> None:
    with pytest.raises(ValueError, match="`y_score` must be finite"):
        ks_statistic(np.array([0, 1]), np.array([np.nan, 1.0]))
