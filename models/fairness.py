"""Group fairness of risk decisions: demographic parity and equal opportunity.

Lending rules (the US Equal Credit Opportunity Act, the EU AI Act's high-risk systems)
ask whether a model's decisions differ across protected groups. Two gaps are standard:
the spread of positive-decision rates (demographic parity) and the spread of true-positive
rates among the rows that really are positive (equal opportunity, Hardt, Price and Srebro,
"Equality of Opportunity in Supervised Learning", NeurIPS 2016). A gap of 0 is parity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypedDict

import numpy as np

from fedrisk.models.metrics import _check_unit, _checked, _labels

#: A group's value: ints or strings (as read from a table column).
Group = int | str


class GroupRates(TypedDict):
    """One group's counts and rates in a :class:`FairnessReport`."""

    count: int
    positives: int
    positive_prediction_rate: float
    true_positive_rate: float


class FairnessReport(TypedDict):
    """The result of :func:`fairness_report`."""

    demographic_parity_difference: float
    equal_opportunity_difference: float
    equal_opportunity_groups: list[Group]
    groups: dict[Group, GroupRates]


@dataclass(frozen=True)
class EqualOpportunityGap:
    """The spread of true-positive rates across the groups that hold positives.

    Attributes
    ----------
    difference : float
        Highest minus lowest true-positive rate among ``groups``, in [0, 1].
    groups : tuple[int | str, ...]
        The groups compared, sorted.
    skipped : tuple[int | str, ...]
        The groups left out because they hold no positives, sorted.
    """

    difference: float
    groups: tuple[Group, ...]
    skipped: tuple[Group, ...]


def demographic_parity_difference(y_pred: np.ndarray, group: np.ndarray) -> float:
    """Return the highest minus the lowest positive-prediction rate across groups.

    Parameters
    ----------
    y_pred : numpy.ndarray
        Decisions in {0, 1}, shape ``(n,)``.
    group : numpy.ndarray
        Each row's group, ints or strings, shape ``(n,)``, with at least 2 groups.

    Returns
    -------
    float
        ``max_g P(ŷ = 1 | g) − min_g P(ŷ = 1 | g)``, in [0, 1].

    Raises
    ------
    ValueError
        If ``y_pred`` is empty, not 1-D or holds a value other than 0 and 1, or if
        ``group`` has another length, holds neither ints nor strings, or fewer than 2
        groups.
    """
    pred = _labels(y_pred, name="y_pred")
    _, index = _groups(group, pred.size)
    rates = _rates(pred, index)
    return float(rates.max() - rates.min())


def equal_opportunity_difference(
    y_true: np.ndarray, y_pred: np.ndarray, group: np.ndarray
) -> EqualOpportunityGap:
    """Return the spread of true-positive rates across the groups that hold positives.

    Parameters
    ----------
    y_true : numpy.ndarray
        Labels in {0, 1}, shape ``(n,)``.
    y_pred : numpy.ndarray
        Decisions in {0, 1}, shape ``(n,)``.
    group : numpy.ndarray
        Each row's group, ints or strings, shape ``(n,)``.

    Returns
    -------
    EqualOpportunityGap
        ``max_g P(ŷ = 1 | y = 1, g) − min_g P(ŷ = 1 | y = 1, g)`` over the groups with
        positives, which groups those were, and which were skipped.

    Raises
    ------
    ValueError
        If an array is empty or not 1-D, if the lengths differ, if ``y_true`` or
        ``y_pred`` hold a value other than 0 and 1, if ``group`` holds neither ints nor
        strings, or if fewer than 2 groups hold positives.
    """
    y = _labels(y_true, name="y_true")
    pred = _labels(y_pred, name="y_pred")
    if pred.shape != y.shape:
        raise ValueError(f"`y_pred` must have the shape of `y_true` {y.shape}; got {pred.shape}")
    names, index = _groups(group, y.size)
    gap = _equal_opportunity(_tprs(y, pred, index), names)
    if len(gap.groups) < 2:
        raise ValueError(
            "`y_true` must hold positives in at least 2 groups for equal opportunity; "
            f"got positives in {list(gap.groups)} of {names}"
        )
    return gap


