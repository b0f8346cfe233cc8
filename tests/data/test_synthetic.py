from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from fedrisk.data import (
    BankProfile,
    FeatureKind,
    SyntheticConsortium,
    TableEncoder,
    credit_schema,
    generate_credit_consortium,
    load_table,
    power_law_sizes,
)
from fedrisk.data.default_risk import default_probability

PRIME, SUBPRIME, MIXED = (1.0, 0.0, 0.0), (0.0, 0.0, 1.0), (0.5, 0.3, 0.2)

FIVE_BANKS = [
    BankProfile(name="bank_a", n_rows=4000, segment_mix=(0.7, 0.2, 0.1), label_shift=-0.3),
    BankProfile(name="bank_b", n_rows=4000, segment_mix=MIXED),
    BankProfile(
        name="bank_c",
        n_rows=4000,
        segment_mix=(0.3, 0.4, 0.3),
        label_shift=0.2,
        covariate_shift=0.2,
    ),
    BankProfile(
        name="bank_d",
        n_rows=4000,
        segment_mix=(0.2, 0.3, 0.5),
        label_shift=0.4,
        covariate_shift=0.3,
    ),
    BankProfile(
        name="bank_e",
        n_rows=4000,
        segment_mix=(0.6, 0.3, 0.1),
        label_shift=-0.1,
        covariate_shift=-0.2,
    ),
]


@pytest.fixture(scope="module")
def five_banks() -> SyntheticConsortium:
    return generate_credit_consortium(FIVE_BANKS, test_rows=20_000, seed=7)


def _single(profile: BankProfile, *, seed: int = 3) -> SyntheticConsortium:
    return generate_credit_consortium([profile], test_rows=1, seed=seed)


def test_schema_has_at_least_15_features_of_both_kinds() -> None:
    schema = credit_schema()

    kinds = [spec.kind for spec in schema.features]
    assert len(schema.features) >= 15
    assert kinds.count(FeatureKind.numeric) >= 8
    assert kinds.count(FeatureKind.categorical) >= 4
    assert schema.label == "default"
    assert schema.protected == ["age_band"]


def test_tables_have_schema_columns_and_loader_dtypes(five_banks: SyntheticConsortium) -> None:
    schema = five_banks.schema

    for table in [*five_banks.banks.values(), five_banks.test]:
        assert list(table.columns) == schema.columns
        assert table[schema.label].dtype == np.int64
        for spec in schema.features:
            expected = np.float64 if spec.kind is FeatureKind.numeric else "str"
            assert table[spec.name].dtype == expected, spec.name


def test_sizes_match_profiles(five_banks: SyntheticConsortium) -> None:
    assert list(five_banks.banks) == [p.name for p in FIVE_BANKS]
    assert all(len(five_banks.banks[p.name]) == p.n_rows for p in FIVE_BANKS)
    assert all(len(five_banks.bank_true_pd[p.name]) == p.n_rows for p in FIVE_BANKS)
    assert len(five_banks.test) == len(five_banks.test_true_pd) == 20_000


def test_generated_values_lie_within_the_schema(five_banks: SyntheticConsortium) -> None:
    table = pd.concat([*five_banks.banks.values(), five_banks.test])

    for spec in five_banks.schema.features:
        column = table[spec.name]
        if spec.kind is FeatureKind.numeric:
            assert spec.low is not None and spec.high is not None
            assert column.min() >= spec.low and column.max() <= spec.high, spec.name
            if spec.integer:
                assert (column == np.floor(column)).all(), spec.name
            # The range fits the data: the central 98% spans a good part of it.
            values = np.log1p(column) if spec.log else column
            low, high = (
                (np.log1p(spec.low), np.log1p(spec.high)) if spec.log else (spec.low, spec.high)
            )
            spread = values.quantile(0.99) - values.quantile(0.01)
            assert spread >= 0.2 * (high - low), spec.name
        else:
            assert set(column) == set(spec.levels), spec.name


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_bank_table_round_trips_through_the_loader(tmp_path: Path, fmt: str) -> None:
    consortium = _single(BankProfile(name="bank_a", n_rows=500))
    table = consortium.banks["bank_a"]
    path = tmp_path / f"bank_a.{fmt}"
    if fmt == "csv":
        table.to_csv(path, index=False)
    else:
        table.to_parquet(path, index=False)

    loaded = load_table(path, consortium.schema, min_rows=500)

    pd.testing.assert_frame_equal(loaded, table, check_exact=False, rtol=1e-12)


