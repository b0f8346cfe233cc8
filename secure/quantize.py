"""Fixed-point encoding of real vectors into Z_{2^32} or Z_{2^64} with stochastic rounding.

A value ``x`` is clipped to ``[-clip, clip]``, scaled by ``2**scale_bits``, rounded up or
down at random so that the expectation is exact, and stored modulo ``2**bits``. Sums of
encodings are sums of the integers modulo ``2**bits``; `dequantize` reads them back as
signed, which is exact as long as `check_overflow` holds for the number of summands.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

SUPPORTED_BITS = (32, 64)

_UNSIGNED: dict[int, np.dtype[Any]] = {32: np.dtype(np.uint32), 64: np.dtype(np.uint64)}
_SIGNED: dict[int, np.dtype[Any]] = {32: np.dtype(np.int32), 64: np.dtype(np.int64)}


def check_overflow(*, clip: float, count: int, bits: int, scale_bits: int) -> None:
    """Check that the sum of ``count`` clipped, quantized values fits the signed range.

    Raises
    ------
    TypeError
        If an argument has the wrong type.
    ValueError
        If ``clip`` is not positive and finite, ``count < 1``, ``bits`` is not 32 or 64,
        ``scale_bits`` is outside ``[0, bits - 1)``, or
        ``count * ceil(clip * 2**scale_bits) >= 2**(bits - 1)``.
    """
    if not isinstance(clip, int | float) or isinstance(clip, bool):
        raise TypeError(f"`clip` must be a float; got {type(clip).__name__}")
    _check_encoding(bits=bits, scale_bits=scale_bits, count=count)
    if not (math.isfinite(clip) and clip > 0):
        raise ValueError(f"`clip` must be positive and finite; got {clip}")
    largest = count * math.ceil(math.ldexp(clip, scale_bits))
    if largest >= 2 ** (bits - 1):
        raise ValueError(
            f"clip × count × 2^scale_bits must stay below 2^(bits−1); got "
            f"{clip} × {count} × 2^{scale_bits} ≈ 2^{math.log2(largest):.2f} with bits={bits}"
        )


def quantize(
    values: np.ndarray,
    *,
    clip: float,
    bits: int,
    scale_bits: int,
    rng: np.random.Generator,
    stochastic: bool = True,
) -> np.ndarray:
    """Encode ``values`` as fixed-point integers modulo ``2**bits``.

    Parameters
    ----------
    values : np.ndarray
        Finite real values, any shape.
    clip : float
        Values are clipped to ``[-clip, clip]`` first.
    bits : int
        32 (``uint32`` output) or 64 (``uint64`` output).
    scale_bits : int
        Fractional bits: the resolution is ``2**-scale_bits``.
    rng : np.random.Generator
        Source of the rounding coins.
    stochastic : bool (default: True)
        Round up or down at random (unbiased); ``False`` rounds to the nearest
        integer (biased by at most half a step, no randomness used).

    Returns
    -------
    np.ndarray
        Unsigned integers of the same shape; negative values wrap modulo ``2**bits``.

    Raises
    ------
    TypeError
        If ``values`` is not a real-valued array or ``rng`` is not a Generator.
    ValueError
        If ``values`` holds NaN or infinity, or the parameters fail `check_overflow`
        for a single value.

    Notes
    -----
    Stochastic rounding is unbiased: ``E[dequantize(quantize(x))] = clip(x)``, since
    ``y = x * 2**scale_bits`` rounds up with probability ``y - floor(y)`` (both exact in
    binary floating point). The coins are not secret; any seeded Generator is fine.
    """
    check_overflow(clip=clip, count=1, bits=bits, scale_bits=scale_bits)
    if not isinstance(values, np.ndarray):
        raise TypeError(f"`values` must be a numpy array; got {type(values).__name__}")
    if not (np.issubdtype(values.dtype, np.floating) or np.issubdtype(values.dtype, np.integer)):
        raise TypeError(f"`values` must hold real numbers; got dtype {values.dtype}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"`rng` must be a numpy Generator; got {type(rng).__name__}")
    scaled = values.astype(np.float64)  # a copy, worked on in place from here
    np.clip(scaled, -clip, clip, out=scaled)
    np.ldexp(scaled, scale_bits, out=scaled)
    if not np.all(np.isfinite(scaled)):
        raise ValueError("`values` must be finite; got NaN or infinity")
    if stochastic:
        rounded = np.floor(scaled)
        np.subtract(scaled, rounded, out=scaled)  # the fraction, in [0, 1)
        rounded += rng.random(scaled.shape) < scaled
    else:
        np.add(scaled, 0.5, out=scaled)
        rounded = np.floor(scaled, out=scaled)
    words = rounded.astype(np.int64)
    # two's complement: wraps modulo 2**bits (for 64 bits the same words, reinterpreted)
    return words.view(np.uint64) if bits == 64 else words.astype(_UNSIGNED[bits])


def dequantize(sum_values: np.ndarray, *, bits: int, scale_bits: int, count: int) -> np.ndarray:
    """Decode a modular sum of ``count`` quantized vectors into real values.

    Parameters
    ----------
    sum_values : np.ndarray
        The ``uint32`` (bits=32) or ``uint64`` (bits=64) sum modulo ``2**bits``.
    bits : int
        The word size used by `quantize`.
    scale_bits : int
        The fractional bits used by `quantize`.
    count : int
        How many vectors were summed (``>= 1``); the decoding is exact only if
        `check_overflow` held for this count.

    Returns
    -------
    np.ndarray
        ``float64`` sum of the (clipped, rounded) values.

    Raises
    ------
    TypeError
        If ``sum_values`` is not an array of the unsigned dtype matching ``bits`` or a
        parameter is not an int.
    ValueError
        If ``bits``, ``scale_bits`` or ``count`` is out of range.
    """
    _check_encoding(bits=bits, scale_bits=scale_bits, count=count)
    if not isinstance(sum_values, np.ndarray) or sum_values.dtype != _UNSIGNED[bits]:
        got = sum_values.dtype if isinstance(sum_values, np.ndarray) else type(sum_values)
        raise TypeError(f"`sum_values` must be a {_UNSIGNED[bits]} array; got {got}")
    signed = sum_values.view(_SIGNED[bits])
    return np.ldexp(signed.astype(np.float64), -scale_bits)


def _check_encoding(*, bits: int, scale_bits: int, count: int) -> None:
    for name, value in (("count", count), ("bits", bits), ("scale_bits", scale_bits)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"`{name}` must be an int; got {type(value).__name__}")
    if count < 1:
        raise ValueError(f"`count` must be at least 1; got {count}")
    if bits not in SUPPORTED_BITS:
        raise ValueError(f"`bits` must be one of {SUPPORTED_BITS}; got {bits}")
    if not 0 <= scale_bits < bits - 1:
        raise ValueError(f"`scale_bits` must be in [0, {bits - 1}); got {scale_bits}")
