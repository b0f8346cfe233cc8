import numpy as np
import pytest
from torch import nn

from fedrisk.client.dp_trainer import (
    DPSettings,
    GradSampleMode,
    NoiseSource,
    check_dp_compatible,
    planned_mechanism,
    steps_per_round,
    train_private,
)
from fedrisk.client.linear_clipping import linear_layers
from fedrisk.client.trainer import train_local
from fedrisk.models import ModelSpec, TrainSpec, build_model, get_weights, predict_proba
from fedrisk.models.metrics import risk_metrics


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 12)).astype(np.float32)
    w = rng.normal(size=12)
    y = (rng.random(2000) < 1 / (1 + np.exp(-(x @ w - 1.5)))).astype(np.float32)
    return x, y


def settings(noise=1.0, source=NoiseSource.seeded, clip=1.0):
    return DPSettings(noise_multiplier=noise, max_grad_norm=clip, noise_source=source)


def weights_equal(a, b):
    return all(np.array_equal(p, q) for p, q in zip(get_weights(a), get_weights(b), strict=True))


def test_released_mechanism_is_the_planned_one(problem):
    x, y = problem
    spec = TrainSpec(epochs=2, batch_size=50)
    model = build_model(ModelSpec(), 12, seed=0)

    out = train_private(model, x, y, spec, settings(0.9), seed=1)

    # q = 50 / 2000 = 0.025 -> Opacus takes floor(1/q) = 40 steps per epoch.
    assert out.mechanism == planned_mechanism(spec, 2000, settings(0.9))
    assert (out.mechanism.sample_rate, out.mechanism.steps) == (0.025, 80)
    assert out.result.steps == 80 == steps_per_round(spec, 2000)
    assert out.mechanism.noise_multiplier == 0.9 and out.mechanism.max_grad_norm == 1.0


def test_dp_training_learns_with_moderate_noise(problem):
    x, y = problem
    model = build_model(ModelSpec(kind="logistic"), 12, seed=0)

    for r in range(3):
        train_private(model, x, y, TrainSpec(batch_size=100, lr=0.05), settings(0.8), seed=r)

    assert risk_metrics(y, predict_proba(model, x))["auc"] > 0.8


def test_seeded_noise_is_reproducible_and_os_entropy_is_not(problem):
    x, y = problem
    spec = TrainSpec(batch_size=100)
    models = [build_model(ModelSpec(), 12, seed=0) for _ in range(4)]

    train_private(models[0], x, y, spec, settings(), seed=5)
    train_private(models[1], x, y, spec, settings(), seed=5)
    train_private(models[2], x, y, spec, settings(source=NoiseSource.os_entropy), seed=5)
    train_private(models[3], x, y, spec, settings(source=NoiseSource.os_entropy), seed=5)

    assert weights_equal(models[0], models[1])
    assert not weights_equal(models[2], models[3])
    assert not weights_equal(models[0], models[2])


def test_noise_scales_with_the_noise_multiplier(problem):
    x, y = problem
    spec = TrainSpec(batch_size=100, optimizer="sgd", lr=0.1)
    start = get_weights(build_model(ModelSpec(kind="logistic"), 12, seed=0))
    moved = {}
    for noise in (0.01, 1000.0):
        model = build_model(ModelSpec(kind="logistic"), 12, seed=0)
        train_private(model, x, y, spec, settings(noise), seed=3)
        moved[noise] = sum(
            np.linalg.norm(a - b) for a, b in zip(get_weights(model), start, strict=True)
        )

    # Per step the noise on the averaged gradient has std sigma*C/100 per coordinate:
    # with lr 0.1 over 20 steps the walk is ~0.1 * 10 * sqrt(20) ≈ 4.5 per coordinate
    # (13 coordinates: ~16), against < 0.1 * 1 * 20 = 2 for the clipped signal.
    assert moved[1000.0] > 5 * moved[0.01]


def test_clipping_bounds_each_step(problem):
    x, y = problem
    # Near-zero noise, SGD without momentum: each step moves the weights by at most
    # lr * C * |batch| / expected_batch, so over the epoch by at most lr * C * steps * ~1.5.
    x_big = x * 100.0
    spec = TrainSpec(batch_size=100, optimizer="sgd", lr=1.0)
    model = build_model(ModelSpec(kind="logistic"), 12, seed=0)
    start = np.concatenate([w.ravel() for w in get_weights(model)])

    out = train_private(model, x_big, y, spec, settings(noise=1e-6, clip=0.01), seed=2)

    end = np.concatenate([w.ravel() for w in get_weights(model)])
    assert np.linalg.norm(end - start) <= 1.0 * 0.01 * out.mechanism.steps * 1.5


