"""Record-level DP on real Flower simulations: ledgers, recomputed ε, budgets, resumption."""

import json
from pathlib import Path

import pytest
from fedrisk_cli import simulate_into

from fedrisk.privacy.accountant import (
    AccountantKind,
    IndependentMethod,
    epsilon_spent,
    independent_epsilon,
)
from fedrisk.privacy.ledger import history, read_ledger
from fedrisk.privacy.manifest import ConsortiumManifest

pytestmark = pytest.mark.slow

BANKS = ("bank_a", "bank_b", "bank_c")


def simulate_dp(run_dir: Path, *overrides: str) -> dict:
    done = simulate_into(
        run_dir, "consortium=banks_3", "privacy=dpsgd", "simulation.baselines=false", *overrides
    )
    assert "Traceback" not in done.stderr
    return json.loads((run_dir / "summary.json").read_text())


def ledgers(run_dir: Path) -> dict[str, list]:
    manifest = ConsortiumManifest.load(run_dir / "consortium.json")
    summary = json.loads((run_dir / "summary.json").read_text())
    return {
        name: read_ledger(
            run_dir / summary["institutions"][name]["ledger"], manifest.public_key(name)
        )
        for name in BANKS
    }


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dp")
    run_dir = root / "first"
    simulate_dp(
        run_dir, "rounds=2", "privacy.target_epsilon=2", f"privacy.state_dir={root / 'state'}"
    )
    return run_dir


def test_every_ledger_verifies_and_reported_epsilon_is_reproducible(calibrated):
    summary = json.loads((calibrated / "summary.json").read_text())

    assert summary["privacy"] == "dpsgd"
    assert summary["rounds_completed"] == 2
    for name, entries in ledgers(calibrated).items():
        inst = summary["institutions"][name]
        assert inst["ledger_verified"] is True and len(entries) == 2
        mechanisms = history(entries)
        same_library = epsilon_spent(mechanisms, delta=inst["delta"], accountant=AccountantKind.rdp)
        independent = independent_epsilon(
            mechanisms, delta=inst["delta"], method=IndependentMethod.rdp
        )
        assert inst["epsilon_spent"] == pytest.approx(same_library, rel=1e-9)
        assert entries[-1].epsilon == pytest.approx(same_library, rel=1e-9)
        assert inst["epsilon_spent"] == pytest.approx(independent, rel=0.01)


def test_calibration_spends_the_target_and_no_more(calibrated):
    summary = json.loads((calibrated / "summary.json").read_text())

    for name in BANKS:
        spent = summary["institutions"][name]["epsilon_spent"]
        assert 0.95 * 2.0 <= spent <= 2.0


def test_ledger_digests_match_what_the_server_received(calibrated):
    lines = [json.loads(x) for x in (calibrated / "metrics.jsonl").read_text().splitlines()]
    received = {(line["round"], k): v for line in lines for k, v in line["update_sha256"].items()}

    for name, entries in ledgers(calibrated).items():
        for entry in entries:
            assert received[(entry.round, name)] == entry.update_sha256


def test_epsilon_plot_and_per_round_epsilon(calibrated):
    lines = [json.loads(x) for x in (calibrated / "metrics.jsonl").read_text().splitlines()]

    assert (calibrated / "epsilon.png").read_bytes()[:4] == b"\x89PNG"
    for name in BANKS:
        assert lines[0]["epsilon"][name] < lines[1]["epsilon"][name] <= 2.0


def test_second_run_on_the_same_data_starts_from_the_first_runs_spend(calibrated, tmp_path):
    state = calibrated.parent / "state"
    first = json.loads((calibrated / "summary.json").read_text())

    second = simulate_dp(
        tmp_path / "second",
        "rounds=1",
        "privacy.noise_multiplier=3.0",
        f"privacy.state_dir={state}",
    )

    for name, entries in ledgers(tmp_path / "second").items():
        assert [e.seq for e in entries] == [0, 1, 2]
        assert len({e.run_id for e in entries}) == 2
        assert (
            second["institutions"][name]["epsilon_spent"]
            > first["institutions"][name]["epsilon_spent"]
        )


def test_small_budget_ends_the_run_cleanly_with_refusals(tmp_path):
    summary = simulate_dp(
        tmp_path / "tight",
        "rounds=3",
        "privacy.noise_multiplier=1.0",
        "privacy.epsilon_budget=0.8",
    )

    assert summary["rounds_completed"] < 3
    assert "over its budget 0.8" in summary["stop_reason"]
    assert set(summary["refusals"]) == set(BANKS)
    for name in BANKS:
        inst = summary["institutions"][name]
        assert inst.get("epsilon_spent", 0.0) <= 0.8
        assert "over its budget 0.8" in inst["refused"]
