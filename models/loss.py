"""Training losses for imbalanced risk labels (defaults, fraud): one per ``LossKind``.

Three losses, each a mean of per-row terms so that DP-SGD's per-sample gradients (with
``loss_reduction="mean"``) see every row's term depend on that row alone:

- ``bce``: binary cross-entropy with the positive class weighted (:func:`class_weighted_bce`);
- ``asymmetric_cost``: cost-sensitive cross-entropy (:func:`asymmetric_cost_bce`), where
  a missed positive (a default let through) costs ``cost_ratio`` false alarms;
- ``focal``: focal loss (:func:`focal_loss`), which down-weights the easy rows.

:func:`build_loss` picks one from a :class:`~fedrisk.models.spec.TrainSpec`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real

import numpy as np
import torch
from torch.nn import functional as F

from fedrisk.models.spec import LossKind, TrainSpec


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


def asymmetric_cost_bce(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    cost_fn: float,
    cost_fp: float = 1.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """Return the cost-sensitive cross-entropy: a missed positive costs ``cost_fn``.

    Parameters
    ----------
    logits : torch.Tensor
        Raw model outputs, shape ``(n,)``.
    targets : torch.Tensor
        Labels in {0, 1} (floating point), same shape as ``logits``.
    cost_fn : float
        Cost of a missed positive (a false negative: the default that was let through).
    cost_fp : float (default: 1.0)
        Cost of a false alarm (a false positive: the good borrower turned away).
    reduction : str (default: "mean")
        ``"mean"`` (a scalar) or ``"none"`` (one term per row).

    Returns
    -------
    torch.Tensor
        ``mean(cost_fn · y · softplus(−z) + cost_fp · (1 − y) · softplus(z))``, i.e.
        ``−cost_fn · y · log σ(z) − cost_fp · (1 − y) · log(1 − σ(z))`` per row.

    Raises
    ------
    ValueError
        If the shapes differ, a cost is not a positive finite number, or ``reduction`` is
        neither ``"mean"`` nor ``"none"``.

    Notes
    -----
    Minimising it over a calibrated score ``p`` gives the score
    ``p' = r·p / (r·p + 1 − p)`` with ``r = cost_fn / cost_fp``, and ``p' ≥ 0.5`` exactly
    when ``p ≥ 1 / (1 + r)``, the Bayes-optimal decision under that cost ratio (Elkan,
    "The Foundations of Cost-Sensitive Learning", IJCAI 2001). The model's decisions at
    the usual threshold 0.5 are thus cost-aware; its scores are not calibrated
    probabilities any more (the calibration metrics show by how much). Under DP-SGD,
    per-sample clipping also caps the up-weighted rows' gradients, which mutes the
    weighting when the clipping norm is tight.
    """
    _check_shapes(logits, targets)
    _check_positive("cost_fn", cost_fn)
    _check_positive("cost_fp", cost_fp)
    per_row = float(cost_fn) * targets * F.softplus(-logits) + float(cost_fp) * (
        1.0 - targets
    ) * F.softplus(logits)
    return _reduce(per_row, reduction)


def focal_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    gamma: float,
    pos_weight: float = 1.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """Return the focal loss of Lin et al. ("Focal Loss for Dense Object Detection", 2017).

    Parameters
    ----------
    logits : torch.Tensor
        Raw model outputs, shape ``(n,)``.
    targets : torch.Tensor
        Labels in {0, 1} (floating point), same shape as ``logits``.
    gamma : float
        Focusing exponent, finite and >= 0; 0 is the class-weighted BCE.
    pos_weight : float (default: 1.0)
        Weight of the positive rows (the α-balancing of the paper, as a ratio).
    reduction : str (default: "mean")
        ``"mean"`` (a scalar) or ``"none"`` (one term per row).

    Returns
    -------
    torch.Tensor
        ``mean(−w_t · (1 − p_t)^γ · log p_t)`` with ``p_t = σ(z)`` for positives and
        ``1 − σ(z)`` for negatives, ``w_t = pos_weight`` for positives and 1 otherwise.

    Raises
    ------
    ValueError
        If the shapes differ, ``gamma`` is negative or not finite, ``pos_weight`` is not a
        positive finite number, or ``reduction`` is neither ``"mean"`` nor ``"none"``.

    Notes
    -----
    Computed from the logits without forming ``σ(z)``: ``log p_t = −softplus(∓z)`` and
    ``(1 − p_t)^γ = exp(−γ · softplus(±z))``, so large logits neither overflow nor lose
    the gradient.
    """
    _check_shapes(logits, targets)
    if isinstance(gamma, bool) or not (
        isinstance(gamma, Real) and math.isfinite(gamma) and gamma >= 0
    ):
        raise ValueError(f"`gamma` must be a finite number >= 0; got {gamma!r}")
    _check_pos_weight(pos_weight)
    signed = torch.where(targets > 0.5, logits, -logits)  # z for positives, −z for negatives
    nll = F.softplus(-signed)  # −log p_t
    modulating = torch.exp(-float(gamma) * F.softplus(signed))  # (1 − p_t)^γ
    weight = torch.where(targets > 0.5, float(pos_weight), 1.0)
    return _reduce(weight * modulating * nll, reduction)


@dataclass(frozen=True)
class RiskLoss:
    """One institution's training loss, resolved from its ``TrainSpec`` and labels.

    Parameters
    ----------
    kind : LossKind
        ``bce``, ``asymmetric_cost`` or ``focal``.
    pos_weight : float (default: 1.0)
        Positive-class weight of ``bce`` and ``focal``.
    cost_ratio : float (default: 1.0)
        ``asymmetric_cost``: cost of a missed positive over that of a false alarm.
    gamma : float (default: 2.0)
        ``focal``: focusing exponent.
    """

    kind: LossKind
    pos_weight: float = 1.0
    cost_ratio: float = 1.0
    gamma: float = 2.0

    def per_example(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Return each row's loss term, shape ``(n,)``."""
        if self.kind is LossKind.asymmetric_cost:
            return asymmetric_cost_bce(logits, targets, cost_fn=self.cost_ratio, reduction="none")
        if self.kind is LossKind.focal:
            return focal_loss(
                logits, targets, gamma=self.gamma, pos_weight=self.pos_weight, reduction="none"
            )
        _check_shapes(logits, targets)
        weight = logits.new_tensor(float(self.pos_weight))
        return F.binary_cross_entropy_with_logits(
            logits, targets, pos_weight=weight, reduction="none"
        )

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Return the mean loss over the rows (0 for an empty batch)."""
        if self.kind is LossKind.bce and logits.numel():
            return class_weighted_bce(logits, targets, pos_weight=self.pos_weight)
        per_row = self.per_example(logits, targets)
        return per_row.mean() if per_row.numel() else per_row.sum()


def build_loss(spec: TrainSpec, labels: np.ndarray) -> RiskLoss:
    """Return the loss ``spec`` asks for, with ``pos_weight`` resolved from ``labels``.

    Parameters
    ----------
    spec : TrainSpec
        ``loss``, ``pos_weight``, ``cost_ratio`` and ``focal_gamma``.
    labels : numpy.ndarray
        The institution's own training labels (for a balanced ``pos_weight``).

    Returns
    -------
    RiskLoss
        The loss; ``asymmetric_cost`` ignores ``pos_weight`` (the cost ratio weighs the
        positives).

    Raises
    ------
    ValueError
        If ``pos_weight`` or ``labels`` are invalid, or ``asymmetric_cost`` is asked for
        without a cost ratio.
    """
    kind = LossKind(spec.loss)
    if kind is LossKind.asymmetric_cost:
        if spec.cost_ratio is None:
            raise ValueError("`train.cost_ratio` must be set for loss asymmetric_cost; got None")
        return RiskLoss(kind=kind, cost_ratio=float(spec.cost_ratio))
    return RiskLoss(
        kind=kind,
        pos_weight=resolve_pos_weight(spec.pos_weight, labels),
        gamma=float(spec.focal_gamma),
    )


def _check_shapes(logits: torch.Tensor, targets: torch.Tensor) -> None:
    if logits.shape != targets.shape:
        raise ValueError(
            f"`targets` must have the shape of `logits` {tuple(logits.shape)}; "
            f"got {tuple(targets.shape)}"
        )


def _check_positive(name: str, value: float) -> None:
    if isinstance(value, bool) or not (
        isinstance(value, Real) and math.isfinite(value) and value > 0
    ):
        raise ValueError(f"`{name}` must be a positive finite number; got {value!r}")


def _reduce(per_row: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "none":
        return per_row
    if reduction == "mean":
        return per_row.mean()
    raise ValueError(f"`reduction` must be 'mean' or 'none'; got {reduction!r}")
