"""What the coordinator receives from one bank says nothing about that bank's update.

The masks come from ``os.urandom`` by design, so these tests are statistical. Each
threshold below is chosen so that a correct implementation fails it with probability
below 1e-7; the file's five statistical checks together fail falsely with probability
below 1e-6.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from fedrisk.strategies.secagg.encoding import Encoding, encode_update

from .harness import make_round

WORDS = 1 << 16
# p-value floor of each chi-square test: false failure probability 1e-7 per test.
P_FLOOR = 1e-7
# Under independence r ~ N(0, 1/WORDS): sd = 1/256 ≈ 0.0039; 0.025 is 6.4 sd, so a
# false failure has probability about 2e-10.
R_LIMIT = 0.025


def _top_nibble_p_value(vector: np.ndarray) -> float:
    bits = vector.dtype.itemsize * 8
    top = (vector >> np.array(bits - 4, dtype=vector.dtype)).astype(np.int64)
    counts = np.bincount(top, minlength=16)
    return float(stats.chisquare(counts).pvalue)


@pytest.mark.parametrize("bits", [32, 64])
def test_masked_vectors_of_zero_and_large_constant_updates_are_both_uniform(bits: int) -> None:
    sim = make_round(5, bits=bits, length=WORDS)
    dtype = sim.unmasker._dtype
    zero, constant = sim.node("bank-0"), sim.node("bank-1")
    assert _top_nibble_p_value(np.full(WORDS, 2 ** (bits - 1) - 7, dtype=dtype)) < P_FLOOR

    masked_zero = sim.mask(zero, np.zeros(WORDS, dtype=dtype)).vector
    masked_constant = sim.mask(constant, np.full(WORDS, 2 ** (bits - 1) - 7, dtype=dtype)).vector

    assert _top_nibble_p_value(masked_zero) > P_FLOOR
    assert _top_nibble_p_value(masked_constant) > P_FLOOR


def test_masked_vector_is_uncorrelated_with_the_encoded_update() -> None:
    sim = make_round(5, bits=32, length=WORDS)
    encoding = Encoding(bits=32, scale_bits=24, clip=4.0, stochastic=True, weight_scale=1)
    rng = np.random.default_rng(2024)
    delta = [rng.uniform(-4.0, 4.0, size=WORDS - encoding.vector_length(0))]
    encoded = encode_update(delta, weight=1, loss=0.4, encoding=encoding, rng=rng)
    assert encoded.shape == (WORDS,)

    masked = sim.mask(sim.node("bank-2"), encoded).vector
    r = np.corrcoef(masked.astype(np.float64), encoded.astype(np.float64))[0, 1]

    assert abs(r) < R_LIMIT
    assert np.corrcoef(encoded.astype(np.float64), encoded.astype(np.float64))[0, 1] > 0.99


def test_two_maskings_of_the_same_update_differ_by_a_fresh_self_mask() -> None:
    sim = make_round(5, bits=32, length=WORDS)
    node = sim.node("bank-3")
    update = sim.vectors[node]

    first = sim.mask(node, update).vector
    second = sim.mask(node, update).vector

    # pairwise masks are the same both times (same round keys); only the self-mask is new,
    # so the difference is itself uniform. Any word matches with probability 2**-32.
    assert np.count_nonzero(first == second) <= 2
    assert _top_nibble_p_value(first - second) > P_FLOOR
