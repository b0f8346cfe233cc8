"""privacy=central: the aggregate's noise comes from a per-round generator, not np.random."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.supercore.task_identity import TaskIdentity

from fedrisk.conf.privacy import ClippingSide, NoiseSource, PrivacyConfig, PrivacyMode
from fedrisk.conf.strategy import StrategyConfig
from fedrisk.strategies import WEIGHT_KEY, build_strategy
from fedrisk.strategies.central_dp import (
    CENTRAL_NOISE_STREAM,
    ClientSideCentralDP,
    ServerSideCentralDP,
    add_central_noise,
    round_noise_generator,
    wrap_central_dp,
)

SHAPE = (200, 500)  # 100,000 draws: the sample std is within 0.5% of σ at 3 standard errors
BANKS = 3


class _Nodes:
    """The part of Flower's Grid that FedAvg's sampling asks: who is connected."""

    def get_node_ids(self) -> list[int]:
        return list(range(1, BANKS + 1))


@pytest.fixture(autouse=True)
def _server_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Messages take their run and task ids from the running task, as in a ServerApp."""
    for attribute in ("_run_id", "_node_id", "_task_id"):
        monkeypatch.setattr(TaskIdentity, attribute, 1)


def _wrapper(*, seed: int = 7, side: ClippingSide = ClippingSide.server, source=NoiseSource.seeded):
    privacy = PrivacyConfig(
        mode=PrivacyMode.central,
        central_noise_multiplier=2.0,
        central_clipping_norm=0.5,
        central_clipping_side=side,
    )
    config = StrategyConfig()
    return wrap_central_dp(
        build_strategy(config, n_institutions=BANKS),
        privacy,
        config,
        n_institutions=BANKS,
        seed=seed,
        noise_source=source,
    )


def _aggregate(wrapper, server_round: int) -> np.ndarray:
    """One round in which bank k moves every weight by k·1e-4 (norm well under the bound)."""
    current = ArrayRecord({"w": Array(np.zeros(SHAPE, np.float32))})
    sent = list(wrapper.configure_train(server_round, current, ConfigRecord(), _Nodes()))
    replies = [
        Message(
            RecordDict(
                {
                    "arrays": ArrayRecord({"w": Array(np.full(SHAPE, 1e-4 * k, np.float32))}),
                    "metrics": MetricRecord({WEIGHT_KEY: 1}),
                }
            ),
            reply_to=message,
        )
        for k, message in enumerate(sent, start=1)
    ]
    arrays, _ = wrapper.aggregate_train(server_round, replies)
    return arrays["w"].numpy()


@pytest.mark.parametrize("side", list(ClippingSide))
def test_seeded_noise_repeats_for_the_same_seed_and_round_and_not_across_rounds(side) -> None:
    first = _aggregate(_wrapper(side=side), 1)
    again = _aggregate(_wrapper(side=side), 1)  # a fresh process resuming round 1
    second_round = _aggregate(_wrapper(side=side), 2)
    other_seed = _aggregate(_wrapper(side=side, seed=8), 1)

    np.testing.assert_array_equal(first, again)
    assert first.dtype == np.float32
    assert not np.array_equal(first, second_round)
    assert not np.array_equal(first, other_seed)


@pytest.mark.parametrize("side", list(ClippingSide))
def test_the_noise_std_is_flowers_noise_multiplier_times_clipping_norm_over_banks(side) -> None:
    noise = _aggregate(_wrapper(side=side), 1).astype(np.float64) - 2e-4  # mean update 2e-4

    # Flower's compute_stdv: z · C / n = 2.0 · 0.5 / 3.
    assert noise.std() == pytest.approx(2.0 * 0.5 / 3, rel=0.01)
    assert abs(noise.mean()) < 0.01


@pytest.mark.parametrize("side", list(ClippingSide))
def test_noise_leaves_the_global_generator_alone_and_the_release_is_accounted(side) -> None:
    np.random.seed(0)
    before = np.random.get_state()
    wrapper = _wrapper(side=side)

    _aggregate(wrapper, 1)

    after = np.random.get_state()
    assert after[0] == before[0] and after[2:] == before[2:]
    np.testing.assert_array_equal(after[1], before[1])
    assert wrapper.accountant.num_releases == 1
    expected = ClientSideCentralDP if side is ClippingSide.client else ServerSideCentralDP
    assert type(wrapper) is expected


def test_os_entropy_noise_differs_between_runs_with_the_same_seed() -> None:
    first = _aggregate(_wrapper(source=NoiseSource.os_entropy), 1)
    second = _aggregate(_wrapper(source=NoiseSource.os_entropy), 1)

    assert not np.array_equal(first, second)
    assert (first.astype(np.float64) - 2e-4).std() == pytest.approx(1 / 3, rel=0.01)


def test_seeded_noise_is_the_documented_derivation() -> None:
    # Known answer from the derivation the docs state, independent of the wrapper.
    arrays = ArrayRecord(
        {"b": Array(np.arange(6, dtype=np.float32).reshape(2, 3)), "a": Array(np.ones(4))}
    )
    oracle = np.random.default_rng(np.random.SeedSequence([11, 3, CENTRAL_NOISE_STREAM]))
    expected_b = np.arange(6, dtype=np.float32).reshape(2, 3) + oracle.normal(
        0.0, 0.25, (2, 3)
    ).astype(np.float32)
    expected_a = np.ones(4) + oracle.normal(0.0, 0.25, 4)

    noisy = add_central_noise(
        arrays,
        stdv=0.25,
        rng=round_noise_generator(NoiseSource.seeded, seed=11, server_round=3),
    )

    assert list(noisy.keys()) == ["b", "a"]
    np.testing.assert_array_equal(noisy["b"].numpy(), expected_b)
    np.testing.assert_array_equal(noisy["a"].numpy(), expected_a)
    assert noisy["b"].numpy().dtype == np.float32 and noisy["a"].numpy().dtype == np.float64


def test_wrap_central_dp_takes_the_seed_and_noise_source_by_keyword_only() -> None:
    config = StrategyConfig()
    privacy = PrivacyConfig(mode=PrivacyMode.central)

    with pytest.raises(TypeError):
        wrap_central_dp(build_strategy(config, n_institutions=3), privacy, config, 3, 7)
    wrapper = wrap_central_dp(
        build_strategy(config, n_institutions=3),
        privacy,
        config,
        n_institutions=3,
        seed=7,
        noise_source=NoiseSource.os_entropy,
    )
    assert (wrapper.seed, wrapper.noise_source) == (7, NoiseSource.os_entropy)