def test_same_seed_gives_identical_tables() -> None:
    first = generate_credit_consortium(FIVE_BANKS[:3], test_rows=2_000, seed=11)
    second = generate_credit_consortium(FIVE_BANKS[:3], test_rows=2_000, seed=11)

    for name in first.banks:
        pd.testing.assert_frame_equal(first.banks[name], second.banks[name], check_exact=True)
        np.testing.assert_array_equal(first.bank_true_pd[name], second.bank_true_pd[name])
    pd.testing.assert_frame_equal(first.test, second.test, check_exact=True)
    np.testing.assert_array_equal(first.test_true_pd, second.test_true_pd)


def test_other_seed_gives_other_tables() -> None:
    first = generate_credit_consortium(FIVE_BANKS[:1], test_rows=10, seed=1)
    second = generate_credit_consortium(FIVE_BANKS[:1], test_rows=10, seed=2)

    assert not first.banks["bank_a"].equals(second.banks["bank_a"])


def test_adding_or_reordering_banks_leaves_the_others_unchanged() -> None:
    base = generate_credit_consortium(FIVE_BANKS[:2], test_rows=100, seed=5)
    newcomer = BankProfile(name="bank_z", n_rows=300, segment_mix=SUBPRIME)
    grown = generate_credit_consortium([newcomer, *reversed(FIVE_BANKS[:2])], test_rows=100, seed=5)

    for name in base.banks:
        pd.testing.assert_frame_equal(base.banks[name], grown.banks[name], check_exact=True)
        np.testing.assert_array_equal(base.bank_true_pd[name], grown.bank_true_pd[name])


def test_mixed_portfolio_defaults_at_about_eight_percent() -> None:
    pd_ = _single(BankProfile(name="big", n_rows=100_000, segment_mix=MIXED)).bank_true_pd["big"]

    assert 0.065 <= pd_.mean() <= 0.095


@pytest.mark.parametrize(
    "mix", [PRIME, (0.0, 1.0, 0.0), SUBPRIME, MIXED, (0.2, 0.3, 0.5), (0.9, 0.1, 0.0)]
)
@pytest.mark.parametrize("label_shift", [-0.7, 0.0, 0.7])
def test_default_rate_stays_between_2_and_20_percent(
    mix: tuple[float, float, float], label_shift: float
) -> None:
    profile = BankProfile(name="b", n_rows=20_000, segment_mix=mix, label_shift=label_shift)

    consortium = _single(profile)

    expected = consortium.bank_true_pd["b"].mean()
    realised = consortium.banks["b"]["default"].mean()
    assert 0.02 <= expected <= 0.20
    assert 0.02 <= realised <= 0.20


@pytest.mark.parametrize("covariate_shift", [-0.5, 0.5])
def test_default_rate_stays_in_range_under_moderate_covariate_shift(covariate_shift: float) -> None:
    profile = BankProfile(
        name="b", n_rows=20_000, segment_mix=MIXED, covariate_shift=covariate_shift
    )

    assert 0.02 <= _single(profile).bank_true_pd["b"].mean() <= 0.20


def test_five_bank_consortium_rates_are_plausible(five_banks: SyntheticConsortium) -> None:
    rates = {name: table["default"].mean() for name, table in five_banks.banks.items()}

    assert all(0.02 <= rate <= 0.20 for rate in rates.values()), rates
    assert rates["bank_a"] < rates["bank_b"] < rates["bank_d"]


