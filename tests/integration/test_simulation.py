"""Real Flower simulations (Ray backend), run through the `fedrisk simulate` CLI."""

import json
from pathlib import Path

import numpy as np
import pytest
from shared_runs import THREE_BANKS

pytestmark = pytest.mark.slow


def metrics_lines(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def three_banks(three_banks_run) -> Path:
    """banks_3, 2 rounds, seed 11 with baselines (the session's shared run, conftest.py)."""
    return three_banks_run.dir


def test_summary_contract(three_banks):
    summary = json.loads((three_banks / "summary.json").read_text())

    assert summary["rounds_completed"] == 2
    assert summary["seed"] == 11
    assert summary["stop_reason"] == "completed"
    for key in ("auc", "pr_auc", "ks", "brier"):
        assert 0.0 <= summary["global"][key] <= 1.0
    assert 0.6 < summary["global"]["auc"] < 0.95
    assert 0.6 < summary["pooled"]["auc"] < 0.95
    assert set(summary["local_only"]) == {"bank_a", "bank_b", "bank_c"}
    assert all(0.5 < m["auc"] < 0.95 for m in summary["local_only"].values())
    assert summary["oracle_auc"] > summary["pooled"]["auc"]
    # banks_3 holds 3000/2000/1000 rows; 20% of each stays at the bank for validation.
    assert {k: v["n_train"] for k, v in summary["institutions"].items()} == {
        "bank_a": 2400,
        "bank_b": 1600,
        "bank_c": 800,
    }


def test_run_directory_files(three_banks):
    files = ("config.yaml", "metrics.jsonl", "summary.json", "model.npz", "auc.png", "loss.png")
    for name in files:
        assert (three_banks / name).stat().st_size > 0, name
    assert (three_banks / "auc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with np.load(three_banks / "model.npz", allow_pickle=False) as model:
        assert len(model.files) == 6  # MLP [64, 32]: three weight matrices, three biases
    lines = metrics_lines(three_banks)
    assert [line["round"] for line in lines] == [1, 2]
    for line in lines:
        assert line["trained"] == ["bank_a", "bank_b", "bank_c"]
        assert line["failures"] == {}
        assert set(line["institutions"]) == {"bank_a", "bank_b", "bank_c"}
        assert line["central"]["n"] == 10000


def test_final_model_file_reproduces_reported_auc(three_banks):
    import torch
    import yaml

    from fedrisk.conf.root import load_settings
    from fedrisk.models.metrics import risk_metrics
    from fedrisk.models.tabular import build_model, predict_proba
    from fedrisk.server.evaluation import HeldOutSet
    from fedrisk.simulations.consortium import resolve_schema

    cfg = yaml.safe_load((three_banks / "config.yaml").read_text())
    settings = resolve_schema(load_settings(cfg))
    held_out = HeldOutSet.load(three_banks / "data" / "test.parquet", settings.task.schema)
    model = build_model(settings.task.model, held_out.x.shape[1], seed=0)
    with np.load(three_banks / "model.npz", allow_pickle=False) as saved:
        model.load_state_dict({k: torch.from_numpy(saved[k]) for k in saved.files})
    auc = risk_metrics(held_out.y, predict_proba(model, held_out.x))["auc"]

    summary = json.loads((three_banks / "summary.json").read_text())
    assert auc == pytest.approx(summary["global"]["auc"], abs=1e-12)


def test_same_seed_same_metrics_to_the_last_digit(three_banks, tmp_path, simulate):
    again = tmp_path / "again"
    simulate(again, *THREE_BANKS, "simulation.baselines=false")

    first, second = metrics_lines(three_banks), metrics_lines(again)
    for a, b in zip(first, second, strict=True):
        assert a["central"] == b["central"]
        assert a["institutions"] == b["institutions"]
        assert a["train"] == b["train"]


def test_fedprox_with_sampling_trains_two_of_three_banks_per_round(tmp_path, simulate):
    run_dir = tmp_path / "prox"
    summary = simulate(
        run_dir,
        "consortium=banks_3",
        "rounds=2",
        "strategy=fedprox",
        "strategy.fraction_train=0.67",
        "simulation.baselines=false",
    )

    assert summary["strategy"] == "fedprox"
    assert summary["rounds_completed"] == 2
    lines = metrics_lines(run_dir)
    assert all(len(line["trained"]) == 2 for line in lines)
    assert "pooled" not in summary


def test_default_consortium_meets_the_acceptance_bar(default_run):
    summary = json.loads((default_run / "summary.json").read_text())

    assert summary["rounds_completed"] == 10
    assert abs(summary["global"]["auc"] - summary["pooled"]["auc"]) <= 0.02
    local = [m["auc"] for m in summary["local_only"].values()]
    assert summary["global"]["auc"] > np.mean(local)
    assert summary["oracle_auc"] is not None


def test_explanations_of_the_final_model_are_pooled_from_every_bank(three_banks):
    summary = json.loads((three_banks / "summary.json").read_text())
    explanations = summary["explanations"]

    assert explanations["banks"] == ["bank_a", "bank_b", "bank_c"]
    assert explanations["rows"] == {"bank_a": 600, "bank_b": 400, "bank_c": 200}
    assert explanations["warning"] is None and explanations["failures"] == {}
    for method in ("permutation", "integrated_gradients"):
        pooled = explanations[method]
        assert len(pooled) == 17  # one entry per column of the credit schema
        weighted = {
            feature: sum(
                explanations["rows"][bank] * explanations["per_bank"][bank][method][feature]
                for bank in explanations["banks"]
            )
            / 1200
            for feature in pooled
        }
        assert pooled == pytest.approx(weighted, rel=1e-9, abs=1e-12)
        # The generator's strongest driver of default leads both rankings.
        assert max(pooled, key=pooled.__getitem__) == "credit_utilisation"
    assert (three_banks / "explanations.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
