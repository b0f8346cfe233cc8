"""Explanations of a tabular risk model: permutation importance and Integrated Gradients.

Both are computed where the rows are (at each institution) and reduced to one
per-feature *sum over rows* plus the row count (:class:`ImportanceSums`), so the
coordinator can form the row-weighted mean over institutions (:func:`pool_importances`)
without any row leaving a bank. Both are additive over rows, so that mean equals the
computation on the pooled rows (permutations drawn within each institution).

A *feature* is one column of the institution's table: a categorical feature's one-hot
columns form one group (:class:`FeatureGroup`), permuted together and with their
attributions added up.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np
import torch
from torch import nn

from .tabular import predict_logits


class ExplainMethod(str, Enum):
    """Which explanation to compute."""

    permutation = "permutation"
    integrated_gradients = "integrated_gradients"


#: Each method's name in plots.
TITLES = {
    ExplainMethod.permutation: "Permutation importance",
    ExplainMethod.integrated_gradients: "Integrated Gradients",
}

#: What each method's importance measures, for plots and run records.
UNITS = {
    ExplainMethod.permutation: "mean increase in log-loss when the feature is permuted",
    ExplainMethod.integrated_gradients: "mean |Integrated Gradients attribution| (logit)",
}


@dataclass(frozen=True)
class FeatureGroup:
    """One table column and the encoded model inputs it occupies.

    Parameters
    ----------
    name : str
        The column's name.
    columns : tuple[int, ...]
        Indices of its encoded inputs (one for a numeric feature, one per level for a
        categorical one).
    """

    name: str
    columns: tuple[int, ...]


def feature_groups(widths: Sequence[tuple[str, int]]) -> list[FeatureGroup]:
    """Lay consecutive features of the given widths over the encoded columns.

    Parameters
    ----------
    widths : Sequence[tuple[str, int]]
        ``(name, number of encoded columns)`` per feature, in encoding order.

    Returns
    -------
    list[FeatureGroup]
        One group per feature.

    Raises
    ------
    ValueError
        If a width is below 1 or a name repeats.
    """
    groups, start = [], 0
    for name, width in widths:
        if width < 1:
            raise ValueError(f"feature {name!r} must occupy at least one column; got {width}")
        groups.append(FeatureGroup(name, tuple(range(start, start + width))))
        start += width
    names = [g.name for g in groups]
    if len(set(names)) != len(names):
        raise ValueError(f"feature names must be unique; got {names}")
    return groups


@dataclass(frozen=True)
class ImportanceSums:
    """Per-feature importance summed over one party's rows, and how many rows.

    Attributes
    ----------
    sums : numpy.ndarray
        Float64, one entry per feature group.
    rows : int
        Number of rows summed (1 for a value that is already a mean).
    """

    sums: np.ndarray
    rows: int

    def mean(self) -> np.ndarray:
        """Per-feature mean over the rows."""
        out: np.ndarray = self.sums / self.rows
        return out


def permutation_importance(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    groups: Sequence[FeatureGroup],
    *,
    seed: int,
    repeats: int = 1,
) -> ImportanceSums:
    """Increase in per-row log-loss when one feature's values are permuted across rows.

    Parameters
    ----------
    model : torch.nn.Module
        A model returning logits of shape ``(n,)``.
    x : numpy.ndarray
        Encoded features, shape ``(n, n_inputs)``.
    y : numpy.ndarray
        0/1 labels, shape ``(n,)``.
    groups : Sequence[FeatureGroup]
        The features; each group's columns are permuted together.
    seed : int
        Seed of ``numpy.random.default_rng``; for each repeat, then each group in order,
        one ``rng.permutation(n)`` is drawn.
    repeats : int (default: 1)
        Permutations per feature; the sums are averaged over them.

    Returns
    -------
    ImportanceSums
        ``sums[g]`` = mean over repeats of Σ_i [ℓ(x_i with group g from row π(i)) − ℓ(x_i)],
        where ℓ is the binary cross-entropy of the logit; ``rows`` = n.

    Raises
    ------
    ValueError
        If the shapes disagree, ``repeats`` is below 1 or a group's column is out of range.
    """
    features, labels = _check(x, y, groups)
    if repeats < 1:
        raise ValueError(f"`repeats` must be at least 1; got {repeats}")
    n = features.shape[0]
    base = _log_loss(predict_logits(model, features), labels)
    rng = np.random.default_rng(seed)
    sums = np.zeros(len(groups), dtype=np.float64)
    for _ in range(repeats):
        for g, group in enumerate(groups):
            order = rng.permutation(n)
            cols = list(group.columns)
            shuffled = features.copy()
            shuffled[:, cols] = features[order][:, cols]
            sums[g] += float((_log_loss(predict_logits(model, shuffled), labels) - base).sum())
    return ImportanceSums(sums / repeats, n)


def integrated_gradients(
    model: nn.Module, x: np.ndarray, baseline: np.ndarray, *, steps: int = 64
) -> np.ndarray:
    """Integrated Gradients of the model's logit (Sundararajan et al., 2017).

    Parameters
    ----------
    model : torch.nn.Module
        A model returning logits of shape ``(n,)``; a float64 copy in eval mode is used.
    x : numpy.ndarray
        Encoded features, shape ``(n, n_inputs)``.
    baseline : numpy.ndarray
        The reference input, shape ``(n_inputs,)`` (fedrisk uses feature means).
    steps : int (default: 64)
        Points of the midpoint rule along the straight path from baseline to ``x``.

    Returns
    -------
    numpy.ndarray
        Float64 attributions, shape ``(n, n_inputs)``. Completeness: each row sums to
        ``f(x) − f(baseline)`` up to the quadrature error (exact for a linear model).

    Raises
    ------
    ValueError
        If ``x`` is not 2-D, ``baseline`` does not match its width, or ``steps`` < 1.
    """
    features = np.asarray(x, dtype=np.float64)
    if features.ndim != 2:
        raise ValueError(f"`x` must be a 2-D array (rows, features); got shape {features.shape}")
    base = np.asarray(baseline, dtype=np.float64)
    if base.shape != (features.shape[1],):
        raise ValueError(f"`baseline` must have shape ({features.shape[1]},); got {base.shape}")
    if steps < 1:
        raise ValueError(f"`steps` must be at least 1; got {steps}")
    net = copy.deepcopy(model).double().eval()
    alphas = torch.tensor((np.arange(steps) + 0.5) / steps, dtype=torch.float64)
    ref = torch.from_numpy(base)
    chunk = max(1, 32_768 // steps)
    out = np.empty_like(features)
    for start in range(0, features.shape[0], chunk):
        rows = torch.from_numpy(features[start : start + chunk])
        delta = rows - ref  # (m, d)
        path = (ref + alphas[:, None, None] * delta[None]).reshape(-1, rows.shape[1])
        path.requires_grad_(True)
        (grad,) = torch.autograd.grad(net(path).sum(), path)
        mean_grad = grad.reshape(steps, rows.shape[0], rows.shape[1]).mean(dim=0)
        out[start : start + chunk] = (delta * mean_grad).detach().numpy()
    return out


def ig_importance(
    model: nn.Module,
    x: np.ndarray,
    baseline: np.ndarray,
    groups: Sequence[FeatureGroup],
    *,
    steps: int = 64,
) -> ImportanceSums:
    """Per-feature sum over rows of |Integrated Gradients attribution| (groups added first).

    Parameters
    ----------
    model, x, baseline, steps
        As for :func:`integrated_gradients`.
    groups : Sequence[FeatureGroup]
        The features; a group's attribution is the sum of its columns' attributions.

    Returns
    -------
    ImportanceSums
        ``sums[g]`` = Σ_i |Σ_{c ∈ g} IG_ic|; ``rows`` = n.

    Raises
    ------
    ValueError
        As for :func:`integrated_gradients`, or if a group's column is out of range.
    """
    attributions = integrated_gradients(model, x, baseline, steps=steps)
    _check_groups(groups, attributions.shape[1])
    grouped = np.stack([attributions[:, list(g.columns)].sum(axis=1) for g in groups], axis=1)
    return ImportanceSums(np.abs(grouped).sum(axis=0), attributions.shape[0])


def pool_importances(parts: Sequence[ImportanceSums]) -> np.ndarray:
    """Row-weighted mean of per-party importances: Σ sums / Σ rows.

    Parameters
    ----------
    parts : Sequence[ImportanceSums]
        One entry per institution, all over the same features.

    Returns
    -------
    numpy.ndarray
        Float64 per-feature importance.

    Raises
    ------
    ValueError
        If there are no parts, their lengths differ, or no rows were summed.
    """
    if not parts:
        raise ValueError("`parts` must hold at least one institution's importances; got none")
    widths = {len(p.sums) for p in parts}
    if len(widths) != 1:
        raise ValueError(f"every part must cover the same features; got lengths {sorted(widths)}")
    rows = sum(p.rows for p in parts)
    if rows < 1:
        raise ValueError(f"the parts must sum over at least one row; got {rows}")
    total: np.ndarray = np.sum([p.sums for p in parts], axis=0) / rows
    return total


def _log_loss(logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-row binary cross-entropy of logits, computed stably."""
    out: np.ndarray = np.logaddexp(0.0, logits) - y * logits
    return out


def _check(
    x: np.ndarray, y: np.ndarray, groups: Sequence[FeatureGroup]
) -> tuple[np.ndarray, np.ndarray]:
    features = np.asarray(x, dtype=np.float32)
    labels = np.asarray(y, dtype=np.float64)
    if features.ndim != 2:
        raise ValueError(f"`x` must be a 2-D array (rows, features); got shape {features.shape}")
    if labels.shape != (features.shape[0],):
        raise ValueError(f"`y` must have shape ({features.shape[0]},); got {labels.shape}")
    _check_groups(groups, features.shape[1])
    return features, labels


def _check_groups(groups: Sequence[FeatureGroup], width: int) -> None:
    for group in groups:
        if not group.columns or min(group.columns) < 0 or max(group.columns) >= width:
            raise ValueError(
                f"feature {group.name!r} must use columns in [0, {width}); got {group.columns}"
            )