def test_subprime_bank_defaults_more_and_pays_higher_rates() -> None:
    prime = _single(BankProfile(name="b", n_rows=20_000, segment_mix=PRIME)).banks["b"]
    subprime = _single(BankProfile(name="b", n_rows=20_000, segment_mix=SUBPRIME)).banks["b"]

    assert subprime["default"].mean() > prime["default"].mean() + 0.02
    assert subprime["interest_rate"].mean() > prime["interest_rate"].mean() + 6.0
    assert subprime["income"].median() < prime["income"].median()


def test_label_shift_moves_only_the_labels_and_in_its_direction() -> None:
    base = BankProfile(name="b", n_rows=20_000, segment_mix=MIXED)

    runs = {shift: _single(replace(base, label_shift=shift)) for shift in (-0.5, 0.0, 0.5)}

    tables = {shift: run.banks["b"] for shift, run in runs.items()}
    true_rates = [runs[shift].bank_true_pd["b"].mean() for shift in (-0.5, 0.0, 0.5)]
    realised = [tables[shift]["default"].mean() for shift in (-0.5, 0.0, 0.5)]
    assert true_rates[0] < true_rates[1] < true_rates[2]
    assert realised[0] < realised[1] < realised[2]
    reference = tables[0.0].drop(columns="default")
    for shift in (-0.5, 0.5):
        pd.testing.assert_frame_equal(tables[shift].drop(columns="default"), reference)
        assert np.all(
            np.sign(runs[shift].bank_true_pd["b"] - runs[0.0].bank_true_pd["b"]) == np.sign(shift)
        )


def test_covariate_shift_moves_feature_means_towards_risk() -> None:
    means = {}
    for shift in (-0.5, 0.0, 0.5):
        profile = BankProfile(name="b", n_rows=20_000, segment_mix=MIXED, covariate_shift=shift)
        consortium = _single(profile)
        table = consortium.banks["b"]
        means[shift] = {
            "log_income": np.log(table["income"]).mean(),
            "debt_to_income": table["debt_to_income"].mean(),
            "credit_utilisation": table["credit_utilisation"].mean(),
            "interest_rate": table["interest_rate"].mean(),
            "true_pd": consortium.bank_true_pd["b"].mean(),
        }
    low, mid, high = means[-0.5], means[0.0], means[0.5]

    assert low["log_income"] > mid["log_income"] > high["log_income"]
    # Half a within-segment sd (0.45 on log income, 8 points of DTI) at the median.
    assert mid["log_income"] - high["log_income"] == pytest.approx(0.5 * 0.45, rel=0.15)
    assert high["debt_to_income"] - mid["debt_to_income"] == pytest.approx(0.5 * 8.0, rel=0.15)
    for name in ("debt_to_income", "credit_utilisation", "interest_rate", "true_pd"):
        assert low[name] < mid[name] < high[name], name


def test_test_set_oracle_is_the_unshifted_default_model(five_banks: SyntheticConsortium) -> None:
    oracle = default_probability(five_banks.test, label_shift=0.0)

    np.testing.assert_allclose(five_banks.test_true_pd, oracle)
    assert five_banks.test["default"].mean() == pytest.approx(oracle.mean(), abs=0.01)


def test_bank_oracle_includes_the_bank_label_shift(five_banks: SyntheticConsortium) -> None:
    table = five_banks.banks["bank_d"]

    np.testing.assert_allclose(
        five_banks.bank_true_pd["bank_d"], default_probability(table, label_shift=0.4)
    )


def test_test_set_mixes_banks_by_size() -> None:
    small = BankProfile(name="prime_bank", n_rows=1_000, segment_mix=PRIME)
    large = BankProfile(name="sub_bank", n_rows=9_000, segment_mix=SUBPRIME)

    test = generate_credit_consortium([small, large], test_rows=20_000, seed=4).test

    # Prime borrowers are priced around 8%, subprime around 17.5%: the mix sets the mean.
    expected = 0.1 * 8.0 + 0.9 * 17.5 + 0.3  # plus the long-term premium
    assert test["interest_rate"].mean() == pytest.approx(expected, abs=0.6)