def fairness_report(
    y_true: np.ndarray, y_score: np.ndarray, group: np.ndarray, *, threshold: float
) -> FairnessReport:
    """Return both fairness gaps of the decisions ``y_score >= threshold``, with per-group rates.

    Parameters
    ----------
    y_true : numpy.ndarray
        Labels in {0, 1}, shape ``(n,)``.
    y_score : numpy.ndarray
        Predicted probabilities, finite and in [0, 1], shape ``(n,)``.
    group : numpy.ndarray
        Each row's group, ints or strings, shape ``(n,)``, with at least 2 groups.
    threshold : float
        Decision threshold in [0, 1].

    Returns
    -------
    FairnessReport
        ``demographic_parity_difference``, ``equal_opportunity_difference`` (``nan`` when
        fewer than 2 groups hold positives), ``equal_opportunity_groups`` (the groups it
        compares) and ``groups``: for each group, sorted, its ``count``, ``positives``,
        ``positive_prediction_rate`` and ``true_positive_rate`` (``nan`` without
        positives).

    Raises
    ------
    ValueError
        If the arrays are empty, not 1-D or of different lengths, if ``y_true`` holds a
        value other than 0 and 1, if ``y_score`` is not finite or leaves [0, 1], if
        ``threshold`` is not in [0, 1], or if ``group`` holds neither ints nor strings,
        or fewer than 2 groups.
    """
    y, p = _checked(y_true, y_score, probabilities=True)
    _check_unit("threshold", threshold)
    names, index = _groups(group, y.size)
    pred = p >= threshold
    counts = np.bincount(index, minlength=len(names))
    positives = np.bincount(index, weights=y, minlength=len(names)).astype(np.int64)
    prediction_rates = _rates(pred, index)
    tprs = _tprs(y, pred, index)
    gap = _equal_opportunity(tprs, names)
    return {
        "demographic_parity_difference": float(prediction_rates.max() - prediction_rates.min()),
        "equal_opportunity_difference": gap.difference if len(gap.groups) >= 2 else math.nan,
        "equal_opportunity_groups": list(gap.groups),
        "groups": {
            name: {
                "count": int(counts[i]),
                "positives": int(positives[i]),
                "positive_prediction_rate": float(prediction_rates[i]),
                "true_positive_rate": float(tprs[i]),
            }
            for i, name in enumerate(names)
        },
    }


def _rates(flags: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Share of ``flags`` set within each group."""
    return np.bincount(index, weights=flags) / np.bincount(index)


def _tprs(y: np.ndarray, pred: np.ndarray, index: np.ndarray) -> np.ndarray:
    """True-positive rate per group; ``nan`` for groups without positives."""
    positives = np.bincount(index, weights=y)
    caught = np.bincount(index, weights=y & pred)
    with np.errstate(invalid="ignore", divide="ignore"):
        return caught / positives


def _equal_opportunity(rates: np.ndarray, names: list[Group]) -> EqualOpportunityGap:
    """Gap between the per-group true-positive ``rates``, skipping groups without positives."""
    has_positives = ~np.isnan(rates)
    used = rates[has_positives]
    return EqualOpportunityGap(
        difference=float(used.max() - used.min()) if used.size else math.nan,
        groups=tuple(n for n, keep in zip(names, has_positives, strict=True) if keep),
        skipped=tuple(n for n, keep in zip(names, has_positives, strict=True) if not keep),
    )


def _groups(group: np.ndarray, n: int) -> tuple[list[Group], np.ndarray]:
    """Validate ``group``; return its sorted distinct values and each row's index into them."""
    g = np.asarray(group)
    if g.shape != (n,):
        raise ValueError(f"`group` must have shape ({n},) to match the labels; got {g.shape}")
    if g.dtype.kind not in "biuUO" or (
        g.dtype.kind == "O" and not all(isinstance(v, int | str | np.integer) for v in g.tolist())
    ):
        raise ValueError(f"`group` must hold ints or strings; got dtype {g.dtype}")
    try:
        names, index = np.unique(g, return_inverse=True)
    except TypeError:
        raise ValueError("`group` must not mix ints and strings") from None
    if names.size < 2:
        raise ValueError(f"`group` must hold at least 2 groups; got {names.tolist()}")
    return names.tolist(), index.reshape(-1)
