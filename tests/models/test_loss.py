"""Class-weighted BCE and the choice of the positive-class weight."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from fedrisk.models import balanced_pos_weight, class_weighted_bce, resolve_pos_weight


def test_hand_computed_weighted_loss() -> None:
    # Logits 0 give sigmoid 0.5, so each row costs ln 2 times its weight:
    # (3 * ln 2 + 1 * ln 2) / 2 rows = 2 ln 2.
    logits = torch.zeros(2)
    targets = torch.tensor([1.0, 0.0])

    loss = class_weighted_bce(logits, targets, pos_weight=3.0)

    assert loss.item() == pytest.approx(2 * math.log(2), rel=1e-6)


def test_unit_weight_is_plain_bce() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(64, generator=gen)
    targets = (torch.rand(64, generator=gen) < 0.3).float()

    loss = class_weighted_bce(logits, targets, pos_weight=1.0)

    assert loss.item() == pytest.approx(F.binary_cross_entropy_with_logits(logits, targets).item())


def test_weight_scales_only_the_positive_rows() -> None:
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(32, generator=gen)
    targets = (torch.rand(32, generator=gen) < 0.5).float()
    per_row = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")

    loss = class_weighted_bce(logits, targets, pos_weight=4.0)

    expected = (per_row * torch.where(targets == 1, 4.0, 1.0)).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_loss_is_differentiable() -> None:
    logits = torch.tensor([0.3, -1.2], requires_grad=True)

    class_weighted_bce(logits, torch.tensor([1.0, 0.0]), pos_weight=2.0).backward()

    assert logits.grad is not None
    assert torch.isfinite(logits.grad).all()


def test_shape_mismatch_raises() -> None:
    with pytest.raises(ValueError, match=r"`targets` must have the shape of `logits` \(3,\)"):
        class_weighted_bce(torch.zeros(3), torch.zeros(3, 1), pos_weight=1.0)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("inf"), float("nan"), True])
def test_bad_pos_weight_raises(bad: float) -> None:
    with pytest.raises(ValueError, match="`pos_weight` must be a positive finite number"):
        class_weighted_bce(torch.zeros(2), torch.zeros(2), pos_weight=bad)


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (np.array([0, 0, 0, 1]), 3.0),
        (np.array([1, 1, 0]), 0.5),
        (np.array([True, False, False]), 2.0),
        (np.array([0, 0, 0]), 1.0),  # no positives: documented fallback
        (np.array([1, 1]), 1.0),  # no negatives: documented fallback
    ],
)
def test_balanced_pos_weight(labels: np.ndarray, expected: float) -> None:
    assert balanced_pos_weight(labels) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        (np.array([]), "`labels` must be a non-empty 1-D array"),
        (np.zeros((2, 2)), "`labels` must be a non-empty 1-D array"),
        (np.array([0, 2]), "`labels` must hold only 0 and 1"),
    ],
)
def test_balanced_pos_weight_rejects_bad_labels(labels: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        balanced_pos_weight(labels)


def test_resolve_pos_weight() -> None:
    labels = np.array([0, 0, 0, 0, 1])

    assert resolve_pos_weight(None, labels) == pytest.approx(4.0)
    assert resolve_pos_weight(2.5, labels) == 2.5
    assert resolve_pos_weight(np.float32(2.0), labels) == 2.0


@pytest.mark.parametrize("bad", [0.0, -2.0, float("nan")])
def test_resolve_pos_weight_rejects_bad_weights(bad: float) -> None:
    with pytest.raises(ValueError, match="`pos_weight` must be a positive finite number"):
        resolve_pos_weight(bad, np.array([0, 1]))