def test_oracle_auc_is_strong_and_beats_a_linear_model(five_banks: SyntheticConsortium) -> None:
    encoder = TableEncoder(five_banks.schema)
    train = pd.concat(five_banks.banks.values(), ignore_index=True)
    y_test = five_banks.test["default"].to_numpy()

    oracle_auc = roc_auc_score(y_test, five_banks.test_true_pd)
    linear = LogisticRegression(max_iter=2_000).fit(encoder.encode(train), encoder.labels(train))
    linear_auc = roc_auc_score(y_test, linear.predict_proba(encoder.encode(five_banks.test))[:, 1])

    assert 0.80 <= oracle_auc <= 0.90
    assert linear_auc < oracle_auc - 0.02


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "", "n_rows": 10}, "`name` must be a non-empty string"),
        ({"name": "b", "n_rows": 0}, "bank 'b': `n_rows` must be at least 1; got 0"),
        ({"name": "b", "n_rows": 5, "segment_mix": (0.5, 0.5, 0.5)}, "summing to 1"),
        ({"name": "b", "n_rows": 5, "segment_mix": (1.2, -0.2, 0.0)}, "non-negative"),
        ({"name": "b", "n_rows": 5, "segment_mix": (0.5, 0.5)}, "3 non-negative shares"),
    ],
)
def test_invalid_profile_is_rejected(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BankProfile(**kwargs)  # type: ignore[arg-type]


def test_consortium_arguments_are_validated() -> None:
    bank = BankProfile(name="b", n_rows=5)

    with pytest.raises(ValueError, match="`profiles` must list at least one bank"):
        generate_credit_consortium([], test_rows=5, seed=0)
    with pytest.raises(ValueError, match=r"bank names must be unique; got duplicates \['b'\]"):
        generate_credit_consortium([bank, bank], test_rows=5, seed=0)
    with pytest.raises(ValueError, match="`test_rows` must be at least 1; got 0"):
        generate_credit_consortium([bank], test_rows=0, seed=0)
    with pytest.raises(ValueError, match="`seed` must be non-negative; got -1"):
        generate_credit_consortium([bank], test_rows=5, seed=-1)


def test_power_law_sizes_known_values() -> None:
    assert power_law_sizes(3, total_rows=110, exponent=1.0, min_rows=1) == [60, 30, 20]
    assert power_law_sizes(4, total_rows=100, exponent=2.0, min_rows=10) == [64, 16, 10, 10]
    assert power_law_sizes(4, total_rows=10, exponent=0.0, min_rows=1) == [3, 3, 2, 2]
    assert power_law_sizes(1, total_rows=7, exponent=3.0, min_rows=7) == [7]


@given(
    n_banks=st.integers(1, 60),
    exponent=st.floats(0.0, 3.0),
    min_rows=st.integers(1, 500),
    extra=st.integers(0, 100_000),
)
def test_power_law_sizes_properties(
    n_banks: int, exponent: float, min_rows: int, extra: int
) -> None:
    total = n_banks * min_rows + extra

    sizes = power_law_sizes(n_banks, total_rows=total, exponent=exponent, min_rows=min_rows)

    assert len(sizes) == n_banks
    assert sum(sizes) == total
    assert min(sizes) >= min_rows
    assert sizes == sorted(sizes, reverse=True)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0, 100, 1.0, 1), "`n_banks` must be at least 1; got 0"),
        ((3, 100, 1.0, 0), "`min_rows` must be at least 1; got 0"),
        ((3, 100, -0.5, 1), "`exponent` must be >= 0; got -0.5"),
        ((3, 20, 1.0, 10), "`total_rows` must be at least n_banks \\* min_rows = 30; got 20"),
    ],
)
def test_power_law_sizes_rejects_bad_arguments(
    args: tuple[int, int, float, int], message: str
) -> None:
    n_banks, total_rows, exponent, min_rows = args

    with pytest.raises(ValueError, match=message):
        power_law_sizes(n_banks, total_rows=total_rows, exponent=exponent, min_rows=min_rows)
