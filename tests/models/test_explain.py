"""Permutation importance and Integrated Gradients: known cases, completeness, pooling."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fedrisk.data.borrowers import credit_schema, draw_borrowers
from fedrisk.data.default_risk import default_probability
from fedrisk.data.encoding import TableEncoder
from fedrisk.data.schema import FeatureKind
from fedrisk.models.explain import (
    FeatureGroup,
    ImportanceSums,
    feature_groups,
    ig_importance,
    integrated_gradients,
    permutation_importance,
    pool_importances,
)
from fedrisk.models.spec import ModelSpec
from fedrisk.models.tabular import build_model, predict_logits


def logistic(weights: list[float], bias: float) -> torch.nn.Module:
    model = build_model(ModelSpec(kind="logistic"), len(weights), seed=0)
    with torch.no_grad():
        model.layers[0].weight.copy_(torch.tensor([weights]))
        model.layers[0].bias.fill_(bias)
    return model


def mlp(n_inputs: int, seed: int = 3) -> torch.nn.Module:
    return build_model(ModelSpec(kind="mlp", hidden=[16, 8], dropout=0.2), n_inputs, seed=seed)


def test_feature_groups_cover_one_hot_columns_in_order():
    groups = feature_groups([("income", 1), ("region", 3), ("age", 1)])

    assert groups == [
        FeatureGroup("income", (0,)),
        FeatureGroup("region", (1, 2, 3)),
        FeatureGroup("age", (4,)),
    ]
    with pytest.raises(ValueError, match="unique"):
        feature_groups([("a", 1), ("a", 2)])
    with pytest.raises(ValueError, match="at least one column"):
        feature_groups([("a", 0)])


def test_permutation_importance_matches_a_hand_computed_case():
    # f(x) = 2 x0 (x1 is ignored); three rows.
    model = logistic([2.0, 0.0], 0.0)
    x = np.array([[1.0, 5.0], [0.0, 6.0], [-1.0, 7.0]], dtype=np.float32)
    y = np.array([1.0, 0.0, 0.0])
    groups = feature_groups([("x0", 1), ("x1", 1)])

    result = permutation_importance(model, x, y, groups, seed=4, repeats=1)

    order = np.random.default_rng(4).permutation(3)  # the first draw permutes x0

    def loss(z: float, label: float) -> float:
        return math.log(1.0 + math.exp(z)) - label * z

    base = [loss(2.0, 1.0), loss(0.0, 0.0), loss(-2.0, 0.0)]
    permuted = [loss(2.0 * float(x[order[i], 0]), float(y[i])) for i in range(3)]
    assert result.rows == 3
    assert result.sums[0] == pytest.approx(sum(permuted) - sum(base), abs=1e-6)
    assert result.sums[1] == 0.0  # a feature the model ignores costs nothing when permuted


def test_permutation_importance_is_reproducible_and_checks_its_input():
    model = mlp(3)
    x = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.float64)
    groups = feature_groups([("a", 1), ("b", 2)])

    first = permutation_importance(model, x, y, groups, seed=9, repeats=2)
    again = permutation_importance(model, x, y, groups, seed=9, repeats=2)

    np.testing.assert_array_equal(first.sums, again.sums)
    with pytest.raises(ValueError, match="columns in"):
        permutation_importance(model, x, y, [FeatureGroup("z", (3,))], seed=0)
    with pytest.raises(ValueError, match="`y` must have shape"):
        permutation_importance(model, x, y[:-1], groups, seed=0)
    with pytest.raises(ValueError, match="`repeats`"):
        permutation_importance(model, x, y, groups, seed=0, repeats=0)


def test_integrated_gradients_of_a_linear_model_are_weight_times_offset():
    model = logistic([1.5, -2.0, 0.5], 0.3)
    x = np.random.default_rng(1).normal(size=(20, 3))
    baseline = np.array([0.1, -0.2, 0.0])

    attributions = integrated_gradients(model, x, baseline, steps=4)

    np.testing.assert_allclose(
        attributions, (x - baseline) * np.array([1.5, -2.0, 0.5]), rtol=1e-6, atol=1e-6
    )


def test_integrated_gradients_are_complete_for_an_mlp():
    model = mlp(5)
    x = np.random.default_rng(2).normal(size=(40, 5)).astype(np.float32)
    baseline = x.mean(axis=0)

    attributions = integrated_gradients(model, x, baseline, steps=512)

    with torch.no_grad():
        net = model.double().eval()
        gap = net(torch.from_numpy(x).double()) - net(torch.from_numpy(baseline[None]).double())
    # ReLU kinks make the midpoint rule's error O(1/steps), not O(1/steps²).
    np.testing.assert_allclose(attributions.sum(axis=1), gap.numpy(), atol=2e-3)
    with pytest.raises(ValueError, match="`baseline` must have shape"):
        integrated_gradients(model, x, baseline[:-1])


def test_per_bank_sums_pool_to_the_computation_on_pooled_rows():
    model = mlp(4)
    rng = np.random.default_rng(5)
    banks = [rng.normal(size=(n, 4)).astype(np.float32) for n in (30, 70, 11)]
    labels = [(b[:, 0] + rng.normal(size=len(b)) > 0).astype(np.float64) for b in banks]
    groups = feature_groups([("a", 1), ("b", 2), ("c", 1)])
    baseline = np.zeros(4)

    perm_parts = [
        permutation_importance(model, b, y, groups, seed=s, repeats=2)
        for s, (b, y) in enumerate(zip(banks, labels, strict=True))
    ]
    ig_parts = [ig_importance(model, b, baseline, groups, steps=16) for b in banks]

    pooled_x = np.concatenate(banks)
    pooled_y = np.concatenate(labels)
    # Pooled permutation importance with the banks' own (within-bank) permutations.
    logits = predict_logits(model, pooled_x)
    base = np.logaddexp(0, logits) - pooled_y * logits
    expected = np.zeros(len(groups))
    offsets = np.cumsum([0] + [len(b) for b in banks])
    rngs = [np.random.default_rng(s) for s in range(len(banks))]  # each bank's own seed
    for _repeat in range(2):
        for g, group in enumerate(groups):
            cols = list(group.columns)
            shuffled = pooled_x.copy()
            for b, r in enumerate(rngs):
                lo, hi = offsets[b], offsets[b + 1]
                shuffled[lo:hi, cols] = pooled_x[lo + r.permutation(hi - lo)][:, cols]
            z = predict_logits(model, shuffled)
            expected[g] += float((np.logaddexp(0, z) - pooled_y * z - base).sum())
    expected /= 2 * len(pooled_y)
    np.testing.assert_allclose(pool_importances(perm_parts), expected, rtol=1e-9, atol=1e-12)
    pooled_ig = ig_importance(model, pooled_x, baseline, groups, steps=16)
    np.testing.assert_allclose(pool_importances(ig_parts), pooled_ig.mean(), rtol=1e-9)


def test_pool_importances_rejects_mismatched_or_empty_parts():
    with pytest.raises(ValueError, match="at least one institution"):
        pool_importances([])
    with pytest.raises(ValueError, match="same features"):
        pool_importances([ImportanceSums(np.zeros(2), 3), ImportanceSums(np.zeros(3), 3)])
    with pytest.raises(ValueError, match="at least one row"):
        pool_importances([ImportanceSums(np.zeros(2), 0)])


@pytest.fixture(scope="module")
def credit_model() -> tuple[torch.nn.Module, np.ndarray, np.ndarray, list, list[str]]:
    """An MLP trained on synthetic credit files, and the generator's own top features."""
    torch.set_num_threads(1)  # shared CI cores: more threads only contend
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    table = draw_borrowers(rng, n_rows=12_000, segment_mix=(0.5, 0.3, 0.2), covariate_shift=0.0)
    truth = default_probability(table)
    schema = credit_schema()
    encoder = TableEncoder(schema)
    x, y = encoder.encode(table), (rng.random(len(truth)) < truth).astype(np.float32)

    # The generator's ranking: expected log-loss increase of the true default model
    # when one raw column is permuted.
    def expected_loss(q: np.ndarray) -> float:
        q = np.clip(q, 1e-12, 1 - 1e-12)
        return float(-(truth * np.log(q) + (1 - truth) * np.log(1 - q)).mean())

    base = expected_loss(truth)
    generator = {}
    for spec in schema.features:
        shuffled = table.copy()
        shuffled[spec.name] = table[spec.name].to_numpy()[rng.permutation(len(table))]
        generator[spec.name] = expected_loss(default_probability(shuffled)) - base
    ranking = sorted(generator, key=generator.__getitem__, reverse=True)

    model = build_model(ModelSpec(kind="mlp", hidden=[32], dropout=0.0), x.shape[1], seed=0)
    optimiser = torch.optim.Adam(model.parameters(), lr=0.01)
    features, labels = torch.from_numpy(x[:10_000]), torch.from_numpy(y[:10_000])
    for _ in range(15):
        order = torch.randperm(10_000)
        for start in range(0, 10_000, 256):
            batch = order[start : start + 256]
            optimiser.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                model(features[batch]), labels[batch]
            )
            loss.backward()
            optimiser.step()
    groups = feature_groups(
        [(f.name, 1 if f.kind is FeatureKind.numeric else len(f.levels)) for f in schema.features]
    )
    return model, x, y, groups, ranking


def top(values: np.ndarray, groups: list, k: int) -> list[str]:
    return [groups[i].name for i in np.argsort(-values)[:k]]


def test_both_methods_recover_the_generators_most_important_features(credit_model):
    model, x, y, groups, ranking = credit_model
    # The generator's own top four (checked here so a generator change shows up).
    assert set(ranking[:4]) == {"credit_utilisation", "debt_to_income", "loan_amount", "income"}
    held_x, held_y = x[10_000:], y[10_000:]

    perm = permutation_importance(model, held_x, held_y, groups, seed=0, repeats=3).mean()
    ig = ig_importance(model, held_x, x.mean(axis=0), groups, steps=32).mean()

    for values in (perm, ig):
        assert top(values, groups, 1) == [ranking[0]]
        assert set(top(values, groups, 4)) == set(ranking[:4])
