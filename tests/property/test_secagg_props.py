from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
from hypothesis import event, given, settings
from hypothesis import strategies as st

from fedrisk.strategies.secagg.key_shares import key_share_threshold


def _load_harness() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "strategies" / "secagg" / "harness.py"
    spec = importlib.util.spec_from_file_location("secagg_props_harness", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


harness = _load_harness()


@st.composite
def secagg_round(draw: st.DrawFn) -> tuple[int, int, int, int, list[bool], list[bool], int]:
    banks = draw(st.integers(min_value=3, max_value=9))
    degree = draw(st.sampled_from([0, 2, 4, 6]))
    bits = draw(st.sampled_from([32, 64]))
    length = draw(st.integers(min_value=0, max_value=200))
    dropped = draw(st.lists(st.booleans(), min_size=banks, max_size=banks))
    silent = draw(st.lists(st.booleans(), min_size=banks, max_size=banks))
    seed = draw(st.integers(min_value=0, max_value=2**32 - 1))
    return banks, degree, bits, length, dropped, silent, seed


def _recoverable(info: object, survivors: set[int], answering: set[int]) -> bool:
    """Every survivor's self-mask has ``threshold`` answering holders (its neighbours and
    itself), and every dropped bank that a survivor masked with has enough answering
    key-share holders (every other bank)."""
    graph, threshold = info.graph, info.threshold  # type: ignore[attr-defined]
    self_masks = all(
        len(set(graph[v]) & answering) + (v in answering) >= threshold for v in survivors
    )
    key_threshold = key_share_threshold(len(graph) - 1)
    round_keys = all(
        len(answering) >= key_threshold for j in set(graph) - survivors if set(graph[j]) & survivors
    )
    return self_masks and round_keys


@settings(max_examples=60, deadline=None)
@given(secagg_round())
def test_unmasked_total_is_the_plaintext_sum_exactly_when_recoverable(
    case: tuple[int, int, int, int, list[bool], list[bool], int],
) -> None:
    banks, degree, bits, length, dropped, silent, seed = case
    sim = harness.make_round(banks, bits=bits, length=length, degree=degree, seed=seed)
    names = [f"bank-{i}" for i in range(banks)]
    gone = {name for name, flag in zip(names, dropped, strict=True) if flag}
    quiet = {name for name, flag in zip(names, silent, strict=True) if flag} - gone
    survivors = {sim.node(name) for name in names if name not in gone}
    # a survivor among fewer than `threshold` of its share holders refuses to reveal
    refusing = {
        sim.name(v)
        for v in survivors
        if len(set(sim.info.holders(v)) & survivors) < sim.info.threshold
    } - quiet
    answering = {sim.node(name) for name in names if name not in gone | quiet | refusing}

    outcome = sim.run(dropped=gone, silent=quiet)

    recoverable = _recoverable(sim.info, survivors, answering)
    event("recoverable" if recoverable else "fails closed")
    if recoverable:
        assert outcome.total is not None, outcome.reason
        np.testing.assert_array_equal(outcome.total, sim.plaintext_sum(survivors))
        assert outcome.total.shape == (length,)
    else:
        assert outcome.total is None
        assert outcome.reason
    assert set(sim.refused) == refusing
    assert sorted(outcome.silent) == sorted(quiet | refusing)
