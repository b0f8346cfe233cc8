"""Class-weighted binary cross-entropy for imbalanced risk labels (defaults, fraud)."""

from __future__ import annotations

import math
from numbers import Real

import numpy as np
import torch
from torch.nn import functional as F


def class_weighted_bce(
    logits: torch.Tensor, targets: torch.Tensor, *, pos_weight: float
) -> torch.Tensor:
    """Return the mean binary cross-entropy of ``logits`` with the positive class weighted.

    Parameters
    ----------
    logits : torch.Tensor
        Raw model outputs, shape ``(n,)``.
    targets : torch.Tensor
        Labels in {0, 1} (floating point), same shape as ``logits``.
    pos_weight : float
        Multiplier of the loss on positive examples; 1.0 is the plain BCE.

    Returns
    -------
    torch.Tensor
        A scalar: ``mean(-pos_weight * y * log σ(z) - (1 - y) * log(1 - σ(z)))``.

    Raises
    ------
    ValueError
        If the shapes differ or ``pos_weight`` is not a positive finite number.

    Notes
    -----
    The mean divides by the number of examples, not by the sum of the class weights (as
    ``torch.nn.CrossEntropyLoss`` with class weights does), so every example's term depends
    only on its own row; that is what DP-SGD's per-sample gradients with
    ``loss_reduction="mean"`` expect.
    """
    if logits.shape != targets.shape:
        raise ValueError(
            f"`targets` must have the shape of `logits` {tuple(logits.shape)}; "
            f"got {tuple(targets.shape)}"
        )
    _check_pos_weight(pos_weight)
    weight = logits.new_tensor(float(pos_weight))
    return F.binary_cross_entropy_with_logits(logits, targets, pos_weight=weight)


def balanced_pos_weight(labels: np.ndarray) -> float:
    """Return the positive-class weight that balances the classes: ``n_neg / n_pos``.

    Parameters
    ----------
    labels : numpy.ndarray
        Binary labels in {0, 1}, shape ``(n,)``.

    Returns
    -------
    float
        ``n_negative / n_positive``. If either class is absent the ratio is undefined (no
        positives) or zero (no negatives, which would switch the loss off), and 1.0 (the
        unweighted loss) is returned instead.

    Raises
    ------
    ValueError
        If ``labels`` is empty, not 1-D, or holds values other than 0 and 1.
    """
    y = np.asarray(labels)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"`labels` must be a non-empty 1-D array; got shape {y.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"`labels` must hold only 0 and 1; got values {np.unique(y)[:10]}")
    n_pos = int(np.count_nonzero(y))
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return 1.0
    return n_neg / n_pos


def resolve_pos_weight(spec_pos_weight: float | None, labels: np.ndarray) -> float:
    """Return the positive-class weight to train with.

    Parameters
    ----------
    spec_pos_weight : float | None
        ``TrainSpec.pos_weight``: a positive number is used as given; ``None`` means
        balanced from ``labels`` (:func:`balanced_pos_weight`).
    labels : numpy.ndarray
        The institution's training labels, in {0, 1}.

    Returns
    -------
    float
        A positive, finite weight.

    Raises
    ------
    ValueError
        If ``spec_pos_weight`` is given but not positive and finite, or (when it is
        ``None``) ``labels`` are invalid.
    """
    if spec_pos_weight is None:
        return balanced_pos_weight(labels)
    _check_pos_weight(spec_pos_weight)
    return float(spec_pos_weight)


def _check_pos_weight(pos_weight: float) -> None:
    """Raise ``ValueError`` unless ``pos_weight`` is a positive finite number."""
    if isinstance(pos_weight, bool) or not (
        isinstance(pos_weight, Real) and math.isfinite(pos_weight) and pos_weight > 0
    ):
        raise ValueError(f"`pos_weight` must be a positive finite number; got {pos_weight!r}")
