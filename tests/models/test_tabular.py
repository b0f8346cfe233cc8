"""Tabular risk models: shapes, Opacus compatibility, seeding and weight transport."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from opacus.validators import ModuleValidator
from torch import nn

from fedrisk.models import (
    ModelKind,
    ModelSpec,
    build_model,
    count_parameters,
    get_weights,
    predict_logits,
    predict_proba,
    set_weights,
)

N_INPUTS = 12
SPECS = {
    "logistic": ModelSpec(kind=ModelKind.logistic),
    "mlp": ModelSpec(kind=ModelKind.mlp, hidden=[8, 4], dropout=0.2),
}


def _features(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, N_INPUTS)).astype(np.float32)


@pytest.mark.parametrize("kind", sorted(SPECS))
def test_forward_returns_one_logit_per_row(kind: str) -> None:
    model = build_model(SPECS[kind], N_INPUTS, seed=0)

    out = model(torch.from_numpy(_features(7)))
    single = model(torch.from_numpy(_features(1)))

    assert out.shape == (7,)
    assert single.shape == (1,)


def test_logistic_is_one_linear_layer() -> None:
    model = build_model(SPECS["logistic"], N_INPUTS, seed=0)

    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]

    assert [(m.in_features, m.out_features) for m in linears] == [(N_INPUTS, 1)]
    assert count_parameters(model) == N_INPUTS + 1


def test_mlp_layers_follow_the_spec() -> None:
    model = build_model(SPECS["mlp"], N_INPUTS, seed=0)

    kinds = [type(m) for m in model.modules() if not isinstance(m, nn.Sequential)][1:]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    dropouts = [m for m in model.modules() if isinstance(m, nn.Dropout)]

    assert kinds == [nn.Linear, nn.ReLU, nn.Dropout, nn.Linear, nn.ReLU, nn.Dropout, nn.Linear]
    assert [(m.in_features, m.out_features) for m in linears] == [(12, 8), (8, 4), (4, 1)]
    assert all(d.p == 0.2 for d in dropouts)
    assert count_parameters(model) == (12 * 8 + 8) + (8 * 4 + 4) + (4 + 1)


@pytest.mark.parametrize("kind", sorted(SPECS))
def test_opacus_validator_finds_nothing_to_fix(kind: str) -> None:
    model = build_model(SPECS[kind], N_INPUTS, seed=0)

    errors = ModuleValidator.validate(model, strict=True)  # would raise on an incompatibility

    assert errors == []


@pytest.mark.parametrize("kind", sorted(SPECS))
def test_same_seed_gives_identical_parameters(kind: str) -> None:
    first = get_weights(build_model(SPECS[kind], N_INPUTS, seed=42))
    second = get_weights(build_model(SPECS[kind], N_INPUTS, seed=42))
    other = get_weights(build_model(SPECS[kind], N_INPUTS, seed=43))

    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    assert not all(np.array_equal(a, c) for a, c in zip(first, other, strict=True))


def test_build_model_leaves_global_rng_untouched() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)

    build_model(SPECS["mlp"], N_INPUTS, seed=7)
    drawn = torch.rand(3)

    assert torch.equal(drawn, expected)


def test_predict_proba_is_sigmoid_of_eval_logits_in_float64() -> None:
    model = build_model(SPECS["mlp"], N_INPUTS, seed=0)
    x = _features(50)
    model.eval()
    with torch.no_grad():
        expected = torch.sigmoid(model(torch.from_numpy(x)).double()).numpy()
    model.train()

    proba = predict_proba(model, x)

    assert proba.dtype == np.float64
    assert proba.shape == (50,)
    np.testing.assert_allclose(proba, expected, rtol=1e-12)
    assert model.training  # mode restored


def test_predict_proba_is_deterministic_and_independent_of_batch_size() -> None:
    model = build_model(SPECS["mlp"], N_INPUTS, seed=0)  # dropout must be off
    x = _features(100)

    whole = predict_proba(model, x)
    again = predict_proba(model, x)
    chunked = predict_proba(model, x, batch_size=7)

    np.testing.assert_array_equal(whole, again)
    np.testing.assert_allclose(chunked, whole, rtol=1e-6)


def test_predict_logits_of_empty_input_is_empty() -> None:
    model = build_model(SPECS["logistic"], N_INPUTS, seed=0)

    out = predict_logits(model, np.zeros((0, N_INPUTS)))

    assert out.shape == (0,)
    assert out.dtype == np.float64


@pytest.mark.parametrize(
    ("x", "match"),
    [
        (np.zeros(N_INPUTS), "`x` must be a 2-D array"),
        (np.full((2, N_INPUTS), np.nan), "`x` must be finite"),
        (np.full((2, N_INPUTS), 1e39), "`x` must be finite"),  # overflows float32
    ],
)
def test_predict_proba_rejects_bad_features(x: np.ndarray, match: str) -> None:
    model = build_model(SPECS["logistic"], N_INPUTS, seed=0)

    with pytest.raises(ValueError, match=match):
        predict_proba(model, x)


def test_predict_proba_rejects_bad_batch_size() -> None:
    model = build_model(SPECS["logistic"], N_INPUTS, seed=0)

    with pytest.raises(ValueError, match="`batch_size` must be at least 1; got 0"):
        predict_proba(model, _features(3), batch_size=0)


def test_weights_round_trip_between_models() -> None:
    source = build_model(SPECS["mlp"], N_INPUTS, seed=1)
    target = build_model(SPECS["mlp"], N_INPUTS, seed=2)
    x = _features(20)

    set_weights(target, get_weights(source))

    np.testing.assert_array_equal(predict_proba(target, x), predict_proba(source, x))
    for got, want in zip(get_weights(target), get_weights(source), strict=True):
        np.testing.assert_array_equal(got, want)


def test_get_weights_returns_copies_in_state_dict_order() -> None:
    model = build_model(SPECS["mlp"], N_INPUTS, seed=1)

    weights = get_weights(model)
    weights[0][...] = 0.0

    assert [w.shape for w in weights] == [tuple(t.shape) for t in model.state_dict().values()]
    assert not np.all(model.state_dict()["layers.0.weight"].numpy() == 0.0)


def test_set_weights_accepts_float64_arrays() -> None:
    model = build_model(SPECS["logistic"], N_INPUTS, seed=1)
    weights = [np.full((1, N_INPUTS), 0.5), np.array([-1.0])]

    set_weights(model, weights)

    assert model.state_dict()["layers.0.weight"].dtype == torch.float32
    np.testing.assert_array_equal(get_weights(model)[1], np.array([-1.0], dtype=np.float32))


def test_set_weights_rejects_wrong_count() -> None:
    model = build_model(SPECS["mlp"], N_INPUTS, seed=1)

    with pytest.raises(ValueError, match=r"`weights` must hold 6 arrays.*got 5"):
        set_weights(model, get_weights(model)[:5])


def test_set_weights_rejects_wrong_shape_naming_the_parameter() -> None:
    model = build_model(SPECS["mlp"], N_INPUTS, seed=1)
    weights = get_weights(model)
    weights[2] = np.zeros((4, 9), dtype=np.float32)
    before = get_weights(model)

    with pytest.raises(
        ValueError, match=r"`layers\.3\.weight` must have shape \(4, 8\); got \(4, 9\)"
    ):
        set_weights(model, weights)
    for got, want in zip(get_weights(model), before, strict=True):
        np.testing.assert_array_equal(got, want)  # nothing loaded


@pytest.mark.parametrize("n_inputs", [0, -3, 2.0, True])
def test_build_model_rejects_bad_input_width(n_inputs: object) -> None:
    with pytest.raises(ValueError, match="`n_inputs` must be a positive integer"):
        build_model(SPECS["mlp"], n_inputs, seed=0)


def test_build_model_rejects_negative_seed() -> None:
    with pytest.raises(ValueError, match="`seed` must be a non-negative integer; got -1"):
        build_model(SPECS["mlp"], N_INPUTS, seed=-1)
