"""Crash and resume under DP-SGD with secure aggregation, on Flower's simulation engine.

The coordinator is SIGKILLed in the middle of round 3: as soon as one bank's ledger
holds its round-3 release, before the round is unmasked and aggregated. The resumed run
makes new run keys (a fresh roll call); each bank that had released round 3 answers it
again from its kept copy, masked anew, with a signed resend statement, and spends
nothing twice. The run ends with the uninterrupted run's model to the last bit, and the
auditor accepts the re-sent digests only through the banks' statements.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from fedrisk_cli import run_cli, simulate_into, simulate_killed

from fedrisk.client.revealed_rounds import revealed

pytestmark = pytest.mark.slow

BANKS = ("bank_a", "bank_b", "bank_c")
SECURE_RESUME = (
    "consortium=banks_3",
    "rounds=4",
    "seed=11",
    "privacy=dpsgd",
    "privacy.target_epsilon=4.0",
    "secagg=secaggplus",
    "simulation.baselines=false",
    "task.train.epochs=1",
)
CRASH_ROUND = 3
#: Per round, what depends on the run's fresh keys and masks, or on the clock.
RUN_SPECIFIC = ("seconds", "update_sha256", "resent")


def _ledger_rounds(run_dir: Path, bank: str) -> list[int]:
    files = list((run_dir / "institutions" / bank).glob("ledger-*.jsonl"))
    if not files:
        return []
    return [json.loads(line)["round"] for line in files[0].read_text().splitlines() if line]


def _released_mid_round(run_dir: Path) -> bool:
    return any(CRASH_ROUND in _ledger_rounds(run_dir, bank) for bank in BANKS)


def _lines(run_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _comparable(line: dict) -> dict:
    return {k: v for k, v in line.items() if k not in RUN_SPECIFIC}


@pytest.fixture(scope="module")
def secure_runs(tmp_path_factory) -> tuple[Path, Path, set[str]]:
    """The uninterrupted run, the crashed-and-resumed run, and who had released round 3."""
    root = tmp_path_factory.mktemp("secure-resume")
    whole = root / "whole"
    simulate_into(whole, *SECURE_RESUME)
    crashed = root / "crashed"
    simulate_killed(crashed, *SECURE_RESUME, until=_released_mid_round)
    assert len(_lines(crashed)) == CRASH_ROUND - 1  # round 3 was never recorded
    released = {b for b in BANKS if CRASH_ROUND in _ledger_rounds(crashed, b)}
    resumed = run_cli("simulate", f"resume={crashed}", cwd=root)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    return crashed, whole, released


def test_the_resumed_secure_run_ends_with_the_uninterrupted_model(secure_runs):
    crashed, whole, released = secure_runs

    assert released  # the crash fell after at least one release of round 3
    with np.load(crashed / "model.npz") as a, np.load(whole / "model.npz") as b:
        assert a.files == b.files
        for name in a.files:
            np.testing.assert_array_equal(a[name], b[name])
    got, want = _lines(crashed), _lines(whole)
    assert [_comparable(x) for x in got] == [_comparable(x) for x in want]
    assert all(line["secagg"]["unmasked"] is True for line in got)
    summary = json.loads((crashed / "summary.json").read_text())
    assert summary["rounds_completed"] == 4 and summary["stop_reason"] == "completed"
    for bank in BANKS:  # each bank noted every round it helped unmask, on its own disk
        state_dir = crashed / "institutions" / bank
        assert revealed(state_dir, run_id=summary["run_id"]) == [1, 2, 3, 4]


def test_banks_that_had_released_the_crashed_round_resend_it_with_a_statement(secure_runs):
    crashed, _, released = secure_runs
    third = _lines(crashed)[CRASH_ROUND - 1]

    assert sorted(third.get("resent", {})) == sorted(released)
    assert sorted(third["trained"]) == list(BANKS)
    for bank, statement in third["resent"].items():
        entries = [
            json.loads(line)
            for line in next((crashed / "institutions" / bank).glob("ledger-*.jsonl"))
            .read_text()
            .splitlines()
        ]
        entry = next(e for e in entries if e["round"] == CRASH_ROUND)
        assert statement["ledger_seq"] == entry["seq"]
        assert statement["ledger_sha256"] == entry["update_sha256"]
        assert statement["sent_sha256"] == third["update_sha256"][bank]
        assert statement["sent_sha256"] != entry["update_sha256"]  # masked anew


def test_the_resumed_secure_run_audits_clean_with_each_round_spent_once(secure_runs, cli):
    crashed, whole, _ = secure_runs
    audits = {d: cli("audit", str(d), cwd=d.parent) for d in (crashed, whole)}

    for run_dir, audit in audits.items():
        assert audit.returncode == 0, (run_dir, audit.stdout[-2000:] + audit.stderr[-2000:])
    reports = {d: json.loads((d / "audit" / "report.json").read_text()) for d in audits}
    got, want = (reports[d]["institutions"] for d in (crashed, whole))
    for bank in BANKS:
        assert got[bank]["entries"] == want[bank]["entries"] == 4
        assert got[bank]["claimed_epsilon"] == want[bank]["claimed_epsilon"]
        assert _ledger_rounds(crashed, bank) == [1, 2, 3, 4]
