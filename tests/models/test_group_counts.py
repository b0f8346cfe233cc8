"""Fairness from per-bank counts: the pooled counts give the pooled rows' figures exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedrisk.models.fairness import fairness_report
from fedrisk.models.group_counts import (
    GroupCounts,
    group_counts,
    merge_counts,
    report_from_counts,
)


def test_hand_counted_case() -> None:
    # Group a: 4 rows, 2 positives; flagged rows 0, 1, 2 (scores >= 0.5); caught 1 of 2.
    # Group b: 3 rows, 1 positive; flagged row 5 only, which is the positive.
    y = np.array([1, 0, 0, 1, 0, 1, 0])
    s = np.array([0.9, 0.6, 0.5, 0.2, 0.1, 0.7, 0.3])
    g = np.array(["a", "a", "a", "a", "b", "b", "b"])

    counts = group_counts(y, s, g, threshold=0.5)
    report = report_from_counts(counts)

    assert counts == GroupCounts(("a", "b"), (4, 3), (3, 1), (2, 1), (1, 1))
    assert report["demographic_parity_difference"] == pytest.approx(3 / 4 - 1 / 3)
    assert report["equal_opportunity_difference"] == pytest.approx(1.0 - 0.5)
    assert report["groups"]["a"]["true_positive_rate"] == 0.5


def test_bank_counts_add_up_to_the_pooled_rows_report() -> None:
    rng = np.random.default_rng(7)
    banks = []
    for n, groups in ((300, ["18-29", "30-49", "50+"]), (120, ["30-49", "50+"]), (80, ["50+"])):
        y = (rng.random(n) < 0.2).astype(int)
        s = np.clip(0.3 * y + rng.random(n) * 0.7, 0, 1)
        banks.append((y, s, rng.choice(groups, size=n)))

    pooled = report_from_counts(
        merge_counts(group_counts(y, s, g, threshold=0.45) for y, s, g in banks)
    )
    y, s, g = (np.concatenate(parts) for parts in zip(*banks, strict=True))
    direct = fairness_report(y, s, g, threshold=0.45)

    assert pooled["demographic_parity_difference"] == direct["demographic_parity_difference"]
    assert pooled["equal_opportunity_difference"] == direct["equal_opportunity_difference"]
    assert pooled["groups"] == direct["groups"]


def test_a_bank_with_one_group_has_no_gap() -> None:
    counts = group_counts(np.array([1, 0]), np.array([0.8, 0.1]), np.array([1, 1]), threshold=0.5)

    report = report_from_counts(counts)

    assert counts.groups == ("1",)
    assert math.isnan(report["demographic_parity_difference"])
    assert math.isnan(report["equal_opportunity_difference"])


def test_groups_without_positives_are_left_out_of_equal_opportunity() -> None:
    counts = GroupCounts(("0", "1", "2"), (10, 10, 5), (5, 2, 1), (4, 2, 0), (3, 1, 0))

    report = report_from_counts(counts)

    assert report["equal_opportunity_groups"] == ["0", "1"]
    assert report["equal_opportunity_difference"] == pytest.approx(0.75 - 0.5)
    assert math.isnan(report["groups"]["2"]["true_positive_rate"])


@pytest.mark.parametrize(
    ("counts", "match"),
    [
        ((("a",), (3,), (4,), (1,), (1,)), "counts of group 'a' must satisfy"),
        ((("a",), (3,), (1,), (2,), (2,)), "counts of group 'a' must satisfy"),
        ((("a", "a"), (1, 1), (0, 0), (0, 0), (0, 0)), "`groups` must be distinct"),
        ((("a",), (1, 2), (0,), (0,), (0,)), "one value per group"),
    ],
)
def test_inconsistent_counts_raise(counts: tuple, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        GroupCounts(*counts)


def test_merge_of_nothing_raises() -> None:
    with pytest.raises(ValueError, match="at least one institution"):
        merge_counts([])
