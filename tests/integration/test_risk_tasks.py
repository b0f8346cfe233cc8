"""task=fraud and task=market_risk end to end: real Flower simulations on banks_3."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fedrisk_cli import run_cli

pytestmark = pytest.mark.slow


def simulate(run_dir: Path, *overrides: str) -> dict:
    done = run_cli("simulate", f"hydra.run.dir={run_dir}", *overrides, cwd=run_dir.parent)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    return json.loads((run_dir / "summary.json").read_text())


@pytest.fixture(scope="module")
def fraud(tmp_path_factory) -> tuple[Path, dict]:
    run_dir = tmp_path_factory.mktemp("fraud") / "run"
    overrides = ("task=fraud", "consortium=banks_3", "rounds=2", "task.fraud.rows_scale=5")
    return run_dir, simulate(run_dir, *overrides, "task.fraud.test_rows=20000")


@pytest.fixture(scope="module")
def market(tmp_path_factory) -> tuple[Path, dict]:
    run_dir = tmp_path_factory.mktemp("market") / "run"
    overrides = ("task=market_risk", "consortium=banks_3", "rounds=2", "privacy=dpsgd")
    return run_dir, simulate(run_dir, *overrides, "task.market.test_periods=500")


def test_fraud_run_completes_with_rare_fraud_and_sane_metrics(fraud):
    run_dir, summary = fraud
    test = pd.read_parquet(run_dir / "data" / "test.parquet")

    assert summary["task"] == "fraud" and summary["rounds_completed"] == 2
    assert {k: v["n_train"] for k, v in summary["institutions"].items()} == {
        "bank_a": 12_000,  # banks_3 rows × rows_scale 5, 80 % for training
        "bank_b": 8_000,
        "bank_c": 4_000,
    }
    rate = summary["global"]["positive_rate"]
    assert rate == pytest.approx(test["fraud"].mean()) and 0.001 < rate < 0.01
    # Far better than chance (PR-AUC of a random score is the fraud rate), below the oracle.
    assert 10 * rate < summary["global"]["pr_auc"] < 1.0
    assert 0.8 < summary["global"]["auc"] < summary["oracle_auc"] <= 1.0
    assert 0.0 < summary["global"]["recall_at_fpr"] <= 1.0
    assert set(summary["local_only"]) == {"bank_a", "bank_b", "bank_c"}
    for bank in ("bank_a", "bank_b", "bank_c"):
        table = pd.read_parquet(run_dir / "data" / bank / "train.parquet")
        assert 0.0005 < table["fraud"].mean() < 0.015, bank


def test_market_run_trains_the_gru_privately_past_only(market):
    run_dir, summary = market
    test = pd.read_parquet(run_dir / "data" / "test.parquet")

    assert summary["task"] == "market_risk" and summary["rounds_completed"] == 2
    assert summary["privacy"] == "dpsgd"
    for bank, info in summary["institutions"].items():
        assert 0 < info["epsilon_spent"] <= info["epsilon_budget"], bank
        train = pd.read_parquet(run_dir / "data" / bank / "train.parquet")
        assert train["t"].max() < test["t"].min(), bank  # never trained on the future
    with np.load(run_dir / "model.npz", allow_pickle=False) as model:
        assert any("rnn" in name for name in model.files)
    assert 0.4 < summary["global"]["auc"] < 1.0
    assert summary["oracle_auc"] > 0.7
    assert 0.02 < summary["global"]["positive_rate"] < 0.12


def test_market_run_backtests_each_banks_var(market):
    run_dir, summary = market
    test = pd.read_parquet(run_dir / "data" / "test.parquet")
    backtest = summary["var_backtest"]

    assert backtest["coverage"] == 0.95
    assert set(backtest["banks"]) == {"bank_a", "bank_b", "bank_c"}
    assert sum(b["exceptions"] for b in backtest["banks"].values()) == test["exception"].sum()
    for result in backtest["banks"].values():
        assert result["periods"] == 500
        assert result["expected_exceptions"] == pytest.approx(25.0)
        assert result["reject"] == (result["p_value"] < 0.05)
