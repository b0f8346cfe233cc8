from __future__ import annotations

import os

import pytest
from Crypto.Protocol.SecretSharing import Shamir

from fedrisk.secure.shamir import combine_seed, split_seed


@pytest.mark.parametrize("size", [16, 32])
def test_split_then_combine(size: int) -> None:
    seed = os.urandom(size)
    shares = split_seed(seed, threshold=3, shares=5)
    assert [index for index, _ in shares] == [1, 2, 3, 4, 5]
    assert all(len(value) == size for _, value in shares)
    assert combine_seed(shares[1:4], threshold=3) == seed
    assert combine_seed(shares, threshold=3) == seed


def test_32_byte_shares_are_two_independent_halves() -> None:
    seed = os.urandom(32)
    shares = split_seed(seed, threshold=2, shares=3)
    first = combine_seed([(i, v[:16]) for i, v in shares[:2]], threshold=2)
    second = combine_seed([(i, v[16:]) for i, v in shares[1:]], threshold=2)
    assert first + second == seed


@pytest.mark.parametrize(("threshold", "count"), [(2, 3), (4, 7), (6, 10), (16, 30)])
def test_combine_matches_pycryptodome_on_every_index_set(threshold: int, count: int) -> None:
    seed = os.urandom(32)
    shares = split_seed(seed, threshold=threshold, shares=count)
    for start in range(count - threshold + 1):  # sliding windows: cached and fresh index sets
        for chosen in (shares[start : start + threshold], shares[start:][::-1]):
            expected = b"".join(
                bytes(Shamir.combine([(i, v[s : s + 16]) for i, v in chosen], ssss=False))
                for s in (0, 16)
            )
            assert combine_seed(chosen, threshold=threshold) == expected == seed


def test_maximum_share_count() -> None:
    seed = os.urandom(32)
    shares = split_seed(seed, threshold=2, shares=255)
    assert combine_seed([shares[0], shares[-1]], threshold=2) == seed


@pytest.mark.parametrize(
    "seed, threshold, count, error",
    [
        ("s" * 16, 2, 3, TypeError),
        (bytearray(16), 2, 3, TypeError),
        (bytes(16), 2.0, 3, TypeError),
        (bytes(16), 2, "3", TypeError),
        (bytes(15), 2, 3, ValueError),
        (bytes(24), 2, 3, ValueError),
        (bytes(64), 2, 3, ValueError),
        (bytes(16), 1, 3, ValueError),
        (bytes(16), 4, 3, ValueError),
        (bytes(16), 2, 256, ValueError),
    ],
)
def test_split_rejects_bad_arguments(
    seed: object, threshold: object, count: object, error: type
) -> None:
    with pytest.raises(error):
        split_seed(seed, threshold=threshold, shares=count)  # type: ignore[arg-type]


def test_combine_rejects_bad_shares() -> None:
    shares = split_seed(bytes(range(32)), threshold=3, shares=5)
    with pytest.raises(ValueError, match="at least 3"):
        combine_seed(shares[:2], threshold=3)
    with pytest.raises(ValueError, match="distinct"):
        combine_seed([shares[0], shares[0], shares[1]], threshold=3)
    with pytest.raises(ValueError, match=r"\[1, 255\]"):
        combine_seed([(0, shares[0][1]), shares[1], shares[2]], threshold=3)
    with pytest.raises(ValueError, match="16 or all 32"):
        combine_seed([shares[0], shares[1], (3, shares[2][1][:16])], threshold=3)
    with pytest.raises(ValueError):
        combine_seed(shares, threshold=1)
    with pytest.raises(TypeError):
        combine_seed([(1, "x" * 32), shares[1], shares[2]], threshold=3)
    with pytest.raises(TypeError):
        combine_seed([[1, shares[0][1]], shares[1], shares[2]], threshold=3)  # type: ignore[list-item]
    with pytest.raises(TypeError):
        combine_seed({1: b""}, threshold=2)  # type: ignore[arg-type]
