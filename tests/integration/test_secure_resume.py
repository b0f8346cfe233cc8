"""Crash and resume under DP-SGD with secure aggregation, on Flower's simulation engine.

The coordinator of a FedAdam run is SIGKILLed in the middle of round 3: as soon as one
bank's ledger holds its round-3 release, before the round is unmasked and aggregated.
The resumed run makes new run keys (a fresh roll call); each bank that had released
round 3 answers it again from its kept copy, masked anew, with a signed resend
statement, and spends nothing twice. The run ends with the uninterrupted run's model to
the last bit (FedAdam's moments come back from the checkpoint), the same metrics and ε,
and the auditor accepts the re-sent digests only through the banks' statements.

The uninterrupted twin is the session's shared DP-SGD + SecAgg+ run (``conftest.py``).
That a plaintext bank sends its kept update again byte-for-byte, with no statement, is
``tests/client/test_private_resend.py``.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from fedrisk_cli import run_cli, simulate_killed
from shared_runs import DPSGD_SECAGG, DPSGD_SECAGG_BANKS, DPSGD_SECAGG_ROUNDS

pytestmark = pytest.mark.slow

BANKS = DPSGD_SECAGG_BANKS
ROUNDS = DPSGD_SECAGG_ROUNDS
CRASH_ROUND = 3
#: Per round, what depends on the run's fresh keys and masks, or on the clock.
RUN_SPECIFIC = ("seconds", "update_sha256", "resent")


def _ledger_entries(folder: Path, bank: str) -> list[dict]:
    """BANK's ledger in FOLDER: its own state folder, or the run's ``ledgers/`` copy."""
    files = list(folder.glob(f"ledger-{bank}-*.jsonl"))
    if not files:
        return []
    return [json.loads(line) for line in files[0].read_text().splitlines() if line]


def _ledger_rounds(run_dir: Path, bank: str) -> list[int]:
    return [e["round"] for e in _ledger_entries(run_dir / "institutions" / bank, bank)]


def _released_mid_round(run_dir: Path) -> bool:
    return any(CRASH_ROUND in _ledger_rounds(run_dir, bank) for bank in BANKS)


def _lines(run_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def _comparable(line: dict) -> dict:
    out = {k: v for k, v in line.items() if k not in RUN_SPECIFIC}
    # which survivors' reveals the coordinator no longer needed depends on arrival order
    out["secagg"] = {k: v for k, v in out["secagg"].items() if k != "unmask_not_awaited"}
    return out


@pytest.fixture(scope="module")
def secure_runs(tmp_path_factory, dpsgd_secagg_run) -> tuple[Path, Path, set[str]]:
    """The uninterrupted run, the crashed-and-resumed run, and who had released round 3."""
    root = tmp_path_factory.mktemp("secure-resume")
    crashed = root / "crashed"
    simulate_killed(crashed, *DPSGD_SECAGG, until=_released_mid_round)
    assert len(_lines(crashed)) == CRASH_ROUND - 1  # round 3 was never recorded
    released = {b for b in BANKS if CRASH_ROUND in _ledger_rounds(crashed, b)}
    resumed = run_cli("simulate", f"resume={crashed}", cwd=root)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    return crashed, dpsgd_secagg_run, released


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
    summary, uninterrupted = _summary(crashed), _summary(whole)
    assert summary["rounds_completed"] == ROUNDS and summary["stop_reason"] == "completed"
    assert summary["strategy"] == "fedadam"
    assert summary["global"] == uninterrupted["global"]
    assert summary["run_id"] != uninterrupted["run_id"]  # two runs, each its own id


def test_banks_that_had_released_the_crashed_round_resend_it_with_a_statement(secure_runs):
    crashed, _, released = secure_runs
    third = _lines(crashed)[CRASH_ROUND - 1]

    assert sorted(third.get("resent", {})) == sorted(released)
    assert sorted(third["trained"]) == list(BANKS)
    for bank, statement in third["resent"].items():
        entries = _ledger_entries(crashed / "institutions" / bank, bank)
        entry = next(e for e in entries if e["round"] == CRASH_ROUND)
        assert statement["ledger_seq"] == entry["seq"]
        assert statement["ledger_sha256"] == entry["update_sha256"]
        assert statement["sent_sha256"] == third["update_sha256"][bank]
        assert statement["sent_sha256"] != entry["update_sha256"]  # masked anew


def test_the_resumed_secure_run_audits_clean_with_each_round_spent_once(
    secure_runs, dpsgd_secagg_audit, cli
):
    crashed, whole, _ = secure_runs
    audits = {crashed: cli("audit", str(crashed), cwd=crashed.parent), whole: dpsgd_secagg_audit}

    for run_dir, audit in audits.items():
        assert audit.returncode == 0, (run_dir, audit.stdout[-2000:] + audit.stderr[-2000:])
    reports = {d: json.loads((d / "audit" / "report.json").read_text()) for d in audits}
    assert all(c["passed"] for c in reports[crashed]["checks"])
    got, want = (reports[d]["institutions"] for d in (crashed, whole))
    assert set(got) == set(want) == set(BANKS)
    for bank in BANKS:
        for key in ("entries", "rounds", "claimed_epsilon", "recomputed_epsilon"):
            assert got[bank][key] == want[bank][key], (bank, key)
        assert got[bank]["independent_epsilon"] == want[bank]["independent_epsilon"]
        assert got[bank]["entries"] == ROUNDS
        # The bank's own ledger and the run's copy: each round once, one run id.
        for folder in (crashed / "institutions" / bank, crashed / "ledgers"):
            entries = _ledger_entries(folder, bank)
            assert [e["round"] for e in entries] == [1, 2, 3, 4], (folder, bank)
            assert len({e["run_id"] for e in entries}) == 1, (folder, bank)
