"""A real simulation whose banks hold their own policies refuses a run without DP.

The researcher's run config asks for `privacy=none` (raw weights to the coordinator);
each simulated bank reads its policy from `simulation.policy_dir` (the files `fedrisk
consortium join` writes), refuses at the roll call naming the rule, and the run ends
cleanly before round 1 with the refusals in its record: nothing trained, nothing sent.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fedrisk_cli import run_cli

from fedrisk.client.policy import POLICY_FILE, write_policy

pytestmark = pytest.mark.slow

BANKS = ("bank_a", "bank_b", "bank_c")


def test_banks_policies_refuse_a_run_without_dp(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    for bank in BANKS:
        folder = tmp_path / "join" / bank
        folder.mkdir(parents=True)
        write_policy(folder, institution=bank)
        policies.mkdir(exist_ok=True)
        (policies / f"{bank}.yaml").write_bytes((folder / POLICY_FILE).read_bytes())
    run_dir = tmp_path / "run"

    done = run_cli(
        "simulate",
        f"hydra.run.dir={run_dir}",
        "consortium=banks_3",
        "rounds=2",
        "privacy=none",
        "simulation.baselines=false",
        f"simulation.policy_dir={policies}",
        cwd=tmp_path,
        timeout=600,
    )

    output = done.stdout + done.stderr
    assert "Traceback" not in output
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["rounds_completed"] == 0
    assert "before round 1" in summary["stop_reason"]
    refusals = summary["refusals"]
    assert sorted(refusals) == list(BANKS)
    for bank in BANKS:
        assert "privacy.mechanism" in refusals[bank] and "privacy=none" in refusals[bank]
    rounds = [
        json.loads(line)
        for line in (run_dir / "metrics.jsonl").read_text().splitlines()
        if line.strip()
    ]
    assert rounds == []  # no round started: no update, no digest
    assert not list((run_dir / "institutions").rglob("ledger-*.jsonl"))
