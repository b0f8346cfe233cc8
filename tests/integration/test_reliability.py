"""Reliability on Flower's simulation engine: faults rejected, timeouts, crash and resume.

Two module-scoped simulations carry most assertions: one consortium where every kind of
injected fault strikes (and round 2 ends the run because too few valid updates remain),
and a DP-SGD run killed with SIGKILL after a round and resumed, beside the same run
uninterrupted.
"""

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from fedrisk_cli import run_cli, simulate_into, simulate_killed

from fedrisk.conf.faults import FaultStage, RandomDropouts

pytestmark = pytest.mark.slow

BANKS = ["bank_a", "bank_b", "bank_c", "bank_d", "bank_e"]
FAULTS = (
    "consortium=banks_5",
    "rounds=3",
    "seed=42",
    "simulation.baselines=false",
    "strategy.min_train_nodes=2",
    "round_timeout=30",
    "validation.max_update_norm=100",
    "faults.corrupt=[{institution:bank_a,kind:nan,rounds:[1]},"
    "{institution:bank_b,kind:inf,rounds:[1]},{institution:bank_c,kind:wrong_shape,rounds:[1]},"
    "{institution:bank_a,kind:wrong_dtype,rounds:[2]},{institution:bank_b,kind:huge_norm,rounds:[2]}]",
    "faults.replay=[{institution:bank_c,rounds:[2]}]",
    "faults.stragglers=[{institution:bank_d,delay:60,rounds:[2]}]",
    "faults.random_dropouts=[{probability:0.5,stage:evaluate}]",
)


