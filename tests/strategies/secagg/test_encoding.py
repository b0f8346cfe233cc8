from __future__ import annotations

import math

import numpy as np
import pytest

from fedrisk.conf.secagg import SecAggConfig
from fedrisk.secure.quantize import check_overflow
from fedrisk.strategies.secagg.encoding import Encoding, decode_sum, encode_update

SHAPES = [(3, 4), (5,), (2, 1, 3)]


def _deltas(rng: np.random.Generator, spread: float = 1.0) -> list[np.ndarray]:
    return [rng.uniform(-spread, spread, size=shape) for shape in SHAPES]


def _sum(vectors: list[np.ndarray], dtype: np.dtype) -> np.ndarray:
    total = np.zeros_like(vectors[0], dtype=dtype)
    for vector in vectors:
        np.add(total, vector, out=total)
    return total


@pytest.mark.parametrize(
    ("bits", "scale_bits", "stochastic"), [(64, 40, True), (32, 20, True), (32, 20, False)]
)
def test_decoded_sum_is_the_weighted_mean_within_the_error_bound(
    bits: int, scale_bits: int, stochastic: bool
) -> None:
    encoding = Encoding(
        bits=bits, scale_bits=scale_bits, clip=4.0, stochastic=stochastic, weight_scale=1000
    )
    rng = np.random.default_rng(11)
    weights = [17, 1000, 1, 480, 233]
    losses = [0.61, 0.43, 0.92, 0.55, 0.48]
    deltas = [_deltas(rng) for _ in weights]
    vectors = [
        encode_update(d, weight=w, loss=loss, encoding=encoding, rng=rng)
        for d, w, loss in zip(deltas, weights, losses, strict=True)
    ]

    decoded = decode_sum(
        _sum(vectors, encoding.dtype), shapes=SHAPES, encoding=encoding, count=len(weights)
    )

    total = sum(weights)
    bound = encoding.error_bound(count=len(weights), weight_total=total)
    assert decoded.weight_total == total
    assert decoded.clipped == 0
    assert bound < 1e-3
    for index, shape in enumerate(SHAPES):
        exact = sum(w * d[index] for w, d in zip(weights, deltas, strict=True)) / total
        assert decoded.mean_delta[index].shape == shape
        assert np.max(np.abs(decoded.mean_delta[index] - exact)) <= bound
    exact_loss = sum(w * loss for w, loss in zip(weights, losses, strict=True)) / total
    assert abs(decoded.mean_loss - exact_loss) <= bound


def test_uniform_weights_decode_to_the_plain_mean_and_count() -> None:
    secagg = SecAggConfig(mode="secaggplus", bits=64)
    encoding = Encoding.for_run(secagg, institutions=4, uniform_weights=True)
    rng = np.random.default_rng(5)
    deltas = [_deltas(rng) for _ in range(4)]
    vectors = [encode_update(d, weight=1, loss=0.5, encoding=encoding, rng=rng) for d in deltas]

    decoded = decode_sum(_sum(vectors, encoding.dtype), shapes=SHAPES, encoding=encoding, count=4)

    assert encoding.weight_scale == 1 and decoded.weight_total == 4
    exact = sum(d[0] for d in deltas) / 4
    bound = encoding.error_bound(count=4, weight_total=4)
    assert np.max(np.abs(decoded.mean_delta[0] - exact)) <= bound
    assert abs(decoded.mean_loss - 0.5) <= bound


def test_row_counts_travel_exactly_in_the_count_words() -> None:
    encoding = Encoding(bits=32, scale_bits=16, clip=4.0, stochastic=True, weight_scale=10**6)
    rng = np.random.default_rng(3)

    vector = encode_update(_deltas(rng), weight=987_654, loss=0.3, encoding=encoding, rng=rng)

    assert vector.dtype == np.uint32
    assert vector.shape == (encoding.vector_length(12 + 5 + 6),)
    assert vector[-2] == 987_654 and vector[-1] == 0


def test_clipped_coordinates_are_counted_and_held_at_the_clip() -> None:
    encoding = Encoding(bits=64, scale_bits=32, clip=1.0, stochastic=False, weight_scale=4)
    big = [np.array([5.0, -9.0, 0.5, 3.0]), np.array([0.25])]
    small = [np.array([0.5, 0.5, 0.5, 0.5]), np.array([0.25])]
    rng = np.random.default_rng(0)
    vectors = [
        encode_update(big, weight=4, loss=0.1, encoding=encoding, rng=rng),  # 3 beyond ±1
        encode_update(small, weight=4, loss=0.1, encoding=encoding, rng=rng),
        encode_update(big, weight=1, loss=0.1, encoding=encoding, rng=rng),  # 5/4 and 9/4 only
    ]

    decoded = decode_sum(
        _sum(vectors, encoding.dtype), shapes=[(4,), (1,)], encoding=encoding, count=3
    )

    assert decoded.clipped == 3 + 0 + 2
    assert decoded.weight_total == 9
    # weighted (w = rows / 4), clipped to ±1, summed, then rescaled by 4 / Σ rows
    weighted_sum = np.array([1.0, -1.0, 0.5, 1.0]) + 0.5 + np.array([1.0, -1.0, 0.125, 0.75])
    expected = weighted_sum * 4 / 9
    np.testing.assert_allclose(decoded.mean_delta[0], expected, atol=1e-9)


