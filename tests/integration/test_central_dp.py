"""privacy=central: Flower's DP-FedAvg wrappers and accountant, labelled institution-level."""

import json

import pytest
from fedrisk_cli import run_cli

from fedrisk.privacy.accountant import IndependentMethod, independent_epsilon
from fedrisk.privacy.mechanism import PoissonGaussian

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("side", ["server", "client"])
def test_institution_level_epsilon_is_recorded_and_reproducible(tmp_path, side, simulate):
    run_dir = tmp_path / side
    summary = simulate(
        run_dir,
        "consortium=banks_3",
        "rounds=2",
        "privacy=central",
        "simulation.baselines=false",
        f"privacy.central_clipping_side={side}",
        "privacy.central_noise_multiplier=2.0",
    )
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]

    level = summary["institution_level"]
    assert summary["privacy"] == "central"
    assert level["scope"].startswith("institution-level")
    assert "epsilon_spent" not in summary["institutions"]["bank_a"]
    # Two full-participation Gaussian releases with z = 2: recompute independently.
    releases = [PoissonGaussian(noise_multiplier=2.0, sample_rate=1.0, steps=2, max_grad_norm=1.0)]
    expected = independent_epsilon(releases, delta=1e-5, method=IndependentMethod.rdp)
    assert level["epsilon"] == pytest.approx(expected, rel=0.01)
    # The summary carries everything an independent accountant needs.
    assert (level["noise_multiplier"], level["releases"], level["delta"]) == (2.0, 2, 1e-5)
    assert lines[0]["institution_level_epsilon"] < lines[1]["institution_level_epsilon"]


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
