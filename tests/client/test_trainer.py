"""The plain local trainer: learning, reproducibility, FedProx, class weights, validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import log_loss

from fedrisk.client.trainer import TrainResult, evaluate_model, train_local
from fedrisk.models import (
    METRIC_KEYS,
    ModelKind,
    ModelSpec,
    OptimizerKind,
    TrainSpec,
    build_model,
    get_weights,
    predict_proba,
)

N_FEATURES = 10
MLP = ModelSpec(kind=ModelKind.mlp, hidden=[16, 8], dropout=0.1)
LOGISTIC = ModelSpec(kind=ModelKind.logistic)


def _logistic_problem(
    n: int, *, seed: int, intercept: float = -0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Rows from a known logistic model: P(y=1 | x) = sigmoid(x·w + intercept)."""
    rng = np.random.default_rng(seed)
    w = np.random.default_rng(1234).normal(size=N_FEATURES)  # same truth for every split
    x = rng.normal(size=(n, N_FEATURES)).astype(np.float32)
    p = 1.0 / (1.0 + np.exp(-(x @ w + intercept)))
    return x, (rng.random(n) < p).astype(np.int64)


def _distance(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return math.sqrt(sum(float(np.sum((u - v) ** 2)) for u, v in zip(a, b, strict=True)))


def test_training_decreases_loss_and_learns_the_signal() -> None:
    x, y = _logistic_problem(3_000, seed=0)
    x_test, y_test = _logistic_problem(2_000, seed=1)
    model = build_model(MLP, N_FEATURES, seed=0)
    spec = TrainSpec(epochs=1, batch_size=64, lr=0.01)
    before = evaluate_model(model, x_test, y_test)

    first = train_local(model, x, y, spec, seed=0)
    for round_ in range(1, 4):
        last = train_local(model, x, y, spec, seed=round_)
    after = evaluate_model(model, x_test, y_test)

    assert last.loss < first.loss
    assert after["loss"] < before["loss"]
    assert after["auc"] > 0.8


def test_result_counts_examples_and_steps() -> None:
    x, y = _logistic_problem(1_000, seed=0)
    model = build_model(LOGISTIC, N_FEATURES, seed=0)

    result = train_local(model, x, y, TrainSpec(epochs=3, batch_size=64), seed=0)

    assert isinstance(result, TrainResult)
    assert result.n_examples == 1_000
    assert result.steps == 3 * 16  # ceil(1000 / 64) = 16 batches per epoch
    assert math.isfinite(result.loss)


@pytest.mark.parametrize("optimizer", [OptimizerKind.adam, OptimizerKind.sgd])
def test_same_seed_gives_identical_weights(optimizer: OptimizerKind) -> None:
    x, y = _logistic_problem(800, seed=0)
    spec = TrainSpec(epochs=2, batch_size=32, optimizer=optimizer, momentum=0.5)
    first, second, other = (build_model(MLP, N_FEATURES, seed=0) for _ in range(3))

    r1 = train_local(first, x, y, spec, seed=7)
    r2 = train_local(second, x, y, spec, seed=7)
    train_local(other, x, y, spec, seed=8)

    assert r1 == r2
    for a, b in zip(get_weights(first), get_weights(second), strict=True):
        np.testing.assert_array_equal(a, b)
    assert _distance(get_weights(first), get_weights(other)) > 0.0


def test_training_leaves_global_rng_and_mode_untouched() -> None:
    x, y = _logistic_problem(200, seed=0)
    model = build_model(MLP, N_FEATURES, seed=0)
    model.eval()
    torch.manual_seed(99)
    expected = torch.rand(3)
    torch.manual_seed(99)

    train_local(model, x, y, TrainSpec(), seed=0)
    drawn = torch.rand(3)

    assert torch.equal(drawn, expected)
    assert not model.training


def test_fedprox_keeps_weights_near_the_global_model() -> None:
    x, y = _logistic_problem(1_000, seed=0)
    spec = TrainSpec(epochs=3, batch_size=32, lr=0.01, optimizer=OptimizerKind.sgd)
    global_weights = get_weights(build_model(MLP, N_FEATURES, seed=0))
    plain = build_model(MLP, N_FEATURES, seed=0)
    prox = build_model(MLP, N_FEATURES, seed=0)

    train_local(plain, x, y, spec, seed=0)
    train_local(prox, x, y, spec, seed=0, proximal_mu=50.0, global_weights=global_weights)

    drift_plain = _distance(get_weights(plain), global_weights)
    drift_prox = _distance(get_weights(prox), global_weights)
    assert drift_prox < 0.1 * drift_plain


def test_zero_mu_ignores_global_weights() -> None:
    x, y = _logistic_problem(300, seed=0)
    far_away = [w + 10.0 for w in get_weights(build_model(MLP, N_FEATURES, seed=0))]
    a, b = build_model(MLP, N_FEATURES, seed=0), build_model(MLP, N_FEATURES, seed=0)

    train_local(a, x, y, TrainSpec(), seed=0)
    train_local(b, x, y, TrainSpec(), seed=0, proximal_mu=0.0, global_weights=far_away)

    for u, v in zip(get_weights(a), get_weights(b), strict=True):
        np.testing.assert_array_equal(u, v)


def test_balanced_pos_weight_raises_the_predicted_positive_rate() -> None:
    x, y = _logistic_problem(3_000, seed=0, intercept=-6.0)  # about 10 % positives
    spec_plain = TrainSpec(epochs=5, batch_size=64, lr=0.02, pos_weight=1.0)
    spec_balanced = TrainSpec(epochs=5, batch_size=64, lr=0.02, pos_weight=None)
    plain = build_model(LOGISTIC, N_FEATURES, seed=0)
    balanced = build_model(LOGISTIC, N_FEATURES, seed=0)

    train_local(plain, x, y, spec_plain, seed=0)
    train_local(balanced, x, y, spec_balanced, seed=0)

    rate_plain = float(np.mean(predict_proba(plain, x) >= 0.5))
    rate_balanced = float(np.mean(predict_proba(balanced, x) >= 0.5))
    assert 0.05 < y.mean() < 0.2
    assert rate_plain < y.mean() < rate_balanced


def test_evaluate_model_reports_risk_metrics_and_unweighted_bce() -> None:
    x, y = _logistic_problem(500, seed=3)
    model = build_model(MLP, N_FEATURES, seed=0)

    metrics = evaluate_model(model, x, y, threshold=0.3)

    assert set(metrics) == {*METRIC_KEYS, "loss"}
    assert metrics["loss"] == pytest.approx(log_loss(y, predict_proba(model, x)), rel=1e-9)
    assert metrics["n"] == 500.0


def test_evaluate_model_on_one_class_gives_nan_auc() -> None:
    x, _ = _logistic_problem(20, seed=3)
    model = build_model(LOGISTIC, N_FEATURES, seed=0)

    metrics = evaluate_model(model, x, np.zeros(20))

    assert math.isnan(metrics["auc"])
    assert math.isfinite(metrics["loss"])


def test_fedprox_without_global_weights_raises() -> None:
    x, y = _logistic_problem(50, seed=0)
    model = build_model(LOGISTIC, N_FEATURES, seed=0)

    with pytest.raises(ValueError, match="`global_weights` must be given when `proximal_mu` > 0"):
        train_local(model, x, y, TrainSpec(), seed=0, proximal_mu=0.1)


@pytest.mark.parametrize("mu", [-0.1, float("nan"), float("inf")])
def test_bad_mu_raises(mu: float) -> None:
    x, y = _logistic_problem(50, seed=0)
    model = build_model(LOGISTIC, N_FEATURES, seed=0)

    with pytest.raises(ValueError, match="`proximal_mu` must be a finite number >= 0"):
        train_local(model, x, y, TrainSpec(), seed=0, proximal_mu=mu)


def test_global_weights_of_wrong_shape_raise() -> None:
    x, y = _logistic_problem(50, seed=0)
    model = build_model(LOGISTIC, N_FEATURES, seed=0)
    wrong = [np.zeros((1, N_FEATURES + 1), dtype=np.float32), np.zeros(1, dtype=np.float32)]

    with pytest.raises(ValueError, match=r"`layers\.0\.weight` must have shape \(1, 10\)"):
        train_local(model, x, y, TrainSpec(), seed=0, proximal_mu=1.0, global_weights=wrong)


def _bad_inputs() -> list[tuple[np.ndarray, np.ndarray, str]]:
    x, y = _logistic_problem(20, seed=0)
    with_nan = x.copy()
    with_nan[3, 2] = np.nan
    return [
        (x[0], y, "`x` must be a 2-D array with at least one row"),
        (x[:0], y[:0], "`x` must be a 2-D array with at least one row"),
        (x, y[:-1], r"`y` must have shape \(20,\) to match `x`; got \(19,\)"),
        (x, y.reshape(-1, 1), r"`y` must have shape \(20,\)"),
        (x[:, :-1], y, "`x` must have 10 feature columns for this model; got 9"),
        (with_nan, y, "`x` must be finite"),
        (x, np.where(y == 1, 2, 0), "`y` must hold only 0 and 1"),
    ]


@pytest.mark.parametrize(("x", "y", "match"), _bad_inputs())
def test_bad_data_raises(x: np.ndarray, y: np.ndarray, match: str) -> None:
    model = build_model(LOGISTIC, N_FEATURES, seed=0)

    with pytest.raises(ValueError, match=match):
        train_local(model, x, y, TrainSpec(), seed=0)


def test_negative_seed_raises() -> None:
    x, y = _logistic_problem(20, seed=0)
    model = build_model(LOGISTIC, N_FEATURES, seed=0)

    with pytest.raises(ValueError, match="`seed` must be a non-negative integer; got -5"):
        train_local(model, x, y, TrainSpec(), seed=-5)
