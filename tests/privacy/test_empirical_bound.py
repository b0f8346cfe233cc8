"""One-run empirical ε lower bounds (Steinke, Nasr and Jagielski 2023)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from fedrisk.privacy.empirical_bound import (
    DEFAULT_GUESS_GRID,
    audit_scores,
    correct_guesses,
    one_run_epsilon_lower_bound,
    one_run_p_value,
)


def test_all_correct_pure_dp_has_closed_form():
    # All k right: p-value q^k with q = e^ε / (1 + e^ε); solve q^k = β for ε.
    q = 0.05 ** (1 / 100)
    expected = math.log(q / (1 - q))

    got = one_run_epsilon_lower_bound(m=1000, guesses=100, correct=100, beta=0.05)

    assert got == pytest.approx(expected, abs=1e-9)


def test_all_correct_with_many_guesses_gives_a_large_epsilon():
    assert one_run_epsilon_lower_bound(m=1000, guesses=1000, correct=1000) > 5.0


def test_chance_level_guessing_gives_zero():
    assert one_run_epsilon_lower_bound(m=1000, guesses=1000, correct=500) == 0.0
    assert one_run_epsilon_lower_bound(m=1000, guesses=100, correct=40) == 0.0


def test_bound_is_monotone_in_correct_guesses():
    bounds = [
        one_run_epsilon_lower_bound(m=1000, guesses=200, correct=r) for r in range(100, 201, 10)
    ]

    assert bounds == sorted(bounds)
    assert bounds[0] == 0.0 < bounds[-1]


def test_larger_beta_gives_a_larger_bound_and_delta_a_smaller_one():
    strict = one_run_epsilon_lower_bound(m=1000, guesses=100, correct=90, beta=0.01)
    loose = one_run_epsilon_lower_bound(m=1000, guesses=100, correct=90, beta=0.1)
    with_delta = one_run_epsilon_lower_bound(m=1000, guesses=100, correct=90, beta=0.01, delta=1e-4)

    assert 0 < strict < loose
    assert with_delta < strict


def test_p_value_at_the_bound_equals_beta():
    eps = one_run_epsilon_lower_bound(m=500, guesses=100, correct=85, beta=0.05, delta=1e-5)

    p = one_run_p_value(m=500, guesses=100, correct=85, epsilon=eps, delta=1e-5)

    assert p == pytest.approx(0.05, rel=1e-6)


def test_p_value_without_delta_is_the_binomial_tail():
    q = 1 / (1 + math.exp(-1.0))

    p = one_run_p_value(m=100, guesses=50, correct=40, epsilon=1.0, delta=0.0)

    assert p == pytest.approx(stats.binom.sf(39, 50, q), rel=1e-12)


def test_delta_term_matches_a_direct_sum():
    m, r, v, eps, delta = 100, 30, 25, 0.5, 1e-3
    q = 1 / (1 + math.exp(-eps))
    windows = [
        sum(stats.binom.pmf(v - j, r, q) for j in range(1, i + 1)) / i for i in range(1, v + 1)
    ]
    expected = stats.binom.sf(v - 1, r, q) + 2 * m * delta * max(windows)

    got = one_run_p_value(m=m, guesses=r, correct=v, epsilon=eps, delta=delta)

    assert got == pytest.approx(expected, rel=1e-10)


def test_correct_guesses_counts_top_as_in_and_bottom_as_out():
    scores = np.array([5.0, 4.0, 3.0, 2.0, 1.0, 0.0])
    included = np.array([True, False, True, False, False, True])

    assert correct_guesses(scores, included, k_in=2, k_out=0) == 1
    assert correct_guesses(scores, included, k_in=0, k_out=3) == 2
    assert correct_guesses(scores, included, k_in=3, k_out=3) == 2 + 2


def test_audit_scores_separates_signal_from_noise():
    rng = np.random.default_rng(7)
    included = rng.random(1000) < 0.5

    perfect = audit_scores(included.astype(float), included, delta=1e-5)
    noise = audit_scores(rng.normal(size=1000), included, delta=1e-5)

    assert perfect.epsilon > 4.0
    assert perfect.correct == perfect.guesses
    assert perfect.tests == len(DEFAULT_GUESS_GRID)
    assert noise.epsilon < 0.5


def test_audit_scores_splits_beta_over_the_grid():
    rng = np.random.default_rng(3)
    included = rng.random(1000) < 0.5
    scores = included + rng.normal(0.0, 0.7, size=1000)

    one = audit_scores(scores, included, grid=[(0.1, 0.1)])
    two = audit_scores(scores, included, grid=[(0.1, 0.1), (0.1, 0.1)])

    assert one.correct == two.correct
    assert two.epsilon < one.epsilon
    assert two.epsilon == pytest.approx(
        one_run_epsilon_lower_bound(m=1000, guesses=two.guesses, correct=two.correct, beta=0.025)
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"m": 10, "guesses": 11, "correct": 5}, "`correct`, `guesses` and `m` must satisfy"),
        ({"m": 10, "guesses": 5, "correct": 6}, "`correct`, `guesses` and `m` must satisfy"),
        ({"m": 10, "guesses": 5, "correct": -1}, "`correct`, `guesses` and `m` must satisfy"),
        ({"m": 10.0, "guesses": 5, "correct": 2}, "`m` must be an integer; got 10.0"),
        (
            {"m": 10, "guesses": 5, "correct": 2, "beta": 0.0},
            r"`beta` must be in \(0, 1\); got 0.0",
        ),
        ({"m": 10, "guesses": 5, "correct": 2, "beta": 1.5}, "`beta` must be in \\(0, 1\\)"),
        ({"m": 10, "guesses": 5, "correct": 2, "delta": -0.1}, "`delta` must be in \\[0, 1\\]"),
    ],
)
def test_bad_inputs_raise_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        one_run_epsilon_lower_bound(**kwargs)


def test_bad_epsilon_raises():
    with pytest.raises(ValueError, match="`epsilon` must be a finite number >= 0; got -1"):
        one_run_p_value(m=10, guesses=5, correct=2, epsilon=-1, delta=0.0)


@pytest.mark.parametrize(
    ("scores", "included", "kwargs", "message"),
    [
        (np.zeros(3), np.zeros(4, bool), {}, "`included` must have the shape"),
        (np.array([0.0, np.nan]), np.zeros(2, bool), {}, "`scores` must be finite"),
        (np.zeros(0), np.zeros(0, bool), {}, "`scores` must be a non-empty 1-D array"),
        (np.zeros(2), np.array([0, 2]), {}, "`included` must hold booleans"),
        (np.zeros(4), np.zeros(4, bool), {"grid": []}, "`grid` must hold at least one"),
        (np.zeros(4), np.zeros(4, bool), {"grid": [(0.8, 0.5)]}, "`grid` pairs must be"),
    ],
)
def test_audit_scores_rejects_bad_inputs(scores, included, kwargs, message):
    with pytest.raises(ValueError, match=message):
        audit_scores(scores, included, **kwargs)


def test_correct_guesses_rejects_too_many_guesses():
    with pytest.raises(ValueError, match="`k_in` and `k_out` must be >= 0 with sum <= 3"):
        correct_guesses(np.zeros(3), np.zeros(3, bool), k_in=2, k_out=2)
