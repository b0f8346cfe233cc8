"""The synthetic transaction generator: reproducible, rare fraud, shared and home patterns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from fedrisk.data import TableEncoder, load_table
from fedrisk.data.fraud import FRAUD_PATTERNS, fraud_probability, fraud_schema, generate_fraud

BANKS = [("bank_a", 30_000), ("bank_b", 20_000), ("bank_c", 10_000)]
RATES = (0.001, 0.01)


@pytest.fixture(scope="module")
def consortium():
    return generate_fraud(BANKS, test_rows=60_000, fraud_rate_range=RATES, seed=42)


def test_same_seed_same_tables_and_banks_keyed_by_name(consortium):
    again = generate_fraud(BANKS[:2], test_rows=1000, fraud_rate_range=RATES, seed=42)
    other = generate_fraud(BANKS[:2], test_rows=1000, fraud_rate_range=RATES, seed=43)

    for name in ("bank_a", "bank_b"):  # dropping bank_c leaves the others unchanged
        pd.testing.assert_frame_equal(again.banks[name], consortium.banks[name])
    assert not other.banks["bank_a"].equals(again.banks["bank_a"])


def test_fraud_rates_in_range_differ_across_banks_and_are_realised(consortium):
    rates = [bank.fraud_rate for bank in consortium.profiles]

    assert all(RATES[0] <= r <= RATES[1] for r in rates)
    assert max(rates) / min(rates) > 1.5
    for bank in consortium.profiles:
        observed = consortium.banks[bank.name]["fraud"].sum()
        expected = bank.fraud_rate * bank.n_rows
        assert abs(observed - expected) < 4 * np.sqrt(expected) + 1, bank.name


def test_two_patterns_shared_by_every_bank_and_one_home_pattern_each(consortium):
    mixes = np.stack([bank.pattern_mix for bank in consortium.profiles])

    np.testing.assert_allclose(mixes.sum(1), 1.0)
    np.testing.assert_allclose(mixes[:, :2], np.tile(mixes[0, :2], (3, 1)))  # shared two
    homes = mixes[:, 2:].argmax(1)
    assert [FRAUD_PATTERNS[2 + h] for h in homes] == ["skimming", "gift_card_scam", "mule"]
    assert (mixes[:, 2:].max(1) / np.sort(mixes[:, 2:], 1)[:, -2] > 10).all()


def test_home_pattern_is_visible_in_the_banks_fraud(consortium):
    # Skimming is card-present (chip) thousands of km away; bank_a is its home.
    def skimming_share(table: pd.DataFrame) -> float:
        fraud = table[table["fraud"] == 1]
        return float(((fraud["channel"] == "chip") & (fraud["distance_km"] > 1500)).mean())

    assert skimming_share(consortium.banks["bank_a"]) > 0.25
    assert skimming_share(consortium.banks["bank_b"]) < 0.1


def test_oracle_is_calibrated_and_near_perfect_on_the_test_set(consortium):
    y = consortium.test["fraud"].to_numpy()
    p = consortium.test_oracle

    assert p.shape == y.shape and ((p >= 0) & (p <= 1)).all()
    assert abs(p.sum() - y.sum()) < 4 * np.sqrt(y.sum())
    top = p > 0.5
    assert abs(y[top].mean() - p[top].mean()) < 0.1
    assert roc_auc_score(y, p) > 0.98
    assert average_precision_score(y, p) > 0.6


def test_oracle_of_one_bank_equals_bayes_rule_on_its_own_rows(consortium):
    bank = consortium.profiles[0]
    table = consortium.banks[bank.name]
    p = fraud_probability(table, [bank], weights=np.ones(1))
    mixed = fraud_probability(table, consortium.profiles, weights=np.array([1.0, 0.0, 0.0]))

    np.testing.assert_allclose(p, mixed)
    assert abs(p.sum() - table["fraud"].sum()) < 4 * np.sqrt(table["fraud"].sum())


def test_tables_validate_against_the_schema_through_parquet(consortium, tmp_path):
    path = tmp_path / "bank_c.parquet"
    consortium.banks["bank_c"].to_parquet(path, index=False)

    table = load_table(path, fraud_schema(), min_rows=256)
    x = TableEncoder(fraud_schema()).encode(table)

    assert list(table.columns) == fraud_schema().columns
    assert x.shape == (10_000, 7 + 8 + 4) and np.isfinite(x).all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"fraud_rate_range": (0.0, 0.01)}, "fraud_rate_range"),
        ({"fraud_rate_range": (0.02, 0.01)}, "fraud_rate_range"),
        ({"test_rows": 0}, "test_rows"),
    ],
)
def test_bad_arguments_are_refused(kwargs, match):
    args = {"test_rows": 10, "fraud_rate_range": RATES, "seed": 1} | kwargs
    with pytest.raises(ValueError, match=match):
        generate_fraud(BANKS, **args)
