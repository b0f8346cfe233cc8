from __future__ import annotations

import numpy as np
import pytest

from fedrisk.secure.quantize import check_overflow, dequantize, quantize


@pytest.mark.parametrize("bits, scale_bits", [(32, 16), (64, 32)])
def test_sum_of_parties_dequantizes_to_plaintext_sum(bits: int, scale_bits: int) -> None:
    rng = np.random.default_rng(7)
    parties, clip = 10, 2.0
    check_overflow(clip=clip, count=parties, bits=bits, scale_bits=scale_bits)
    updates = rng.normal(scale=1.5, size=(parties, 1000))
    encoded = [quantize(u, clip=clip, bits=bits, scale_bits=scale_bits, rng=rng) for u in updates]
    total = np.sum(encoded, axis=0, dtype=encoded[0].dtype)  # wraps modulo 2**bits
    decoded = dequantize(total, bits=bits, scale_bits=scale_bits, count=parties)
    expected = np.clip(updates, -clip, clip).sum(axis=0)
    assert np.all(np.abs(decoded - expected) <= parties * 2.0**-scale_bits)


def test_negative_values_wrap_modulo_2_to_the_bits() -> None:
    rng = np.random.default_rng(0)
    q32 = quantize(np.array([-1.0]), clip=1.0, bits=32, scale_bits=8, rng=rng)
    q64 = quantize(np.array([-1.0]), clip=1.0, bits=64, scale_bits=8, rng=rng)
    assert q32.dtype == np.uint32 and int(q32[0]) == 2**32 - 256
    assert q64.dtype == np.uint64 and int(q64[0]) == 2**64 - 256


def test_clipping_and_exact_grid_points() -> None:
    rng = np.random.default_rng(0)
    values = np.array([[-5.0, -0.5], [0.25, 9.0]])
    encoded = quantize(values, clip=1.0, bits=32, scale_bits=4, rng=rng)
    assert encoded.shape == (2, 2)
    decoded = dequantize(encoded, bits=32, scale_bits=4, count=1)
    np.testing.assert_array_equal(decoded, [[-1.0, -0.5], [0.25, 1.0]])


def test_stochastic_rounding_is_unbiased() -> None:
    rng = np.random.default_rng(1234)
    values = np.array([0.3, -0.7, 0.123456, -0.99, 0.5 + 2**-10])
    draws = np.stack(
        [
            dequantize(
                quantize(values, clip=1.0, bits=32, scale_bits=3, rng=rng),
                bits=32,
                scale_bits=3,
                count=1,
            )
            for _ in range(20_000)
        ]
    )
    # Each draw is within one grid step (1/8); the mean's standard error is < 0.125/sqrt(n).
    assert np.all(np.abs(draws - values) < 2**-3)
    np.testing.assert_allclose(draws.mean(axis=0), values, atol=5 * 0.0625 / np.sqrt(20_000))
    assert len(np.unique(draws[:, 0])) == 2  # really rounds both ways


def test_overflow_configuration_is_rejected() -> None:
    check_overflow(clip=1.0, count=2**15 - 1, bits=32, scale_bits=16)
    with pytest.raises(ValueError, match=r"clip × count × 2\^scale_bits must stay below"):
        check_overflow(clip=1.0, count=2**15, bits=32, scale_bits=16)
    with pytest.raises(ValueError, match="2\\^\\(bits−1\\)"):
        check_overflow(clip=10.0, count=100, bits=64, scale_bits=56)
    with pytest.raises(ValueError):
        quantize(np.zeros(3), clip=2.0**20, bits=32, scale_bits=12, rng=np.random.default_rng())


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"clip": 0.0}, ValueError),
        ({"clip": float("inf")}, ValueError),
        ({"clip": float("nan")}, ValueError),
        ({"clip": "1"}, TypeError),
        ({"count": 0}, ValueError),
        ({"count": 1.0}, TypeError),
        ({"bits": 16}, ValueError),
        ({"scale_bits": -1}, ValueError),
        ({"scale_bits": 31}, ValueError),
    ],
)
def test_check_overflow_rejects_bad_parameters(kwargs: dict[str, object], error: type) -> None:
    args: dict[str, object] = {"clip": 1.0, "count": 2, "bits": 32, "scale_bits": 8, **kwargs}
    with pytest.raises(error):
        check_overflow(**args)  # type: ignore[arg-type]


def test_quantize_rejects_bad_inputs() -> None:
    rng = np.random.default_rng(0)
    params = {"clip": 1.0, "bits": 32, "scale_bits": 8}
    with pytest.raises(TypeError):
        quantize([0.1], rng=rng, **params)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        quantize(np.array(["a"]), rng=rng, **params)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        quantize(np.zeros(2), rng=np.random.RandomState(0), **params)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="finite"):
        quantize(np.array([0.0, np.nan]), rng=rng, **params)  # type: ignore[arg-type]


def test_dequantize_rejects_bad_inputs() -> None:
    with pytest.raises(TypeError):
        dequantize(np.zeros(2, dtype=np.uint64), bits=32, scale_bits=8, count=1)
    with pytest.raises(TypeError):
        dequantize(np.zeros(2, dtype=np.int32), bits=32, scale_bits=8, count=1)
    with pytest.raises(TypeError):
        dequantize([0, 1], bits=32, scale_bits=8, count=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        dequantize(np.zeros(2, dtype=np.uint32), bits=32, scale_bits=8, count=0)
    with pytest.raises(ValueError):
        dequantize(np.zeros(2, dtype=np.uint32), bits=32, scale_bits=40, count=1)
