"""Fairness from counts: what one institution can share without sharing a row.

:func:`fedrisk.models.fairness.fairness_report` needs every row's label, score and group.
In a consortium no one holds all of them, so each bank reduces its own rows to four
counts per group of a protected attribute (rows, rows flagged, positives, positives
flagged) and sends only those. Both fairness gaps are functions of the counts, the
counts of several banks add up, and the gaps of the summed counts equal the gaps of the
pooled rows exactly (a test checks it).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from fedrisk.models.fairness import FairnessReport, Group, GroupRates
from fedrisk.models.metrics import _check_unit, _checked

#: The four counts kept per group, in wire order.
COUNT_FIELDS = ("count", "flagged", "positives", "caught")


@dataclass(frozen=True)
class GroupCounts:
    """Per-group decision counts for one protected attribute.

    Attributes
    ----------
    groups : tuple[str, ...]
        The groups present, sorted.
    count : tuple[int, ...]
        Rows in each group.
    flagged : tuple[int, ...]
        Rows decided positive (``score >= threshold``).
    positives : tuple[int, ...]
        Rows whose label is positive.
    caught : tuple[int, ...]
        Positive rows decided positive (true positives).

    Raises
    ------
    ValueError
        If the tuples differ in length, a group repeats, or a count is negative or
        inconsistent (more flagged or positive rows than rows, more caught than either).
    """

    groups: tuple[str, ...]
    count: tuple[int, ...]
    flagged: tuple[int, ...]
    positives: tuple[int, ...]
    caught: tuple[int, ...]

    def __post_init__(self) -> None:
        n = len(self.groups)
        if any(len(getattr(self, f)) != n for f in COUNT_FIELDS):
            raise ValueError(
                f"every count must list one value per group ({n} groups); got lengths "
                f"{[len(getattr(self, f)) for f in COUNT_FIELDS]}"
            )
        if len(set(self.groups)) != n:
            raise ValueError(f"`groups` must be distinct; got {list(self.groups)}")
        for i, group in enumerate(self.groups):
            c, f, p, t = (int(getattr(self, name)[i]) for name in COUNT_FIELDS)
            if min(c, f, p, t) < 0 or f > c or p > c or t > min(f, p):
                raise ValueError(
                    f"counts of group {group!r} must satisfy 0 <= caught <= flagged, "
                    f"positives <= count; got count={c}, flagged={f}, positives={p}, caught={t}"
                )

    def as_dict(self) -> dict[str, list[str] | list[int]]:
        """Return the counts as plain lists (the wire form)."""
        out: dict[str, list[str] | list[int]] = {"groups": list(self.groups)}
        out.update({f: [int(v) for v in getattr(self, f)] for f in COUNT_FIELDS})
        return out


def group_counts(
    y_true: np.ndarray, y_score: np.ndarray, group: np.ndarray, *, threshold: float
) -> GroupCounts:
    """Count one institution's decisions per group.

    Parameters
    ----------
    y_true : numpy.ndarray
        Labels in {0, 1}, shape ``(n,)``.
    y_score : numpy.ndarray
        Predicted probabilities in [0, 1], shape ``(n,)``.
    group : numpy.ndarray
        Each row's group, shape ``(n,)``; values are compared as strings. One group is
        enough (a bank may serve only one).
    threshold : float
        Decision threshold in [0, 1].

    Returns
    -------
    GroupCounts
        The counts of every group present.

    Raises
    ------
    ValueError
        If the arrays are empty, malformed or of different lengths, or ``threshold`` is
        not in [0, 1].
    """
    y, p = _checked(y_true, y_score, probabilities=True)
    _check_unit("threshold", threshold)
    g = np.asarray(group).astype(str)
    if g.shape != y.shape:
        raise ValueError(f"`group` must have shape {y.shape} to match the labels; got {g.shape}")
    names, index = np.unique(g, return_inverse=True)
    index = index.reshape(-1)
    flagged = p >= threshold
    k = len(names)
    return GroupCounts(
        groups=tuple(str(n) for n in names),
        count=tuple(int(v) for v in np.bincount(index, minlength=k)),
        flagged=tuple(int(v) for v in np.bincount(index, weights=flagged, minlength=k)),
        positives=tuple(int(v) for v in np.bincount(index, weights=y, minlength=k)),
        caught=tuple(int(v) for v in np.bincount(index, weights=y & flagged, minlength=k)),
    )


def merge_counts(parts: Iterable[GroupCounts]) -> GroupCounts:
    """Add the counts of several institutions, group by group.

    Raises
    ------
    ValueError
        If ``parts`` is empty.
    """
    totals: dict[str, list[int]] = {}
    for part in parts:
        for i, name in enumerate(part.groups):
            row = totals.setdefault(name, [0, 0, 0, 0])
            for j, field in enumerate(COUNT_FIELDS):
                row[j] += int(getattr(part, field)[i])
    if not totals:
        raise ValueError("`parts` must hold at least one institution's counts; got none")
    names = sorted(totals)
    columns = {f: tuple(totals[n][j] for n in names) for j, f in enumerate(COUNT_FIELDS)}
    return GroupCounts(groups=tuple(names), **columns)


def report_from_counts(counts: GroupCounts) -> FairnessReport:
    """Return both fairness gaps and the per-group rates implied by ``counts``.

    Parameters
    ----------
    counts : GroupCounts
        One institution's or several institutions' summed counts.

    Returns
    -------
    FairnessReport
        As :func:`fedrisk.models.fairness.fairness_report`:
        ``demographic_parity_difference`` (``nan`` with fewer than 2 groups),
        ``equal_opportunity_difference`` (``nan`` unless 2 groups hold positives),
        ``equal_opportunity_groups`` and per-group ``count``, ``positives``,
        ``positive_prediction_rate`` and ``true_positive_rate`` (``nan`` without
        positives).
    """
    groups: dict[Group, GroupRates] = {}
    for i, name in enumerate(counts.groups):
        c, f, p, t = (int(getattr(counts, field)[i]) for field in COUNT_FIELDS)
        groups[name] = GroupRates(
            count=c,
            positives=p,
            positive_prediction_rate=f / c if c else math.nan,
            true_positive_rate=t / p if p else math.nan,
        )
    rates = [g["positive_prediction_rate"] for g in groups.values() if g["count"]]
    with_positives = [n for n, g in groups.items() if g["positives"]]
    tprs = [groups[n]["true_positive_rate"] for n in with_positives]
    return {
        "demographic_parity_difference": max(rates) - min(rates) if len(rates) >= 2 else math.nan,
        "equal_opportunity_difference": max(tprs) - min(tprs) if len(tprs) >= 2 else math.nan,
        "equal_opportunity_groups": list(with_positives),
        "groups": groups,
    }
