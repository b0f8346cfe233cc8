"""`fedrisk audit` on a real DP simulation's run directory: pass, violation, unusable."""

import json
import shutil

import pytest
from fedrisk_cli import run_cli

pytestmark = pytest.mark.slow


def test_audit_of_a_real_dp_run(tmp_path, dpsgd_secagg_run, dpsgd_secagg_audit):
    # The session's shared DP-SGD + SecAgg+ run (conftest.py); a copy is tampered with.
    run_dir = dpsgd_secagg_run

    clean = dpsgd_secagg_audit
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