def _lines(run_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def faulty(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("faults") / "run"
    simulate_into(run_dir, *FAULTS)
    return run_dir


def test_each_corrupt_update_is_rejected_with_its_reason(faulty):
    first, second = _lines(faulty)

    assert first["rejected"] == {
        "bank_a": "`layers.0.weight` holds NaN",
        "bank_b": "`layers.0.weight` holds Inf",
        "bank_c": "`layers.0.weight` has shape [63, 34], expected [64, 34]",
    }
    assert first["trained"] == ["bank_d", "bank_e"] and first["aggregated"] is True
    assert second["rejected"]["bank_a"] == "`layers.0.weight` has dtype float64, expected float32"
    huge = second["rejected"]["bank_b"]
    assert huge.startswith("update norm ") and huge.endswith("exceeds the bound 100")
    assert float(huge.split()[2]) > 1e5
    # What the server received is recorded, accepted or not (the auditor compares).
    assert set(first["update_sha256"]) == set(BANKS)


def test_a_replayed_reply_is_rejected_by_its_round_binding(faulty):
    second = _lines(faulty)[1]

    assert second["rejected"]["bank_c"] == "reply is bound to round 1, not round 2"
    # bank_c kept its honest round-1 reply (its round-1 corruption happened on the way out).
    assert "bank_c" in second["update_sha256"] and "bank_c" not in second["trained"]


def test_a_straggler_beyond_the_timeout_is_a_dropout_of_that_round(faulty):
    second = _lines(faulty)[1]

    assert second["failures"] == {"bank_d": "no reply within 30 s"}
    assert "bank_d" not in second["trained"] and "bank_d" not in second["update_sha256"]


def test_seeded_random_dropouts_strike_the_predicted_banks(faulty):
    first = _lines(faulty)[0]
    fault = RandomDropouts(probability=0.5, stage=FaultStage.evaluate)
    expected = [b for b in BANKS if not fault.strikes(b, FaultStage.evaluate, 1, seed=42)]

    assert 0 < len(expected) < len(BANKS)
    assert sorted(first["institutions"]) == expected


def test_too_few_valid_updates_end_the_run_cleanly_saying_why(faulty):
    summary = json.loads((faulty / "summary.json").read_text())
    second = _lines(faulty)[1]

    assert second["aggregated"] is False and second["trained"] == ["bank_e"]
    assert summary["rounds_completed"] == 1
    reason = summary["stop_reason"]
    assert reason.startswith("round 2: only 1 institutions returned a valid update (need 2)")
    for bank in ("bank_a", "bank_b", "bank_c", "bank_d"):
        assert bank in reason
    assert (faulty / "model.npz").exists()
    state = json.loads((faulty / "checkpoint" / "state.json").read_text())
    assert state["completed_round"] == 1


# -- crash and resume ----------------------------------------------------------------

RESUME = (
    "consortium=banks_3",
    "rounds=4",
    "seed=5",
    "strategy=fedadam",
    "privacy=dpsgd",
    "privacy.target_epsilon=4.0",
    "simulation.baselines=false",
    "task.train.epochs=1",
)
KILL_AFTER = 2


@pytest.fixture(scope="module")
def crashed_and_whole(tmp_path_factory) -> tuple[Path, Path, subprocess.CompletedProcess]:
    root = tmp_path_factory.mktemp("resume")
    whole = root / "whole"
    simulate_into(whole, *RESUME)
    crashed = root / "crashed"
    simulate_killed(crashed, *RESUME, after_rounds=KILL_AFTER)
    resumed = run_cli("simulate", f"resume={crashed}", cwd=root)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    return crashed, whole, resumed


def _without_timing(lines: list[dict]) -> list[dict]:
    return [{k: v for k, v in line.items() if k != "seconds"} for line in lines]


def test_a_resumed_run_ends_with_the_uninterrupted_model_and_metrics(crashed_and_whole):
    crashed, whole, _ = crashed_and_whole

    with np.load(crashed / "model.npz") as a, np.load(whole / "model.npz") as b:
        assert a.files == b.files
        for name in a.files:
            np.testing.assert_array_equal(a[name], b[name])
    assert _without_timing(_lines(crashed)) == _without_timing(_lines(whole))
    got, want = (json.loads((d / "summary.json").read_text()) for d in (crashed, whole))
    assert got["global"] == want["global"] and got["rounds_completed"] == 4
    assert got["run_id"] != want["run_id"]  # two runs, each its own id, before and after


def test_the_resumed_ledgers_verify_and_count_every_round_once(crashed_and_whole, cli):
    crashed, whole, _ = crashed_and_whole
    audits = {d: cli("audit", str(d), cwd=d.parent) for d in (crashed, whole)}

    for run_dir, audit in audits.items():
        assert audit.returncode == 0, (run_dir, audit.stdout[-2000:] + audit.stderr[-2000:])
    reports = {d: json.loads((d / "audit" / "report.json").read_text()) for d in audits}
    assert all(c["passed"] for c in reports[crashed]["checks"])
    got, want = (reports[d]["institutions"] for d in (crashed, whole))
    assert set(got) == set(want) == {"bank_a", "bank_b", "bank_c"}
    for bank in want:
        for key in ("entries", "rounds", "claimed_epsilon", "recomputed_epsilon"):
            assert got[bank][key] == want[bank][key], (bank, key)
        assert got[bank]["independent_epsilon"] == want[bank]["independent_epsilon"]
        assert got[bank]["entries"] == 4
    for bank in ("bank_a", "bank_b", "bank_c"):
        entries = [
            json.loads(x)
            for x in next((crashed / "ledgers").glob(f"ledger-{bank}-*.jsonl"))
            .read_text()
            .splitlines()
        ]
        assert [e["round"] for e in entries] == [1, 2, 3, 4]
        assert len({e["run_id"] for e in entries}) == 1


def test_resume_refuses_other_overrides_and_a_directory_without_a_checkpoint(tmp_path, cli):
    (tmp_path / "empty").mkdir()
    extra = cli("simulate", f"resume={tmp_path}", "rounds=3", cwd=tmp_path)
    missing = cli("simulate", f"resume={tmp_path / 'empty'}", cwd=tmp_path)

    assert extra.returncode == 2 and "drop the other arguments ['rounds=3']" in extra.stderr
    assert missing.returncode == 2
    assert "config.yaml does not exist" in missing.stderr
    assert "Traceback" not in extra.stderr + missing.stderr