def test_tiny_bank_trains_through_empty_poisson_batches(problem):
    x, y = problem
    model = build_model(ModelSpec(), 12, seed=0)

    # 60 rows, expected batch 2: P(empty batch) = (1 - 1/30)^60 ≈ 13% per step.
    out = train_private(model, x[:60], y[:60], TrainSpec(batch_size=2), settings(), seed=0)

    assert out.mechanism.steps == 30
    assert all(np.isfinite(w).all() for w in get_weights(model))


def test_fedprox_term_pulls_toward_the_global_model(problem):
    x, y = problem
    spec = TrainSpec(batch_size=100, lr=0.05)
    anchor = build_model(ModelSpec(), 12, seed=9)
    global_weights = get_weights(anchor)

    def distance(mu):
        model = build_model(ModelSpec(), 12, seed=9)
        train_private(
            model,
            x,
            y,
            spec,
            settings(0.5),
            seed=4,
            proximal_mu=mu,
            global_weights=global_weights if mu else None,
        )
        return sum(
            np.linalg.norm(a - b) for a, b in zip(get_weights(model), global_weights, strict=True)
        )

    assert distance(50.0) < 0.5 * distance(0.0)


def test_batchnorm_model_is_refused_before_training(problem):
    model = nn.Sequential(nn.Linear(12, 8), nn.BatchNorm1d(8), nn.Linear(8, 1))

    with pytest.raises(ValueError, match="Opacus-compatible"):
        check_dp_compatible(model)


def test_plain_and_private_trainers_agree_on_rows_seen(problem):
    x, y = problem
    plain = train_local(build_model(ModelSpec(), 12, seed=0), x, y, TrainSpec(), seed=0)
    private = train_private(
        build_model(ModelSpec(), 12, seed=0), x, y, TrainSpec(), settings(), seed=0
    )

    assert plain.n_examples == private.result.n_examples == 2000


def test_expanded_weights_mode_matches_opacus_hooks(problem):
    x, y = problem
    spec = TrainSpec(batch_size=100)
    models = {}
    for mode in (GradSampleMode.hooks, GradSampleMode.ew):
        model = build_model(ModelSpec(), 12, seed=0)
        dp = DPSettings(1e-8, 1.0, NoiseSource.seeded, grad_sample_mode=mode)
        train_private(model, x, y, spec, dp, seed=8)
        models[mode] = model
    start = get_weights(build_model(ModelSpec(), 12, seed=0))

    for a, b, w0 in zip(
        get_weights(models[GradSampleMode.hooks]),
        get_weights(models[GradSampleMode.ew]),
        start,
        strict=True,
    ):
        assert np.max(np.abs(a - b)) <= 1e-4 * max(1e-6, np.max(np.abs(a - w0)))


@pytest.mark.parametrize("noise", [1e-8, 1.0])
@pytest.mark.parametrize("model_spec", [ModelSpec(), ModelSpec(kind="logistic")])
def test_linear_engine_matches_opacus_hooks(problem, noise, model_spec):
    """fedrisk's one-backward clipping against Opacus as the independent reference.

    Same seed, same Poisson batches, same noise stream: the weights agree to float error
    even with real noise.
    """
    x, y = problem
    spec = TrainSpec(batch_size=100, epochs=2)
    trained = {}
    for mode in (GradSampleMode.hooks, GradSampleMode.linear):
        model = build_model(model_spec, 12, seed=0)
        dp = DPSettings(noise, 1.0, NoiseSource.seeded, grad_sample_mode=mode)
        out = train_private(model, x, y, spec, dp, seed=21)
        trained[mode] = (get_weights(model), out.result.loss)

    (hooks, hooks_loss), (linear, linear_loss) = trained.values()
    for a, b in zip(hooks, linear, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert linear_loss == pytest.approx(hooks_loss, rel=1e-5)


def test_linear_engine_falls_back_to_opacus_for_other_layers(problem):
    x, y = problem
    model = nn.Sequential(
        nn.Linear(12, 4), nn.ReLU(), nn.LayerNorm(4), nn.Linear(4, 1), nn.Flatten(0)
    )
    dp = DPSettings(1.0, 1.0, NoiseSource.seeded, grad_sample_mode=GradSampleMode.linear)

    out = train_private(model, x, y, TrainSpec(batch_size=100), dp, seed=0)

    assert linear_layers(model) is None
    assert out.mechanism.steps == 20
