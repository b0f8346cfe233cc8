"""privacy=central: Flower's DP-FedAvg wrappers and accountant, labelled institution-level.

One server-side run carries the recording assertions and is also the uninterrupted
twin of a run killed with SIGKILL after its first round and resumed. Client-side
clipping under secure aggregation gets its own such pair.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from fedrisk_cli import run_cli, simulate_into, simulate_killed

from fedrisk.privacy.accountant import IndependentMethod, independent_epsilon
from fedrisk.privacy.mechanism import PoissonGaussian

pytestmark = pytest.mark.slow

CENTRAL = (
    "consortium=banks_3",
    "privacy=central",
    "privacy.central_noise_multiplier=2.0",
    "simulation.baselines=false",
    "task.train.epochs=1",
)
ROUNDS = 3
KILL_AFTER = 1


def _lines(run_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def _check_institution_level(run_dir: Path, rounds: int) -> None:
    summary, lines = _summary(run_dir), _lines(run_dir)
    level = summary["institution_level"]

    assert summary["privacy"] == "central"
    assert level["scope"].startswith("institution-level")
    assert level["noise_source"] == "seeded"  # the run record says the noise is seeded
    assert "epsilon_spent" not in summary["institutions"]["bank_a"]
    # Full-participation Gaussian releases with z = 2: recompute independently.
    releases = [
        PoissonGaussian(noise_multiplier=2.0, sample_rate=1.0, steps=rounds, max_grad_norm=1.0)
    ]
    expected = independent_epsilon(releases, delta=1e-5, method=IndependentMethod.rdp)
    assert level["epsilon"] == pytest.approx(expected, rel=0.01)
    # The summary carries everything an independent accountant needs.
    assert (level["noise_multiplier"], level["releases"], level["delta"]) == (2.0, rounds, 1e-5)
    epsilons = [line["institution_level_epsilon"] for line in lines]
    assert len(epsilons) == rounds and epsilons == sorted(set(epsilons))
    assert epsilons[-1] == level["epsilon"]


@pytest.fixture(scope="module")
def whole(tmp_path_factory) -> Path:
    """An uninterrupted server-side run of three rounds."""
    run_dir = tmp_path_factory.mktemp("central") / "whole"
    simulate_into(run_dir, *CENTRAL, f"rounds={ROUNDS}")
    return run_dir


@pytest.fixture(scope="module")
def resumed(tmp_path_factory) -> tuple[Path, int]:
    """The same run killed after round 1 and resumed; with the rounds it had recorded."""
    crashed = tmp_path_factory.mktemp("central") / "crashed"
    simulate_killed(crashed, *CENTRAL, f"rounds={ROUNDS}", after_rounds=KILL_AFTER)
    recorded = len(_lines(crashed))
    assert not (crashed / "summary.json").exists()
    done = run_cli("simulate", f"resume={crashed}", cwd=crashed.parent)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return crashed, recorded


def test_server_side_institution_level_epsilon_is_recorded(whole):
    _check_institution_level(whole, ROUNDS)


#: Client-side clipping with the noise added to the securely aggregated sum.
CLIENT_SECURE = (*CENTRAL, "privacy.central_clipping_side=client", "secagg=secaggplus")


@pytest.fixture(scope="module")
def client_secure(tmp_path_factory) -> tuple[Path, Path]:
    """Client-side clipping under SecAgg+: a whole run, and one killed after round 1 and
    resumed (new run keys at its roll call; the accountant and noise go on)."""
    root = tmp_path_factory.mktemp("central-secure")
    simulate_into(root / "whole", *CLIENT_SECURE, f"rounds={ROUNDS}")
    crashed = root / "crashed"
    simulate_killed(crashed, *CLIENT_SECURE, f"rounds={ROUNDS}", after_rounds=KILL_AFTER)
    done = run_cli("simulate", f"resume={crashed}", cwd=root)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return root / "whole", crashed


def test_client_side_epsilon_under_secure_aggregation_survives_a_resume(client_secure):
    whole, crashed = client_secure

    _check_institution_level(whole, ROUNDS)
    _check_institution_level(crashed, ROUNDS)
    with np.load(crashed / "model.npz") as a, np.load(whole / "model.npz") as b:
        for name in a.files:
            np.testing.assert_array_equal(a[name], b[name])
    assert _summary(crashed)["institution_level"] == _summary(whole)["institution_level"]
    for got, want in zip(_lines(crashed), _lines(whole), strict=True):
        assert got["secagg"]["unmasked"] and want["secagg"]["unmasked"]
        assert got["secagg"]["aggregate_sha256"] == want["secagg"]["aggregate_sha256"]
        assert got["institution_level_epsilon"] == want["institution_level_epsilon"]
        assert got["central"] == want["central"]


def _without_timing(lines: list[dict]) -> list[dict]:
    return [{k: v for k, v in line.items() if k != "seconds"} for line in lines]


def test_a_resumed_central_run_ends_with_the_uninterrupted_model_metrics_and_epsilon(
    whole, resumed
):
    crashed, recorded = resumed

    assert KILL_AFTER <= recorded < ROUNDS  # killed mid-run, resumed for the rest
    with np.load(crashed / "model.npz") as a, np.load(whole / "model.npz") as b:
        assert a.files == b.files
        for name in a.files:
            np.testing.assert_array_equal(a[name], b[name])
    assert _without_timing(_lines(crashed)) == _without_timing(_lines(whole))
    got, want = _summary(crashed), _summary(whole)
    assert got["institution_level"] == want["institution_level"]
    assert got["institution_level"]["releases"] == ROUNDS
    assert [line["institution_level_epsilon"] for line in _lines(crashed)] == [
        line["institution_level_epsilon"] for line in _lines(whole)
    ]
    assert got["global"] == want["global"] and got["rounds_completed"] == ROUNDS
    _check_institution_level(crashed, ROUNDS)


def test_central_dp_refuses_sampling_amplification(tmp_path):
    done = run_cli(
        "simulate",
        "privacy=central",
        "strategy.fraction_train=0.5",
        f"hydra.run.dir={tmp_path / 'x'}",
        cwd=tmp_path,
    )

    assert done.returncode == 2
    assert "`strategy.fraction_train` must be 1.0 with privacy=central" in done.stderr
    assert "Traceback" not in done.stderr
