"""Reliability on Flower's simulation engine: faults rejected, timeouts, resume refusals.

One module-scoped simulation carries most assertions: a consortium where every kind of
injected fault strikes (and round 2 ends the run because too few valid updates remain).
"""

import json
from pathlib import Path

import pytest
from fedrisk_cli import simulate_into

from fedrisk.conf.faults import FaultStage, RandomDropouts

pytestmark = pytest.mark.slow

BANKS = ["bank_a", "bank_b", "bank_c", "bank_d", "bank_e"]
FAULTS = (
    "consortium=banks_5",
    "rounds=3",
    "seed=42",
    "simulation.baselines=false",
    "strategy.min_train_nodes=2",
    "round_timeout=15",
    "validation.max_update_norm=100",
    "faults.corrupt=[{institution:bank_a,kind:nan,rounds:[1]},"
    "{institution:bank_b,kind:inf,rounds:[1]},{institution:bank_c,kind:wrong_shape,rounds:[1]},"
    "{institution:bank_a,kind:wrong_dtype,rounds:[2]},{institution:bank_b,kind:huge_norm,rounds:[2]}]",
    "faults.replay=[{institution:bank_c,rounds:[2]}]",
    "faults.stragglers=[{institution:bank_d,delay:30,rounds:[2]}]",
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

    assert second["failures"] == {"bank_d": "no reply within 15 s"}
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
# A DP-SGD + SecAgg+ FedAdam run killed mid-round and resumed: test_secure_resume.py;
# privacy=central: test_central_dp.py; a plaintext DP-SGD bank's byte-for-byte resend:
# tests/client/test_private_resend.py.


def test_resume_refuses_other_overrides_and_a_directory_without_a_checkpoint(tmp_path, cli):
    (tmp_path / "empty").mkdir()
    extra = cli("simulate", f"resume={tmp_path}", "rounds=3", cwd=tmp_path)
    missing = cli("simulate", f"resume={tmp_path / 'empty'}", cwd=tmp_path)

    assert extra.returncode == 2 and "drop the other arguments ['rounds=3']" in extra.stderr
    assert missing.returncode == 2
    assert "config.yaml does not exist" in missing.stderr
    assert "Traceback" not in extra.stderr + missing.stderr
