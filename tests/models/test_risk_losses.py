"""Asymmetric-cost and focal losses: hand-computed values, config, and real DP-SGD steps."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from opacus.grad_sample import GradSampleModule
from torch import nn
from torch.nn import functional as F

from fedrisk.client.dp_trainer import DPSettings, GradSampleMode, NoiseSource, train_private
from fedrisk.client.trainer import train_local
from fedrisk.conf.task import TaskConfig
from fedrisk.models import (
    LossKind,
    ModelSpec,
    RiskLoss,
    TrainSpec,
    asymmetric_cost_bce,
    build_loss,
    build_model,
    focal_loss,
    get_weights,
    predict_proba,
)

LOSSES = [
    RiskLoss(LossKind.asymmetric_cost, cost_ratio=4.0),
    RiskLoss(LossKind.focal, pos_weight=3.0, gamma=2.0),
]


def test_asymmetric_cost_hand_computed() -> None:
    # z = 0: every row costs ln 2 times its cost; z = ln 3: σ = 3/4.
    logits = torch.tensor([0.0, 0.0, math.log(3.0)])
    targets = torch.tensor([1.0, 0.0, 0.0])

    loss = asymmetric_cost_bce(logits, targets, cost_fn=5.0, cost_fp=2.0)

    expected = (5 * math.log(2) + 2 * math.log(2) + 2 * -math.log(1 - 0.75)) / 3
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_asymmetric_cost_with_unit_costs_is_plain_bce() -> None:
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(50, generator=gen) * 3
    targets = (torch.rand(50, generator=gen) < 0.3).float()

    loss = asymmetric_cost_bce(logits, targets, cost_fn=1.0)

    assert loss.item() == pytest.approx(F.binary_cross_entropy_with_logits(logits, targets).item())


def test_focal_loss_hand_computed() -> None:
    # Positive at σ(z) = 3/4: (1/4)^2 · −ln(3/4) · α; negative at σ(z) = 1/2: (1/2)^2 · ln 2.
    logits = torch.tensor([math.log(3.0), 0.0])
    targets = torch.tensor([1.0, 0.0])

    loss = focal_loss(logits, targets, gamma=2.0, pos_weight=3.0)

    expected = (3.0 * 0.25**2 * -math.log(0.75) + 0.5**2 * math.log(2)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_focal_loss_with_gamma_zero_is_weighted_bce() -> None:
    gen = torch.Generator().manual_seed(4)
    logits = torch.randn(40, generator=gen) * 2
    targets = (torch.rand(40, generator=gen) < 0.5).float()

    loss = focal_loss(logits, targets, gamma=0.0, pos_weight=2.5)

    weighted = F.binary_cross_entropy_with_logits(logits, targets, pos_weight=torch.tensor(2.5))
    assert loss.item() == pytest.approx(weighted.item(), rel=1e-6)


def test_focal_loss_is_finite_for_extreme_logits() -> None:
    logits = torch.tensor([80.0, -80.0, 80.0, -80.0], requires_grad=True)
    targets = torch.tensor([1.0, 0.0, 0.0, 1.0])

    loss = focal_loss(logits, targets, gamma=2.0)
    loss.backward()

    assert math.isfinite(loss.item()) and loss.item() == pytest.approx(80.0 / 2, rel=1e-6)
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: asymmetric_cost_bce(torch.zeros(2), torch.zeros(2), cost_fn=0.0), "`cost_fn`"),
        (lambda: focal_loss(torch.zeros(2), torch.zeros(2), gamma=-1.0), "`gamma` must be"),
        (lambda: focal_loss(torch.zeros(2), torch.zeros(3), gamma=1.0), "must have the shape"),
        (
            lambda: focal_loss(torch.zeros(2), torch.zeros(2), gamma=1.0, reduction="sum"),
            "`reduction` must be",
        ),
    ],
)
def test_bad_loss_arguments_raise(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


def test_task_cost_ratio_is_the_loss_default_and_train_can_override() -> None:
    task = TaskConfig(name="t", cost_ratio=7.0, train=TrainSpec(loss=LossKind.asymmetric_cost))
    own = TaskConfig(name="t", cost_ratio=7.0, train=TrainSpec(cost_ratio=2.0))

    assert build_loss(task.train, np.array([0, 1])).cost_ratio == 7.0
    assert own.train.cost_ratio == 2.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"loss": "hinge"}, "hinge"),
        ({"cost_ratio": 0.0}, "`train.cost_ratio` must be"),
        ({"focal_gamma": -0.5}, "`train.focal_gamma` must be"),
    ],
)
def test_bad_train_loss_fields_raise(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TrainSpec(**kwargs)


@pytest.mark.filterwarnings("ignore:Full backward hook")
@pytest.mark.parametrize("loss", LOSSES, ids=lambda loss: loss.kind.value)
def test_opacus_per_sample_gradients_are_each_rows_own(loss: RiskLoss) -> None:
    """Under Opacus's hooks (mean reduction), row i's gradient is that of its own term."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 1), nn.Flatten(0))
    x = torch.randn(8, 5)
    y = torch.tensor([1.0, 0, 0, 1, 0, 0, 1, 0])
    gsm = GradSampleModule(model, loss_reduction="mean")

    loss(gsm(x), y).backward()
    first = model[0].weight
    per_sample = first.grad_sample.clone()
    gsm._close()

    for i in range(len(y)):
        row = loss.per_example(model(x[i : i + 1]), y[i : i + 1]).sum()
        (own,) = torch.autograd.grad(row, first)
        torch.testing.assert_close(per_sample[i], own, rtol=1e-4, atol=1e-6)


