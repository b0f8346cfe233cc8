"""Risk metrics, fairness and calibration in a default run's outputs, recomputed independently.

One real simulation (banks_3, 2 rounds, seed 11; the session's shared run in
``conftest.py``, which test_simulation reads too) serves every test: the summary's figures are
recomputed with scikit-learn and fedrisk's row-level fairness report from the saved
model, the held-out file and each bank's own validation rows.
"""

import json
import math

import numpy as np
import pytest
import torch
import yaml
from sklearn.calibration import calibration_curve
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score, roc_curve

from fedrisk.client.node_data import load_node_data
from fedrisk.conf.root import load_settings
from fedrisk.models.fairness import fairness_report
from fedrisk.models.tabular import build_model, predict_proba
from fedrisk.server.evaluation import HeldOutSet
from fedrisk.simulations.consortium import TRAIN_FILE, resolve_schema

pytestmark = pytest.mark.slow
BANKS = ("bank_a", "bank_b", "bank_c")


@pytest.fixture(scope="module")
def run(three_banks_run) -> dict:
    run_dir = three_banks_run.dir
    settings = resolve_schema(load_settings(yaml.safe_load((run_dir / "config.yaml").read_text())))
    held_out = HeldOutSet.load(run_dir / "data" / "test.parquet", settings.task.schema)
    model = build_model(settings.task.model, held_out.x.shape[1], seed=0)
    with np.load(run_dir / "model.npz", allow_pickle=False) as saved:
        model.load_state_dict({k: torch.from_numpy(saved[k]) for k in saved.files})
    banks = {
        name: load_node_data(
            run_dir / "data" / name / TRAIN_FILE,
            settings.task.schema,
            institution=name,
            min_rows=settings.task.train.batch_size,
            seed=settings.seed,
        )
        for name in BANKS
    }
    return {
        "dir": run_dir,
        "stdout": three_banks_run.stdout,
        "summary": json.loads((run_dir / "summary.json").read_text()),
        "task": settings.task,
        "held_out": held_out,
        "scores": predict_proba(model, held_out.x),
        "banks": banks,
        "bank_scores": {name: predict_proba(model, node.x_val) for name, node in banks.items()},
    }


def _recall_at_fpr(y: np.ndarray, s: np.ndarray, budget: float) -> float:
    fpr, tpr, _ = roc_curve(y, s)
    return float(tpr[fpr <= budget].max())


def _expected_cost(y: np.ndarray, s: np.ndarray, threshold: float, ratio: float) -> float:
    flagged = s >= threshold
    return (ratio * np.sum((y == 1) & ~flagged) + np.sum((y == 0) & flagged)) / len(y)


def _same(a: float | None, b: float) -> bool:
    return (a is None and math.isnan(b)) or a == pytest.approx(b, abs=1e-12)


def test_summary_records_the_configured_risk_settings(run):
    task = run["task"]

    assert run["summary"]["risk_metrics"] == {
        "threshold": 0.2,
        "false_alarm_rate": 0.05,
        "cost_ratio": 4.0,
    }
    assert (task.threshold, task.false_alarm_rate, task.cost_ratio) == (0.2, 0.05, 4.0)


def test_global_risk_metrics_match_scikit_learn_on_the_saved_model(run):
    y, s, task = run["held_out"].y, run["scores"], run["task"]
    reported = run["summary"]["global"]

    assert reported["auc"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert reported["pr_auc"] == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert reported["brier"] == pytest.approx(brier_score_loss(y, s), abs=1e-12)
    assert reported["recall_at_fpr"] == pytest.approx(_recall_at_fpr(y, s, 0.05), abs=1e-12)
    assert reported["expected_cost"] == pytest.approx(_expected_cost(y, s, 0.2, 4.0), abs=1e-12)
    assert 0.0 < reported["recall_at_fpr"] < 1.0 and task.cost_ratio == 4.0


def test_calibration_curve_and_ece_match_scikit_learn(run):
    y, s = run["held_out"].y, run["scores"]
    calibration = run["summary"]["calibration"]
    observed, predicted = calibration_curve(y, s, n_bins=10, strategy="uniform")

    np.testing.assert_allclose(calibration["observed_rate"], observed, rtol=1e-12)
    np.testing.assert_allclose(calibration["mean_predicted"], predicted, rtol=1e-12)
    assert sum(calibration["count"]) == len(y)
    ece = np.sum(np.asarray(calibration["count"]) / len(y) * np.abs(observed - predicted))
    assert run["summary"]["global"]["ece"] == pytest.approx(ece, abs=1e-12)
    png = run["dir"] / calibration["file"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_per_bank_metrics_are_the_final_model_on_each_banks_own_rows(run):
    per_bank = run["summary"]["per_bank"]

    assert sorted(per_bank) == list(BANKS)
    for name, node in run["banks"].items():
        s = run["bank_scores"][name]
        assert per_bank[name]["n"] == len(node.y_val)
        assert per_bank[name]["auc"] == pytest.approx(roc_auc_score(node.y_val, s), abs=1e-12)
        assert per_bank[name]["expected_cost"] == pytest.approx(
            _expected_cost(node.y_val, s, 0.2, 4.0), abs=1e-12
        )


def test_fairness_per_bank_pooled_and_global_equal_the_row_level_reports(run):
    fairness = run["summary"]["fairness"]
    report = fairness["attributes"]["age_band"]
    keys = ("demographic_parity_difference", "equal_opportunity_difference")

    assert fairness["threshold"] == 0.2
    for name, node in run["banks"].items():
        rows = fairness_report(
            node.y_val, run["bank_scores"][name], node.groups_val["age_band"], threshold=0.2
        )
        assert all(_same(report["per_bank"][name][k], rows[k]) for k in keys), name
    pooled = fairness_report(
        np.concatenate([n.y_val for n in run["banks"].values()]),
        np.concatenate(list(run["bank_scores"].values())),
        np.concatenate([n.groups_val["age_band"] for n in run["banks"].values()]),
        threshold=0.2,
    )
    assert all(_same(report["pooled_banks"][k], pooled[k]) for k in keys)
    assert report["pooled_banks"]["groups"] == json.loads(json.dumps(pooled["groups"]))
    held = fairness_report(
        run["held_out"].y, run["scores"], run["held_out"].groups["age_band"], threshold=0.2
    )
    assert all(_same(report["global"][k], held[k]) for k in keys)
    assert report["global"]["demographic_parity_difference"] > 0.0  # decisions differ by age


def test_rounds_record_per_bank_risk_metrics_and_the_end_of_run_tables_print(run):
    lines = [json.loads(x) for x in (run["dir"] / "metrics.jsonl").read_text().splitlines()]
    last = [line for line in lines if line.get("aggregated")][-1]

    assert last["central"]["recall_at_fpr"] == run["summary"]["global"]["recall_at_fpr"]
    assert set(last["institutions"]) == set(BANKS)
    assert all("expected_cost" in m for m in last["institutions"].values())
    for title in ("Calibration and decisions", "Global model at each institution", "Fairness"):
        assert title in run["stdout"], title
