"""The synthetic market: regimes, volatility clustering, past-only windows, forecast splits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from fedrisk.client.node_data import load_node_data
from fedrisk.data import DataValidationError, TableEncoder, load_table
from fedrisk.data.market import (
    LABEL,
    TIME,
    _simulate,
    forecast_split,
    generate_market,
    market_schema,
    window_rows,
)

BANKS = [("bank_a", 1500), ("bank_b", 1000), ("bank_c", 600)]
KNOBS = {"window": 10, "test_periods": 400, "coverage": 0.95, "var_window": 250}


@pytest.fixture(scope="module")
def market():
    return generate_market(BANKS, seed=42, **KNOBS)


def assert_past_only(train_times: np.ndarray, test_times: np.ndarray) -> None:
    """The rolling-forecast rule: every training timestamp precedes every test timestamp."""
    assert train_times.size and test_times.size
    assert train_times.max() < test_times.min(), (train_times.max(), test_times.min())


def test_same_seed_same_windows(market):
    again = generate_market(BANKS, seed=42, **KNOBS)
    other = generate_market(BANKS, seed=7, **KNOBS)

    for name, _ in BANKS:
        pd.testing.assert_frame_equal(again.banks[name], market.banks[name])
    np.testing.assert_array_equal(again.test_oracle, market.test_oracle)
    assert not other.banks["bank_a"].equals(market.banks["bank_a"])


def test_histories_end_at_the_origin_and_the_test_window_follows(market):
    for name, rows in BANKS:
        times = market.banks[name][TIME].to_numpy()
        assert len(times) == rows
        np.testing.assert_array_equal(times, np.arange(market.origin - rows, market.origin))
        assert_past_only(times, market.test[TIME].to_numpy())
    assert set(market.test[TIME]) == set(range(market.origin, market.origin + 400))
    assert len(market.test) == 3 * 400


def test_regimes_switch_and_volatility_clusters():
    regimes, vol, shocks = _simulate(np.random.default_rng(0), 20_000)
    index = (vol * shocks).mean(axis=1)
    squared = index**2

    shares = np.bincount(regimes, minlength=3) / regimes.size
    assert (shares > 0.03).all()  # calm, stressed and crisis all occur
    assert (np.diff(regimes) != 0).sum() > 50  # and switch back and forth
    assert index[regimes == 2].std() > 2.5 * index[regimes == 0].std()

    def autocorr(x: np.ndarray, lag: int) -> float:
        return float(np.corrcoef(x[:-lag], x[lag:])[0, 1])

    assert all(autocorr(squared, lag) > 0.1 for lag in (1, 5, 10))  # clustering
    assert abs(autocorr(index, 1)) < 0.05  # but returns themselves are not predictable


def test_exceptions_are_rare_cluster_in_crises_and_the_oracle_ranks_them(market):
    y = market.test[LABEL].to_numpy()
    train = pd.concat(market.banks.values())

    assert 0.03 < train[LABEL].mean() < 0.1
    stamps = train[TIME].to_numpy()
    crisis = market.regimes[stamps] == 2
    assert train[LABEL][crisis].mean() > 2 * train[LABEL][~crisis].mean()
    assert roc_auc_score(y, market.test_oracle) > 0.7
    assert abs(market.test_oracle.sum() - y.sum()) < 4 * np.sqrt(y.sum()) + 5


def test_a_window_uses_only_periods_before_its_timestamp():
    rng = np.random.default_rng(3)
    book, index = rng.normal(0, 0.01, 600), rng.normal(0, 0.01, 600)
    rows, _ = window_rows(book, index, window=10, coverage=0.95, var_window=250)
    tau = 450
    book_changed, index_changed = book.copy(), index.copy()
    book_changed[tau:] *= 5.0
    index_changed[tau:] = -index_changed[tau:]
    changed, _ = window_rows(book_changed, index_changed, window=10, coverage=0.95, var_window=250)
    features = [c for c in rows.columns if c not in (LABEL, TIME)]

    before = rows[TIME] <= tau
    pd.testing.assert_frame_equal(rows.loc[before, features], changed.loc[before, features])
    assert not rows.loc[rows[TIME] == tau + 1, features].equals(
        changed.loc[changed[TIME] == tau + 1, features]
    )


@pytest.mark.parametrize("seed", range(5))
def test_forecast_split_never_trains_on_the_future(seed):
    times = np.random.default_rng(seed).permutation(np.repeat(np.arange(100, 400), 3))

    train, test = forecast_split(times, origin=250, horizon=50)

    assert_past_only(times[train], times[test])
    assert set(times[test]) == set(range(250, 300))
    assert (np.diff(times[train]) >= 0).all() and len(train) == 150 * 3


def test_the_past_only_check_catches_a_reversed_split():
    times = np.arange(100)
    train, test = forecast_split(times, origin=60, horizon=20)

    with pytest.raises(AssertionError):
        assert_past_only(times[test], times[train])  # training on the later window


def test_node_keeps_its_latest_windows_for_validation(market, tmp_path):
    path = tmp_path / "bank_b.parquet"
    market.banks["bank_b"].to_parquet(path, index=False)
    schema = market_schema(10)

    node = load_node_data(path, schema, institution="bank_b", min_rows=64, seed=1)
    table = load_table(path, schema)
    encoded = TableEncoder(schema).encode(table.sort_values(TIME))

    assert node.x_train.shape == (800, 20) and node.x_val.shape == (200, 20)
    np.testing.assert_array_equal(node.x_train, encoded[:800])  # oldest 80 % train
    np.testing.assert_array_equal(node.x_val, encoded[800:])  # latest 20 % validate
    assert table[TIME].dtype == np.int64
    assert TIME not in node.feature_names


def test_a_fractional_timestamp_is_refused_naming_the_column(market, tmp_path):
    table = market.banks["bank_c"].astype({TIME: np.float64})
    table.loc[5, TIME] = 3.5
    path = tmp_path / "bad.csv"
    table.to_csv(path, index=False)

    with pytest.raises(DataValidationError, match=r"column 't'.*row 6.*whole number"):
        load_table(path, market_schema(10))


def test_schema_is_lag_major_and_time_is_not_a_feature():
    schema = market_schema(3)

    assert schema.feature_names == [
        "book_l3", "index_l3", "book_l2", "index_l2", "book_l1", "index_l1",
    ]  # fmt: skip
    assert schema.columns[-2:] == [LABEL, TIME]
    with pytest.raises(ValueError, match="window"):
        market_schema(1)
