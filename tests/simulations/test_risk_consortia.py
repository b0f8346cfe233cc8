"""Building the fraud and market-risk consortia from the shipped task configs."""

import json

import numpy as np
import pytest

from fedrisk.conf.root import ConfigError
from fedrisk.data import load_table
from fedrisk.models import ModelKind
from fedrisk.simulations.consortium import VAR_BACKTEST_FILE, build_consortium, resolve_schema
from fedrisk.simulations.entry import check_overrides


def test_fraud_task_writes_scaled_banks_with_rare_fraud(tmp_path):
    overrides = ["task=fraud", "consortium=banks_3", "task.fraud.rows_scale=2"]
    settings = resolve_schema(check_overrides([*overrides, "task.fraud.test_rows=5000"]))

    built = build_consortium(settings, tmp_path)

    assert settings.task.model.kind is ModelKind.mlp
    tables = {
        n: load_table(tmp_path / n / "train.parquet", built.schema) for n in built.institutions
    }
    assert {n: len(t) for n, t in tables.items()} == {
        "bank_a": 6000,
        "bank_b": 4000,
        "bank_c": 2000,
    }
    rates = [t["fraud"].mean() for t in tables.values()]
    assert all(0.0 < r < 0.02 for r in rates) and len(set(rates)) == 3
    assert built.oracle_scores is not None and built.oracle_scores.shape == (5000,)


def test_market_task_cuts_histories_at_one_origin_and_backtests_the_var(tmp_path):
    settings = resolve_schema(
        check_overrides(["task=market_risk", "consortium=banks_3", "task.market.test_periods=300"])
    )

    built = build_consortium(settings, tmp_path)

    assert settings.task.model.kind is ModelKind.gru and settings.task.model.window == 20
    assert built.schema.time == "t" and len(built.schema.features) == 40
    test = load_table(built.test_path, built.schema)
    for name, rows in zip(built.institutions, (3000, 2000, 1000), strict=True):
        train = load_table(tmp_path / name / "train.parquet", built.schema)
        assert len(train) == rows
        assert train["t"].max() + 1 == test["t"].min()  # history ends where the test begins
    backtest = json.loads((tmp_path / VAR_BACKTEST_FILE).read_text())
    assert [b["periods"] for b in backtest["banks"].values()] == [300, 300, 300]
    assert sum(b["exceptions"] for b in backtest["banks"].values()) == test["exception"].sum()
    assert np.isfinite(built.oracle_scores).all()


def test_a_window_that_disagrees_with_the_model_is_refused():
    with pytest.raises(ConfigError, match=r"`task\.model\.window` must equal"):
        check_overrides(["task=market_risk", "task.model.window=10"])
    settings = check_overrides(["task=market_risk", "task.market.window=12"])
    assert settings.task.model.window == 12  # filled in from the market's window
    with pytest.raises(ConfigError, match=r"`task\.model\.window` must be set"):
        check_overrides(["task.model.kind=gru"])  # credit rows are not windows
