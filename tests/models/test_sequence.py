"""Recurrent risk models: shapes, one weight layout, and real Opacus DP-SGD on them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from opacus.grad_sample.utils import wrap_model
from opacus.layers import DPGRU, DPLSTM
from torch.nn import functional as F

from fedrisk.client.dp_trainer import DPSettings, check_dp_compatible, train_private
from fedrisk.client.linear_clipping import linear_layers
from fedrisk.client.trainer import train_local
from fedrisk.conf.privacy import GradSampleMode, NoiseSource
from fedrisk.models import ModelSpec, TrainSpec, build_model, get_weights, set_weights
from fedrisk.models.sequence import SequenceRiskModel

WINDOW, STEP = 6, 2


@pytest.fixture(autouse=True)
def one_thread():
    """Small recurrent steps run fastest on one thread (and do not fight other tests)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def spec(kind: str = "gru", **kw) -> ModelSpec:
    return ModelSpec(kind=kind, hidden=[8, 4], dropout=0.0, window=WINDOW, **kw)


def rows(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Windows whose label is whether the last step's first feature is large."""
    x = np.random.default_rng(seed).normal(size=(n, WINDOW * STEP)).astype(np.float32)
    return x, (x[:, -STEP] > 0.5).astype(np.float32)


@pytest.mark.parametrize(("kind", "layer"), [("gru", DPGRU), ("lstm", DPLSTM)])
@pytest.mark.parametrize("attention", [False, True])
def test_shapes_layers_and_seeded_initialisation(kind, layer, attention):
    model = build_model(spec(kind, attention=attention), WINDOW * STEP, seed=3)
    x, _ = rows(5)

    assert isinstance(model, SequenceRiskModel) and isinstance(model.rnn, layer)
    assert model(torch.from_numpy(x)).shape == (5,)
    again = build_model(spec(kind, attention=attention), WINDOW * STEP, seed=3)
    for a, b in zip(get_weights(model), get_weights(again), strict=True):
        np.testing.assert_array_equal(a, b)
    check_dp_compatible(model)  # Opacus's validator accepts it as built


def test_rows_are_read_lag_major_as_time_steps():
    model = build_model(spec(), WINDOW * STEP, seed=0)
    x = torch.arange(2 * WINDOW * STEP, dtype=torch.float32).reshape(2, -1)
    seen: dict[str, torch.Tensor] = {}

    def keep_input(_module, args, _out) -> None:
        seen["x"] = args[0]

    model.rnn.register_forward_hook(keep_input)

    model(x)

    assert seen["x"].shape == (2, WINDOW, STEP)
    torch.testing.assert_close(seen["x"][0, 1], torch.tensor([2.0, 3.0]))


def test_inputs_that_do_not_fill_the_window_are_refused():
    with pytest.raises(ValueError, match=r"multiple of `model\.window`"):
        build_model(spec(), WINDOW * STEP + 1, seed=0)
    with pytest.raises(ValueError, match="window"):
        build_model(ModelSpec(kind="gru", hidden=[8]), 12, seed=0)


def test_weights_round_trip_between_identical_builds():
    a = build_model(spec("lstm"), 12, seed=0)
    b = build_model(spec("lstm"), 12, seed=1)
    set_weights(b, get_weights(a))
    x, _ = rows(4)

    torch.testing.assert_close(a(torch.from_numpy(x)), b(torch.from_numpy(x)))


@pytest.mark.parametrize("mode", ["hooks", "ew"])
def test_opacus_per_sample_gradients_equal_per_row_autograd(mode):
    x, y = (torch.from_numpy(a) for a in rows(5))
    reference = build_model(spec(attention=True), 12, seed=0)
    expected = []
    for i in range(5):
        reference.zero_grad()
        F.binary_cross_entropy_with_logits(reference(x[i : i + 1]), y[i : i + 1]).backward()
        expected.append(torch.cat([p.grad.flatten() for p in reference.parameters()]))
    model = build_model(spec(attention=True), 12, seed=0)
    wrapped = wrap_model(model, grad_sample_mode=mode, loss_reduction="sum")

    F.binary_cross_entropy_with_logits(wrapped(x), y, reduction="sum").backward()

    got = torch.cat([p.grad_sample.reshape(5, -1) for p in model.parameters()], dim=1)
    torch.testing.assert_close(got, torch.stack(expected), atol=1e-6, rtol=1e-5)


def test_the_one_backward_linear_path_is_not_used_for_recurrent_gates():
    assert linear_layers(build_model(spec(), 12, seed=0)) is None
    assert linear_layers(build_model(ModelSpec(kind="mlp"), 12, seed=0)) is not None


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_a_real_dp_sgd_round_trains_the_recurrent_model(kind):
    x, y = rows(128, seed=1)
    model = build_model(spec(kind), 12, seed=0)
    before = get_weights(model)
    dp = DPSettings(
        noise_multiplier=1.0,
        max_grad_norm=1.0,
        noise_source=NoiseSource.seeded,
        grad_sample_mode=GradSampleMode.linear,  # falls back to Opacus for RNNLinear gates
    )

    out = train_private(model, x, y, TrainSpec(epochs=2, batch_size=32, lr=0.01), dp, seed=5)

    assert out.result.steps == out.mechanism.steps == 2 * 4
    assert out.mechanism.sample_rate == pytest.approx(32 / 128)
    assert np.isfinite(out.result.loss)
    changed = [not np.array_equal(a, b) for a, b in zip(before, get_weights(model), strict=True)]
    assert all(changed)  # the gates, the recurrent weights and the head all moved
    again = build_model(spec(kind), 12, seed=0)
    train_private(again, x, y, TrainSpec(epochs=2, batch_size=32, lr=0.01), dp, seed=5)
    for a, b in zip(get_weights(model), get_weights(again), strict=True):
        np.testing.assert_array_equal(a, b)  # seeded noise: reproducible


def test_plain_training_learns_a_pattern_in_the_last_step():
    x, y = rows(768, seed=2)
    model = build_model(spec(), 12, seed=0)

    train_local(model, x, y, TrainSpec(epochs=10, batch_size=64, lr=0.03), seed=0)

    xt, yt = rows(512, seed=3)
    with torch.no_grad():
        accuracy = ((model(torch.from_numpy(xt)) > 0).float() == torch.from_numpy(yt)).float()
    assert float(accuracy.mean()) > 0.9
