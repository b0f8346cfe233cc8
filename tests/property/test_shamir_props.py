from __future__ import annotations

from Crypto.Protocol.SecretSharing import Shamir
from hypothesis import given, settings
from hypothesis import strategies as st

from fedrisk.secure.shamir import combine_seed, split_seed


@st.composite
def sharing(draw: st.DrawFn) -> tuple[bytes, int, int, list[int]]:
    seed = draw(st.binary(min_size=16, max_size=16) | st.binary(min_size=32, max_size=32))
    count = draw(st.integers(min_value=2, max_value=12))
    threshold = draw(st.integers(min_value=2, max_value=count))
    order = draw(st.permutations(range(count)))
    return seed, threshold, count, list(order)


@settings(max_examples=60, deadline=None)
@given(sharing())
def test_any_threshold_shares_reconstruct(case: tuple[bytes, int, int, list[int]]) -> None:
    seed, threshold, count, order = case
    shares = split_seed(seed, threshold=threshold, shares=count)
    chosen = [shares[position] for position in order[:threshold]]
    assert combine_seed(chosen, threshold=threshold) == seed


@settings(max_examples=60, deadline=None)
@given(sharing())
def test_fewer_than_threshold_shares_do_not_reveal_the_seed(
    case: tuple[bytes, int, int, list[int]],
) -> None:
    seed, threshold, count, order = case
    shares = split_seed(seed, threshold=threshold, shares=count)
    chosen = [shares[position] for position in order[: threshold - 1]]
    # Interpolating t-1 points gives a value independent of the seed (uniformly random);
    # equality has probability 2**-128 per half.
    guess = b"".join(
        bytes(Shamir.combine([(i, v[s : s + 16]) for i, v in chosen], ssss=False))
        for s in range(0, len(seed), 16)
    )
    assert guess != seed
