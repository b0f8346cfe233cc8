"""`fedrisk audit` on a real DP simulation's run directory: pass, violation, unusable."""

import json
import shutil

import pytest
from fedrisk_cli import run_cli, simulate_into

pytestmark = pytest.mark.slow


def test_audit_of_a_real_dp_run(tmp_path):
    run_dir = tmp_path / "run"
    simulate_into(
        run_dir, "consortium=banks_3", "rounds=2", "privacy=dpsgd", "simulation.baselines=false"
    )

    clean = run_cli("audit", str(run_dir), cwd=tmp_path)
    report = json.loads((run_dir / "audit" / "report.json").read_text())
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert report["passed"] is True
    assert set(report["institutions"]) == {"bank_a", "bank_b", "bank_c"}

    tampered = tmp_path / "tampered"
    shutil.copytree(run_dir, tampered)
    ledger = next((tampered / "ledgers").glob("ledger-bank_b-*.jsonl"))
    ledger.write_text(ledger.read_text().replace('"epsilon":', '"epsilon":1', 1))
    bad = run_cli("audit", str(tampered), cwd=tmp_path)
    assert bad.returncode == 1
    assert "bank_b" in bad.stdout and "entry 0 (line 1)" in bad.stdout.replace("\n", " ")

    unusable = run_cli("audit", str(tmp_path / "nothing"), cwd=tmp_path)
    assert unusable.returncode == 2
    assert len(unusable.stderr.strip().splitlines()) == 1
    assert "Traceback" not in unusable.stderr