def test_nearest_rounding_is_deterministic_and_within_half_a_step() -> None:
    encoding = Encoding(bits=32, scale_bits=8, clip=4.0, stochastic=False, weight_scale=1)
    delta = [np.array([0.1, -0.1, 1.0 / 3.0, -2.7, 0.00195])]

    first = encode_update(
        delta, weight=1, loss=0.2, encoding=encoding, rng=np.random.default_rng(1)
    )
    second = encode_update(
        delta, weight=1, loss=0.2, encoding=encoding, rng=np.random.default_rng(2)
    )
    decoded = decode_sum(first, shapes=[(5,)], encoding=encoding, count=1)

    np.testing.assert_array_equal(first, second)
    step = 2.0**-8
    assert np.max(np.abs(decoded.mean_delta[0] - delta[0])) <= step / 2
    assert encoding.error_bound(count=1, weight_total=1) == pytest.approx(step / 2, rel=1e-9)


def test_stochastic_rounding_uses_the_coins() -> None:
    encoding = Encoding(bits=32, scale_bits=8, clip=4.0, stochastic=True, weight_scale=1)
    delta = [np.full(200, 1.0 / 3.0)]

    first = encode_update(
        delta, weight=1, loss=0.2, encoding=encoding, rng=np.random.default_rng(1)
    )
    second = encode_update(
        delta, weight=1, loss=0.2, encoding=encoding, rng=np.random.default_rng(2)
    )

    assert not np.array_equal(first, second)
    assert encoding.error_bound(count=1, weight_total=1) == pytest.approx(2.0**-8, rel=1e-9)


@pytest.mark.parametrize("weight", [0, -1, 1001])
def test_weight_outside_one_to_weight_scale_is_rejected(weight: int) -> None:
    encoding = Encoding(bits=32, scale_bits=16, clip=4.0, stochastic=True, weight_scale=1000)

    with pytest.raises(ValueError, match=rf"weight must be in \[1, 1000\].*got {weight}$"):
        encode_update(
            [np.zeros(3)], weight=weight, loss=0.1, encoding=encoding, rng=np.random.default_rng()
        )


@pytest.mark.parametrize(
    ("delta", "loss"),
    [([np.array([0.1, np.nan])], 0.1), ([np.array([np.inf])], 0.1), ([np.zeros(2)], math.nan)],
    ids=["nan-delta", "inf-delta", "nan-loss"],
)
def test_non_finite_update_or_loss_is_rejected(delta: list[np.ndarray], loss: float) -> None:
    encoding = Encoding(bits=32, scale_bits=16, clip=4.0, stochastic=True, weight_scale=10)

    with pytest.raises(ValueError, match="must be finite; got NaN or infinity"):
        encode_update(delta, weight=3, loss=loss, encoding=encoding, rng=np.random.default_rng())


def test_sum_of_the_wrong_length_or_without_weight_is_rejected() -> None:
    encoding = Encoding(bits=32, scale_bits=16, clip=4.0, stochastic=True, weight_scale=10)

    with pytest.raises(ValueError, match=r"must hold 26 words; got \(25,\)"):
        decode_sum(np.zeros(25, np.uint32), shapes=SHAPES, encoding=encoding, count=2)
    with pytest.raises(ValueError, match="total weight must be positive; got 0"):
        decode_sum(np.zeros(26, np.uint32), shapes=SHAPES, encoding=encoding, count=2)


@pytest.mark.parametrize(
    ("overrides", "institutions"),
    [({"bits": 32, "clip": 1e9}, 5), ({"bits": 32, "clip": 4.0, "scale_bits": 28}, 5)],
)
def test_for_run_rejects_an_encoding_that_could_overflow(
    overrides: dict, institutions: int
) -> None:
    secagg = SecAggConfig(mode="secaggplus", **overrides)

    with pytest.raises(ValueError, match=r"must stay below 2\^"):
        Encoding.for_run(secagg, institutions=institutions, uniform_weights=False)


@pytest.mark.parametrize(("bits", "institutions"), [(32, 5), (32, 20), (64, 200)])
def test_for_run_picks_the_largest_scale_bits_that_cannot_overflow(
    bits: int, institutions: int
) -> None:
    secagg = SecAggConfig(mode="secaggplus", bits=bits, clip=4.0)

    encoding = Encoding.for_run(secagg, institutions=institutions, uniform_weights=False)

    check_overflow(clip=4.0, count=institutions, bits=bits, scale_bits=encoding.scale_bits)
    with pytest.raises(ValueError):
        check_overflow(clip=4.0, count=institutions, bits=bits, scale_bits=encoding.scale_bits + 1)
    assert (encoding.bits, encoding.weight_scale, encoding.stochastic) == (bits, 10**6, True)
    assert encoding.dtype == np.dtype(f"uint{bits}")
