"""Properties of the risk metrics that hold for any labels and scores."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import ks_2samp

from fedrisk.models import ks_statistic, risk_metrics

# Scores on a grid of 1/1000 keep distinct scores distinct under the transforms below.
GRID = 1000


@st.composite
def labelled_scores(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """Labels holding both classes and grid-valued probabilities of the same length."""
    n = draw(st.integers(min_value=2, max_value=60))
    labels = draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
    position = draw(st.integers(0, n - 2))
    labels[position], labels[position + 1] = 0, 1  # both classes present
    steps = draw(st.lists(st.integers(0, GRID), min_size=n, max_size=n))
    return np.array(labels), np.array(steps, dtype=np.float64) / GRID


@settings(max_examples=200, deadline=None)
@given(labelled_scores())
def test_ks_is_in_unit_interval_and_bounded_by_metrics(data: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = data

    metrics = risk_metrics(y, p)

    assert 0.0 <= metrics["ks"] <= 1.0
    assert 0.0 <= metrics["auc"] <= 1.0
    assert 0.0 <= metrics["brier"] <= 1.0
    assert metrics["log_loss"] >= 0.0
    # AUC - 1/2 is the mean of (TPR - FPR) over the ROC curve, so |AUC - 1/2| <= KS.
    assert abs(metrics["auc"] - 0.5) <= metrics["ks"] + 1e-12


@settings(max_examples=200, deadline=None)
@given(labelled_scores(), st.sampled_from(["square", "sqrt", "logit_squash", "affine"]))
def test_ranking_metrics_are_invariant_to_monotone_transforms(
    data: tuple[np.ndarray, np.ndarray], transform: str
) -> None:
    y, p = data
    transformed = {
        "square": p**2,
        "sqrt": np.sqrt(p),
        "logit_squash": 0.5 + 0.5 * np.tanh(3.0 * (p - 0.5)),
        "affine": 0.25 + 0.5 * p,
    }[transform]

    before = risk_metrics(y, p)
    after = risk_metrics(y, transformed)

    assert math.isclose(after["auc"], before["auc"], abs_tol=1e-12)
    assert math.isclose(after["pr_auc"], before["pr_auc"], abs_tol=1e-12)
    assert math.isclose(after["ks"], before["ks"], abs_tol=1e-12)


@settings(max_examples=200, deadline=None)
@given(labelled_scores())
def test_reversing_the_score_mirrors_auc_and_keeps_ks(data: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = data

    forward = risk_metrics(y, p)
    reverse = risk_metrics(y, 1.0 - p)

    assert math.isclose(reverse["auc"], 1.0 - forward["auc"], abs_tol=1e-12)
    assert math.isclose(reverse["ks"], forward["ks"], abs_tol=1e-12)


@settings(max_examples=200, deadline=None)
@given(labelled_scores(), st.floats(min_value=-50, max_value=50), st.floats(0.01, 100))
def test_ks_equals_the_two_sample_statistic_on_any_scale(
    data: tuple[np.ndarray, np.ndarray], shift: float, scale: float
) -> None:
    y, p = data
    scores = shift + scale * p

    ks = ks_statistic(y, scores)

    oracle = ks_2samp(p[y == 1], p[y == 0]).statistic
    assert math.isclose(ks, oracle, abs_tol=1e-12)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 1), st.lists(st.integers(0, GRID), min_size=1, max_size=30))
def test_single_class_gives_nan_ranking_metrics(label: int, steps: list[int]) -> None:
    p = np.array(steps, dtype=np.float64) / GRID
    y = np.full(p.size, label)

    metrics = risk_metrics(y, p)

    assert math.isnan(metrics["auc"]) and math.isnan(metrics["pr_auc"])
    assert math.isnan(metrics["ks"])
    assert metrics["positive_rate"] == float(label)
