"""Group fairness gaps against a hand-computed case and scikit-learn's confusion matrix."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import confusion_matrix

from fedrisk.models.fairness import (
    demographic_parity_difference,
    equal_opportunity_difference,
    fairness_report,
)

# Six rows in three groups; at threshold 0.5 the decisions are [1, 1, 0, 1, 0, 0].
#   a: rows 0-2, decisions 1, 1, 0 -> positive-prediction rate 2/3;
#      positives rows 0 and 2, caught row 0 -> TPR 1/2.
#   b: rows 3-4, decisions 1, 0 -> rate 1/2; positive row 3 caught -> TPR 1.
#   c: row 5, decision 0 -> rate 0; no positives -> skipped by equal opportunity.
# Demographic parity: 2/3 - 0 = 2/3. Equal opportunity over {a, b}: 1 - 1/2 = 1/2.
Y = np.array([1, 0, 1, 1, 0, 0])
P = np.array([0.9, 0.6, 0.2, 0.7, 0.4, 0.1])
G = np.array(["a", "a", "a", "b", "b", "c"])
PRED = (P >= 0.5).astype(np.int64)


def test_demographic_parity_hand_computed() -> None:
    assert demographic_parity_difference(PRED, G) == pytest.approx(2 / 3, abs=1e-15)


def test_equal_opportunity_hand_computed_names_the_skipped_group() -> None:
    gap = equal_opportunity_difference(Y, PRED, G)

    assert gap.difference == pytest.approx(0.5, abs=1e-15)
    assert gap.groups == ("a", "b")
    assert gap.skipped == ("c",)


def test_fairness_report_hand_computed() -> None:
    report = fairness_report(Y, P, G, threshold=0.5)

    assert report["demographic_parity_difference"] == pytest.approx(2 / 3)
    assert report["equal_opportunity_difference"] == pytest.approx(0.5)
    assert report["equal_opportunity_groups"] == ["a", "b"]
    assert list(report["groups"]) == ["a", "b", "c"]
    a, b, c = (report["groups"][k] for k in "abc")
    assert (a["count"], a["positives"]) == (3, 2)
    assert a["positive_prediction_rate"] == pytest.approx(2 / 3)
    assert a["true_positive_rate"] == pytest.approx(0.5)
    assert (b["count"], b["positives"], b["positive_prediction_rate"]) == (2, 1, 0.5)
    assert b["true_positive_rate"] == 1.0
    assert (c["count"], c["positives"], c["positive_prediction_rate"]) == (1, 0, 0.0)
    assert math.isnan(c["true_positive_rate"])


@pytest.mark.parametrize(
    "groups",
    [
        np.array([3, 3, 3, 7, 7, 9]),
        np.array([3, 3, 3, 7, 7, 9], dtype=np.uint8),
        np.array([3, 3, 3, 7, 7, 9], dtype=object),
        pd.Series(["a", "a", "a", "b", "b", "c"]).to_numpy(),  # object dtype
        ["a", "a", "a", "b", "b", "c"],
    ],
)
def test_int_and_string_groups_give_the_same_gaps(groups: object) -> None:
    report = fairness_report(Y, P, groups, threshold=0.5)  # type: ignore[arg-type]

    assert report["demographic_parity_difference"] == pytest.approx(2 / 3)
    assert report["equal_opportunity_difference"] == pytest.approx(0.5)
    assert all(type(k) in (int, str) for k in report["groups"])


def test_group_keys_are_plain_python_values() -> None:
    report = fairness_report(Y, P, np.array([3, 3, 3, 7, 7, 9]), threshold=0.5)

    assert list(report["groups"]) == [3, 7, 9]
    assert report["equal_opportunity_groups"] == [3, 7]
    assert all(type(k) is int for k in report["groups"])


def test_report_gives_nan_equal_opportunity_when_one_group_has_positives() -> None:
    y = np.array([1, 0, 0, 0])

    report = fairness_report(y, np.array([0.9, 0.2, 0.7, 0.1]), ["x", "x", "y", "y"], threshold=0.5)

    assert math.isnan(report["equal_opportunity_difference"])
    assert report["equal_opportunity_groups"] == ["x"]
    assert report["demographic_parity_difference"] == pytest.approx(0.0)


def test_fairness_is_invariant_to_row_order() -> None:
    order = np.array([5, 2, 0, 4, 1, 3])

    shuffled = fairness_report(Y[order], P[order], G[order], threshold=0.5)
    original = fairness_report(Y, P, G, threshold=0.5)

    assert shuffled["demographic_parity_difference"] == original["demographic_parity_difference"]
    assert shuffled["equal_opportunity_difference"] == original["equal_opportunity_difference"]
    for name, rates in original["groups"].items():
        np.testing.assert_equal(shuffled["groups"][name], rates)  # NaN equals NaN here


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_per_group_confusion_matrices(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 3_000
    group = rng.choice(np.array(["north", "south", "east", "west"]), size=n)
    y = (rng.random(n) < 0.25).astype(np.int64)
    p = 1.0 / (1.0 + np.exp(-(1.2 * y + rng.normal(size=n) - 0.8 + (group == "east"))))
    pred = p >= 0.4

    report = fairness_report(y, p, group, threshold=0.4)

    rates, tprs = {}, {}
    for name in np.unique(group):
        rows = group == name
        _, fp, fn, tp = confusion_matrix(y[rows], pred[rows], labels=[0, 1]).ravel()
        rates[name] = (tp + fp) / rows.sum()
        tprs[name] = tp / (tp + fn)
        entry = report["groups"][str(name)]
        assert entry["count"] == rows.sum() and entry["positives"] == tp + fn
        assert entry["positive_prediction_rate"] == pytest.approx(rates[name], abs=1e-12)
        assert entry["true_positive_rate"] == pytest.approx(tprs[name], abs=1e-12)
    dp = max(rates.values()) - min(rates.values())
    eo = max(tprs.values()) - min(tprs.values())
    assert report["demographic_parity_difference"] == pytest.approx(dp, abs=1e-12)
    assert report["equal_opportunity_difference"] == pytest.approx(eo, abs=1e-12)
    assert demographic_parity_difference(pred, group) == pytest.approx(dp, abs=1e-12)
    assert equal_opportunity_difference(y, pred, group).difference == pytest.approx(eo, abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_gaps_are_in_unit_interval(data: st.DataObject) -> None:
    n = data.draw(st.integers(2, 40))
    group = data.draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=n, max_size=n))
    group[0], group[1] = "a", "b"  # at least two groups
    y = np.array(data.draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)))
    pred = np.array(data.draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)))

    dp = demographic_parity_difference(pred, np.array(group))

    assert 0.0 <= dp <= 1.0
    with_positives = {g for g, label in zip(group, y, strict=True) if label}
    if len(with_positives) >= 2:
        gap = equal_opportunity_difference(y, pred, np.array(group))
        assert 0.0 <= gap.difference <= 1.0
        assert set(gap.groups) == with_positives
        assert set(gap.skipped) == set(group) - with_positives


# --- invalid inputs ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("y_pred", "group", "match"),
    [
        (np.array([1, 0, 1]), np.array(["a", "b"]), r"`group` must have shape \(3,\)"),
        (np.array([1, 0]), np.array([["a", "b"]]), r"`group` must have shape \(2,\)"),
        (np.array([1, 0]), np.array(["a", "a"]), "`group` must hold at least 2 groups"),
        (np.array([1, 0]), np.array([0.5, 1.5]), "`group` must hold ints or strings"),
        (np.array([1, 0]), np.array([1, None], dtype=object), "`group` must hold ints or str"),
        (np.array([1, 0]), np.array([1, "a"], dtype=object), "must not mix ints and strings"),
        (np.array([1, 2]), np.array(["a", "b"]), "`y_pred` must hold only 0 and 1"),
        (np.array([1, np.nan]), np.array(["a", "b"]), "`y_pred` must hold only 0 and 1"),
        (np.array([]), np.array([]), "`y_pred` must be a non-empty 1-D array"),
    ],
)
def test_demographic_parity_rejects_bad_input(
    y_pred: np.ndarray, group: np.ndarray, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        demographic_parity_difference(y_pred, group)


@pytest.mark.parametrize(
    ("y_true", "y_pred", "group", "match"),
    [
        (np.array([1, 0, 1]), np.array([1, 0]), np.array(["a", "b"]), "`y_pred` must have the"),
        (np.array([1, 0]), np.array([1, 0]), np.array(["a", "b", "c"]), "`group` must have"),
        (np.array([1, 5]), np.array([1, 0]), np.array(["a", "b"]), "`y_true` must hold only"),
        (np.array([1, 0]), np.array([1, 0.5]), np.array(["a", "b"]), "`y_pred` must hold only"),
        (np.array([1, 1]), np.array([1, 0]), np.array(["a", "a"]), "at least 2 groups"),
        (
            np.array([1, 1, 0]),
            np.array([1, 0, 0]),
            np.array(["a", "a", "b"]),
            r"positives in at least 2 groups.*got positives in \['a'\]",
        ),
    ],
)
def test_equal_opportunity_rejects_bad_input(
    y_true: np.ndarray, y_pred: np.ndarray, group: np.ndarray, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        equal_opportunity_difference(y_true, y_pred, group)


@pytest.mark.parametrize(
    ("y_score", "group", "threshold", "match"),
    [
        (P[:5], G, 0.5, "`y_score` must have the shape"),
        (np.where(P > 0.8, np.nan, P), G, 0.5, "`y_score` must be finite"),
        (P + 0.5, G, 0.5, r"`y_score` must be probabilities in \[0, 1\]"),
        (P, G[:5], 0.5, r"`group` must have shape \(6,\)"),
        (P, np.full(6, "a"), 0.5, "at least 2 groups"),
        (P, G, 1.5, "`threshold` must be a number in"),
        (P, G, float("nan"), "`threshold` must be a number in"),
    ],
)
def test_fairness_report_rejects_bad_input(
    y_score: np.ndarray, group: np.ndarray, threshold: float, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        fairness_report(Y, y_score, group, threshold=threshold)