@pytest.fixture(scope="module")
def problem() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(1500, 6)).astype(np.float32)
    y = (rng.random(1500) < 1 / (1 + np.exp(-(x @ rng.normal(size=6) - 2.0)))).astype(np.float32)
    return x, y


@pytest.mark.parametrize("kind", [LossKind.asymmetric_cost, LossKind.focal])
def test_dp_sgd_with_each_loss_matches_opacus_hooks(problem, kind: LossKind) -> None:
    """A real Opacus DP-SGD round with the loss; fedrisk's linear engine gives the same weights."""
    x, y = problem
    spec = TrainSpec(batch_size=100, loss=kind, cost_ratio=4.0, focal_gamma=2.0)
    trained = {}
    for mode in (GradSampleMode.hooks, GradSampleMode.linear):
        model = build_model(ModelSpec(), 6, seed=0)
        out = train_private(
            model, x, y, spec, DPSettings(0.8, 1.0, NoiseSource.seeded, mode), seed=11
        )
        trained[mode] = (get_weights(model), out.result.loss)
        assert out.mechanism.steps == 15

    (hooks, hooks_loss), (linear, linear_loss) = trained.values()
    for a, b in zip(hooks, linear, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert linear_loss == pytest.approx(hooks_loss, rel=1e-5)
    assert math.isfinite(hooks_loss)


def test_asymmetric_cost_raises_the_flag_rate_with_and_without_dp(problem) -> None:
    """A missed positive costing 8 false alarms makes the model flag more rows.

    Under DP-SGD per-sample clipping caps the up-weighted rows' gradients too, which
    mutes the weighting at a tight clipping norm (C = 1: +0.02 here); at C = 8 it shows.
    """
    x, y = problem
    dp = DPSettings(0.5, 8.0, NoiseSource.seeded, GradSampleMode.linear)
    rates = {}
    for kind in (LossKind.bce, LossKind.asymmetric_cost):
        spec = TrainSpec(epochs=3, batch_size=100, lr=0.02, loss=kind, cost_ratio=8.0)
        plain = build_model(ModelSpec(), 6, seed=0)
        train_local(plain, x, y, spec, seed=1)
        private = build_model(ModelSpec(), 6, seed=0)
        train_private(private, x, y, spec, dp, seed=1)
        rates[kind] = [float(np.mean(predict_proba(m, x) >= 0.5)) for m in (plain, private)]

    for plain_rate, cost_rate in zip(*rates.values(), strict=True):
        assert cost_rate > plain_rate + 0.05
