from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fedrisk.secure.masks import mask_vector
from fedrisk.secure.quantize import dequantize, quantize

_DTYPES = {32: np.uint32, 64: np.uint64}


@st.composite
def masked_round(draw: st.DrawFn) -> tuple[int, int, int, dict[tuple[int, int], bytes], int]:
    parties = draw(st.integers(min_value=2, max_value=7))
    length = draw(st.integers(min_value=0, max_value=300))
    bits = draw(st.sampled_from([32, 64]))
    seeds = {
        (i, j): draw(st.binary(min_size=32, max_size=32))
        for i in range(parties)
        for j in range(i + 1, parties)
    }
    data_seed = draw(st.integers(min_value=0, max_value=2**32 - 1))
    return parties, length, bits, seeds, data_seed


def _masked(
    party: int, update: np.ndarray, *, parties: int, bits: int, seeds: dict[tuple[int, int], bytes]
) -> np.ndarray:
    masked = update.copy()
    for other in range(parties):
        if other == party:
            continue
        mask = mask_vector(seeds[min(party, other), max(party, other)], update.size, bits=bits)
        masked = masked + mask if other > party else masked - mask  # wraps modulo 2**bits
    return masked


@settings(max_examples=50, deadline=None)
@given(masked_round())
def test_pairwise_masks_cancel_exactly(
    case: tuple[int, int, int, dict[tuple[int, int], bytes], int],
) -> None:
    parties, length, bits, seeds, data_seed = case
    rng = np.random.default_rng(data_seed)
    dtype = _DTYPES[bits]
    updates = rng.integers(0, 2**bits, size=(parties, length), dtype=dtype, endpoint=False)
    masked = [
        _masked(p, updates[p], parties=parties, bits=bits, seeds=seeds) for p in range(parties)
    ]
    total = np.sum(masked, axis=0, dtype=dtype)
    np.testing.assert_array_equal(total, np.sum(updates, axis=0, dtype=dtype))
    if length >= 8 and parties >= 2:
        assert not np.array_equal(masked[0], updates[0])  # masking really changed it


@settings(max_examples=25, deadline=None)
@given(masked_round())
def test_masked_quantized_sum_decodes_to_plaintext_sum(
    case: tuple[int, int, int, dict[tuple[int, int], bytes], int],
) -> None:
    parties, length, bits, seeds, data_seed = case
    rng = np.random.default_rng(data_seed)
    scale_bits = 16 if bits == 32 else 40
    values = rng.uniform(-1.0, 1.0, size=(parties, length))
    masked = [
        _masked(
            p,
            quantize(values[p], clip=1.0, bits=bits, scale_bits=scale_bits, rng=rng),
            parties=parties,
            bits=bits,
            seeds=seeds,
        )
        for p in range(parties)
    ]
    total = np.sum(masked, axis=0, dtype=_DTYPES[bits])
    decoded = dequantize(total, bits=bits, scale_bits=scale_bits, count=parties)
    assert np.all(np.abs(decoded - values.sum(axis=0)) <= parties * 2.0**-scale_bits)
