import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fedrisk.client.linear_clipping import clip_factors


@settings(max_examples=60, deadline=None)
@given(
    batch=st.integers(min_value=0, max_value=20),
    widths=st.lists(st.integers(min_value=1, max_value=6), min_size=2, max_size=4),
    scale=st.floats(min_value=1e-3, max_value=1e3),
    clip=st.floats(min_value=1e-2, max_value=10.0),
    seed=st.integers(min_value=0, max_value=2**31),
)
def test_clipped_per_record_norms_never_exceed_the_bound(batch, widths, scale, clip, seed):
    gen = torch.Generator().manual_seed(seed)
    inputs = [torch.randn(batch, w, generator=gen) * scale for w in widths[:-1]]
    grads = [torch.randn(batch, w, generator=gen) * scale for w in widths[1:]]

    norms, factors = clip_factors(inputs, grads, max_grad_norm=clip)

    # The explicit per-record gradient (outer products and biases) has the same norm.
    for i in range(batch):
        explicit = sum(
            torch.outer(g[i], a[i]).pow(2).sum() + g[i].pow(2).sum()
            for a, g in zip(inputs, grads, strict=True)
        ).sqrt()
        assert torch.isclose(norms[i], explicit, rtol=1e-4)
    assert torch.all(factors * norms <= clip * (1 + 1e-6))
    assert torch.all((factors > 0) & (factors <= 1))
