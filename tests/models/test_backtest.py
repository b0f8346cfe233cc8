"""Kupiec's proportion-of-failures test and the hit rate, against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import xlogy
from sklearn.metrics import recall_score

from fedrisk.models.backtest import hit_rate, kupiec_pof


def _chi2_1_sf(x: float) -> float:
    """Survival function of χ² with 1 degree of freedom, independent of SciPy."""
    return math.erfc(math.sqrt(x / 2.0))


def test_kupiec_basel_window_hand_computed() -> None:
    # n = 250, x = 5, coverage 0.99 -> p = 0.01, x / n = 0.02:
    # LR = -2 [245 ln 0.99 + 5 ln 0.01] + 2 [245 ln 0.98 + 5 ln 0.02]
    #    = 2 [245 ln(98/99) + 5 ln 2] = 1.95680978823062955... (50-digit mpmath).
    # p-value = erfc(sqrt(LR / 2)) = 0.16185491719604189...
    result = kupiec_pof(5, 250, coverage=0.99)

    assert result.lr == pytest.approx(1.9568097882306296, abs=1e-9)
    assert result.p_value == pytest.approx(0.16185491719604190, abs=1e-9)
    assert result.expected_exceptions == pytest.approx(2.5, abs=1e-12)
    assert result.reject is False


def test_kupiec_with_no_exceptions_uses_zero_log_zero() -> None:
    # x = 0: LR = -2 * 250 ln 0.99 = 5.02516792675072059...; p = 0.0249815...
    result = kupiec_pof(0, 250, coverage=0.99)

    assert result.lr == pytest.approx(5.025167926750721, abs=1e-9)
    assert result.p_value == pytest.approx(_chi2_1_sf(5.025167926750721), abs=1e-12)
    assert result.reject is True
    assert kupiec_pof(0, 250, coverage=0.99, significance=0.01).reject is False


def test_kupiec_with_every_observation_an_exception() -> None:
    # x = n: LR = -2 * 250 ln 0.01 = 500 ln 100 = 2302.58509299404568...
    result = kupiec_pof(250, 250, coverage=0.99)

    assert result.lr == pytest.approx(2302.5850929940457, abs=1e-9)
    assert result.p_value == 0.0
    assert result.reject is True


def test_kupiec_is_zero_when_the_rate_matches_exactly() -> None:
    result = kupiec_pof(3, 300, coverage=0.99)

    assert result.lr == pytest.approx(0.0, abs=1e-12)
    assert result.p_value == pytest.approx(1.0, abs=1e-9)
    assert result.reject is False


def test_kupiec_accepts_numpy_integers() -> None:
    exceptions = np.count_nonzero(np.arange(250) % 50 == 0)  # numpy int, 5

    assert kupiec_pof(exceptions, np.int64(250), coverage=0.99).lr == pytest.approx(
        1.9568097882306296
    )


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_kupiec_matches_the_likelihood_ratio_and_chi2_oracle(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 2_000))
    x = data.draw(st.integers(0, n))
    coverage = data.draw(st.floats(0.5, 0.999))
    p, q = 1.0 - coverage, x / n

    result = kupiec_pof(x, n, coverage=coverage)

    oracle = -2.0 * (xlogy(n - x, 1 - p) + xlogy(x, p)) + 2.0 * (xlogy(n - x, 1 - q) + xlogy(x, q))
    assert result.lr >= 0.0
    assert result.lr == pytest.approx(max(oracle, 0.0), rel=1e-9, abs=1e-9)
    assert result.p_value == pytest.approx(_chi2_1_sf(result.lr), rel=1e-9, abs=1e-12)
    assert 0.0 <= result.p_value <= 1.0
    assert result.reject == (result.p_value < 0.05)
    assert result.expected_exceptions == pytest.approx(n * p)


@pytest.mark.parametrize(
    ("exceptions", "n", "coverage", "significance", "match"),
    [
        (5, 0, 0.99, 0.05, "`n` must be a positive integer"),
        (5, 250.0, 0.99, 0.05, "`n` must be a positive integer"),
        (5, True, 0.99, 0.05, "`n` must be a positive integer"),
        (2.5, 250, 0.99, 0.05, "`exceptions` must be an integer"),
        (-1, 250, 0.99, 0.05, r"`exceptions` must be in \[0, n=250\]"),
        (251, 250, 0.99, 0.05, r"`exceptions` must be in \[0, n=250\]"),
        (5, 250, 1.0, 0.05, "`coverage` must be a number strictly between 0 and 1"),
        (5, 250, 0.0, 0.05, "`coverage` must be a number strictly between 0 and 1"),
        (5, 250, float("nan"), 0.05, "`coverage` must be a number strictly between"),
        (5, 250, "0.99", 0.05, "`coverage` must be a number strictly between"),
        (5, 250, 0.99, 0.0, "`significance` must be a number strictly between 0 and 1"),
        (5, 250, 0.99, 1.5, "`significance` must be a number strictly between 0 and 1"),
    ],
)
def test_kupiec_rejects_bad_input(
    exceptions: object, n: object, coverage: object, significance: object, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        kupiec_pof(exceptions, n, coverage=coverage, significance=significance)  # type: ignore[arg-type]


def test_hit_rate_hand_computed() -> None:
    # Events at rows 0, 2, 3; flagged rows 0, 1, 3 -> 2 of 3 events flagged.
    y = np.array([1, 0, 1, 1, 0])
    flagged = np.array([1, 1, 0, 1, 0])

    assert hit_rate(y, flagged) == pytest.approx(2 / 3, abs=1e-15)
    assert hit_rate(y.astype(bool), flagged.astype(float)) == pytest.approx(2 / 3)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hit_rate_matches_scikit_learn_recall(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = (rng.random(1_000) < 0.1).astype(np.int64)
    flagged = (rng.random(1_000) < 0.2 + 0.5 * y).astype(np.int64)

    assert hit_rate(y, flagged) == pytest.approx(recall_score(y, flagged), abs=1e-12)


@pytest.mark.parametrize(
    ("y_true", "y_pred", "match"),
    [
        (np.array([1, 0]), np.array([1]), "`y_pred` must have the shape of `y_true`"),
        (np.array([0, 0]), np.array([1, 0]), "`y_true` must hold at least one event"),
        (np.array([1, 2]), np.array([1, 0]), "`y_true` must hold only 0 and 1"),
        (np.array([1, 0]), np.array([1, np.nan]), "`y_pred` must hold only 0 and 1"),
        (np.array([]), np.array([]), "`y_true` must be a non-empty 1-D array"),
        (np.array([[1, 0]]), np.array([[1, 0]]), "`y_true` must be a non-empty 1-D array"),
    ],
)
def test_hit_rate_rejects_bad_input(y_true: np.ndarray, y_pred: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        hit_rate(y_true, y_pred)
