"""The vector an institution masks: its weighted update in fixed point, plus counts.

Layout of one institution's vector (words modulo ``2**bits``)::

    quantize(w · Δ (all arrays, flattened in ArrayRecord order) || w · train_loss)
    || rows || clipped

with ``w = rows / weight_scale`` (``weight_scale`` is the public ``secagg.max_rows``, or 1
when every institution weighs 1 under institution-level DP), ``Δ`` the change the
institution made to the global model, ``rows`` its FedAvg weight and ``clipped`` how many
of its coordinates hit the clipping range. The sum therefore carries the weighted
update, the weighted loss, the total weight and the total clipped count, and the
coordinator learns no institution's row count or loss.

Error bound: each coordinate of one vector is off by less than one step ``2**-scale_bits``
(stochastic rounding; half a step when rounding to nearest) plus float64 rounding
(``clip · 2**-52``), so the decoded weighted mean of ``n`` institutions is within
``n · (2**-scale_bits + clip · 2**-52) / W`` of the exact one, with
``W = Σ rows / weight_scale``, as long as nothing was clipped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fedrisk.conf.secagg import SecAggConfig
from fedrisk.secure.quantize import dequantize, quantize

COUNT_WORDS = 2  # rows, clipped coordinates
_UNSIGNED: dict[int, np.dtype[Any]] = {32: np.dtype(np.uint32), 64: np.dtype(np.uint64)}


@dataclass(frozen=True)
class Encoding:
    """Fixed-point parameters shared by every institution of a run."""

    bits: int
    scale_bits: int
    clip: float
    stochastic: bool
    weight_scale: int

    @classmethod
    def for_run(cls, secagg: SecAggConfig, *, institutions: int, uniform_weights: bool) -> Encoding:
        """Build the encoding of a run of ``institutions`` (checked against overflow).

        Raises
        ------
        ValueError
            If the configuration could overflow for this many institutions.
        """
        return cls(
            bits=secagg.bits,
            scale_bits=secagg.checked_for(institutions),
            clip=secagg.clip,
            stochastic=secagg.stochastic_rounding,
            weight_scale=1 if uniform_weights else secagg.max_rows,
        )

    @property
    def dtype(self) -> np.dtype[Any]:
        """Unsigned word type of the vectors."""
        return _UNSIGNED[self.bits]

    def vector_length(self, n_parameters: int) -> int:
        """Words in one institution's vector for a model of ``n_parameters``."""
        return n_parameters + 1 + COUNT_WORDS

    def error_bound(self, *, count: int, weight_total: int) -> float:
        """Largest error of a decoded mean coordinate over ``count`` institutions.

        Each institution's coordinate is off by less than one step (half with
        rounding to nearest), plus the float64 rounding of values up to ``clip``
        (``2**-53`` relative, twice: on encoding and on decoding the sum).
        """
        step = math.ldexp(1.0 if self.stochastic else 0.5, -self.scale_bits)
        floating = math.ldexp(self.clip, -52)
        return count * (step + floating) * self.weight_scale / weight_total


@dataclass(frozen=True)
class DecodedSum:
    """What the coordinator learns from an unmasked sum."""

    mean_delta: list[np.ndarray]
    weight_total: int
    mean_loss: float
    clipped: int


def encode_update(
    delta: Sequence[np.ndarray],
    *,
    weight: int,
    loss: float,
    encoding: Encoding,
    rng: np.random.Generator,
) -> np.ndarray:
    """Encode one institution's update as a vector of words modulo ``2**bits``.

    Raises
    ------
    ValueError
        If ``weight`` is not in ``[1, weight_scale]`` or the update or loss holds NaN
        or infinity.
    """
    if not 1 <= weight <= encoding.weight_scale:
        raise ValueError(
            f"the update's weight must be in [1, {encoding.weight_scale}] (`secagg.max_rows`); "
            f"got {weight}"
        )
    w = weight / encoding.weight_scale
    flat = np.concatenate([np.asarray(d, dtype=np.float64).ravel() for d in delta] + [[loss]])
    if not np.all(np.isfinite(flat)):
        raise ValueError("the update must be finite; got NaN or infinity")
    flat *= w
    clipped = int(np.count_nonzero(np.abs(flat) > encoding.clip))
    words = quantize(
        flat,
        clip=encoding.clip,
        bits=encoding.bits,
        scale_bits=encoding.scale_bits,
        rng=rng,
        stochastic=encoding.stochastic,
    )
    return np.concatenate([words, np.array([weight, clipped], dtype=encoding.dtype)])


def decode_sum(
    total: np.ndarray, *, shapes: Sequence[tuple[int, ...]], encoding: Encoding, count: int
) -> DecodedSum:
    """Decode the unmasked sum of ``count`` institutions' vectors.

    Raises
    ------
    ValueError
        If ``total`` does not have the length the shapes imply, or the total weight is
        not positive.
    """
    sizes = [math.prod(shape) for shape in shapes]
    if total.shape != (encoding.vector_length(sum(sizes)),):
        raise ValueError(
            f"the sum must hold {encoding.vector_length(sum(sizes))} words; got {total.shape}"
        )
    weight_total = int(total[-2])
    if weight_total < 1:
        raise ValueError(f"the total weight must be positive; got {weight_total}")
    values = dequantize(
        total[:-COUNT_WORDS].copy(), bits=encoding.bits, scale_bits=encoding.scale_bits, count=count
    )
    values *= encoding.weight_scale / weight_total
    arrays, at = [], 0
    for shape, size in zip(shapes, sizes, strict=True):
        arrays.append(values[at : at + size].reshape(shape))
        at += size
    return DecodedSum(
        mean_delta=arrays,
        weight_total=weight_total,
        mean_loss=float(values[-1]),
        clipped=int(total[-1]),
    )
