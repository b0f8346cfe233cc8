"""secagg=secaggplus on Flower's simulation engine: real nodes, real crypto, real dropouts."""

import json
from pathlib import Path

import pytest
from fedrisk_cli import run_cli

pytestmark = pytest.mark.slow

QUICK = ("rounds=3", "simulation.baselines=false")


def _rounds(run_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_secure_aggregation_matches_plaintext_within_the_quantisation_bound(
    tmp_path, simulate, default_run
):
    # The plaintext twin: the first three rounds of the session's default run (same
    # consortium, seed and schedule; its later rounds and baselines come after them).
    plain = json.loads((default_run / "summary.json").read_text())
    secure = simulate(tmp_path / "secure", *QUICK, "secagg=secaggplus")

    plain_rounds, secure_rounds = _rounds(default_run)[:3], _rounds(tmp_path / "secure")
    assert plain["rounds_completed"] == 10 and plain["seed"] == secure["seed"]
    for p, s in zip(plain_rounds, secure_rounds, strict=True):
        record = s["secagg"]
        assert record["unmasked"] is True
        assert record["participants"] == ["bank_a", "bank_b", "bank_c", "bank_d", "bank_e"]
        # the consistency round (on by default) is a stage of its own
        assert record["dropped"] == {"train": [], "consistency": [], "unmask": []}
        assert record["clipped_coordinates"] == 0
        assert len(record["aggregate_sha256"]) == 64
        # The quantisation error of one round is bounded per coordinate; across three
        # rounds of training it moves the held-out AUC by far less than 1e-4.
        assert record["error_bound"] < 1e-4
        assert s["central"]["auc"] == pytest.approx(p["central"]["auc"], abs=1e-4)
        # What the server records per bank is the digest of the masked message.
        assert set(s["update_sha256"]) == set(p["update_sha256"])
        assert s["update_sha256"] != p["update_sha256"]
    assert secure["secure_aggregation"] == {"rounds_unmasked": 3}
    # The coordinator never learns a bank's row count under secure aggregation.
    assert all(entry["n_train"] is None for entry in secure["institutions"].values())
    assert all(entry["n_train"] > 0 for entry in plain["institutions"].values())


def test_dpsgd_under_secure_aggregation_audits_clean(dpsgd_secagg_run, dpsgd_secagg_audit):
    # The session's shared DP-SGD + SecAgg+ run (FedAdam, banks_3, 4 rounds; conftest.py).
    summary = json.loads((dpsgd_secagg_run / "summary.json").read_text())
    audit = dpsgd_secagg_audit

    assert summary["privacy"] == "dpsgd"
    assert summary["secure_aggregation"]["rounds_unmasked"] == 4
    assert audit.returncode == 0, audit.stdout[-2000:] + audit.stderr[-2000:]
    report = json.loads((dpsgd_secagg_run / "audit" / "report.json").read_text())
    digest_checks = [c for c in report["checks"] if "digest" in c["name"]]
    assert digest_checks and all(c["passed"] for c in digest_checks)


def test_institution_level_dp_adds_noise_to_the_unmasked_sum(tmp_path, simulate):
    summary = simulate(
        tmp_path / "run",
        "rounds=2",
        "simulation.baselines=false",
        "privacy=central",
        "privacy.central_clipping_side=client",
        "privacy.central_noise_multiplier=2.0",
        "secagg=secaggplus",
    )

    assert summary["secure_aggregation"]["rounds_unmasked"] == 2
    assert summary["institution_level"]["releases"] == 2
    assert all(r["secagg"]["unmasked"] for r in _rounds(tmp_path / "run"))


def test_dropouts_at_each_stage_recover_and_too_many_fail_closed(tmp_path, simulate):
    faults = (
        "faults.dropouts=["
        "{institution:bank_b,stage:train,rounds:[1]},"
        "{institution:bank_c,stage:unmask,rounds:[1,2]},"
        "{institution:bank_a,stage:unmask,rounds:[3]},"
        "{institution:bank_d,stage:unmask,rounds:[3]},"
        "{institution:bank_e,stage:unmask,rounds:[3]}]"
    )
    # Round 1 loses two of five banks (one at each stage). The default threshold for 5
    # (4, above two thirds) tolerates one; the strict majority, 3, set here on purpose,
    # tolerates two, which is what lets one round exercise both recovery paths.
    summary = simulate(tmp_path / "run", *QUICK, "secagg=secaggplus", "secagg.threshold=3", faults)
    first, second, third = _rounds(tmp_path / "run")

    # Round 1: bank_b drops before masking and bank_c goes silent at unmask; bank_b's
    # round key is rebuilt from the shares it handed out, bank_c's self-mask from its
    # neighbours' shares. The coordinator unmasks as soon as every secret has enough
    # shares, so bank_c's error reply is either counted as silence or, if the sum was
    # complete before it arrived, listed as not awaited; no other bank is silent.
    for record in (first, second):
        assert record["aggregated"] and record["secagg"]["unmasked"]
        unmask = record["secagg"]["dropped"]["unmask"]
        assert unmask in ([], ["bank_c"])
        assert "bank_c" in unmask + record["secagg"]["unmask_not_awaited"]
    assert first["secagg"]["dropped"]["train"] == ["bank_b"]
    assert first["failures"] == {"bank_b": "error: injected dropout: bank_b at train in round 1"}
    # Round 3: three of five silent at unmask leaves 2 shares of each self-mask, below
    # the threshold of 3: nothing is unmasked, the model stays, the run goes on (skip).
    assert third["aggregated"] is False
    assert third["secagg"]["unmasked"] is False
    assert "self-mask has 2 of 3 shares" in third["secagg"]["failure"]
    assert "central" not in third
    assert summary["stop_reason"] == "completed"
    assert summary["rounds_completed"] == 2
    assert set(summary["secure_aggregation"]["failed_rounds"]) == {"3"}


def test_failed_round_stops_the_run_when_configured(tmp_path):
    run_dir = tmp_path / "run"
    done = run_cli(
        "simulate",
        f"hydra.run.dir={run_dir}",
        *QUICK,
        "secagg=secaggplus",
        "secagg.on_failure=stop",
        "faults.dropouts=[{institution:bank_a,stage:unmask,rounds:[2]},"
        "{institution:bank_b,stage:unmask,rounds:[2]},{institution:bank_c,stage:unmask,rounds:[2]}]",
        cwd=tmp_path,
    )

    summary = json.loads((run_dir / "summary.json").read_text())
    assert done.returncode == 0, done.stderr[-2000:]
    assert summary["rounds_completed"] == 1
    assert summary["stop_reason"].startswith("round 2: secure aggregation failed closed")
    assert "run stopped early" in done.stdout


def test_fedadam_sparse_graph_and_consistency_round(tmp_path, simulate):
    summary = simulate(
        tmp_path / "run",
        *QUICK,
        "consortium=banks_20_skewed",
        "strategy=fedadam",
        "secagg=secaggplus",
        "secagg.degree=4",
        "secagg.consistency_check=true",
    )
    rounds = _rounds(tmp_path / "run")

    assert summary["secure_aggregation"]["rounds_unmasked"] == 3
    assert all(len(r["secagg"]["participants"]) == 20 for r in rounds)
    assert rounds[-1]["central"]["auc"] > 0.6


def test_impossible_secagg_settings_stop_before_anything_runs(tmp_path):
    done = run_cli(
        "simulate",
        "secagg=secaggplus",
        "secagg.threshold=2",
        f"hydra.run.dir={tmp_path / 'x'}",
        cwd=tmp_path,
    )

    assert done.returncode == 2
    assert "`secagg.threshold` must exceed half of the 5 shares" in done.stderr
    assert "Traceback" not in done.stderr
