"""A real privacy sweep (`simulate --multirun`) and `fedrisk report sweep` over it.

The two DP-SGD runs also opt in to explanations (``explain.enabled=true``), so the same
simulations check that an opted-in release is made and carries its warning.
"""

import csv
import json
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

EPSILONS = ("1", "4")


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory) -> Path:
    from fedrisk_cli import run_cli

    root = tmp_path_factory.mktemp("sweep")
    done = run_cli(
        "simulate",
        "--multirun",
        "consortium=banks_3",
        "rounds=2",
        "task.train.epochs=1",
        "simulation.baselines=false",
        "privacy=dpsgd",
        f"privacy.target_epsilon={','.join(EPSILONS)}",
        "explain.enabled=true",
        "explain.repeats=1",
        "explain.ig_steps=8",
        f"hydra.sweep.dir={root / 'multirun'}",
        cwd=root,
        timeout=1200,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return root / "multirun"


def test_report_sweep_plots_and_tabulates_each_runs_held_out_auc(sweep_dir, cli):
    done = cli("report", "sweep", str(sweep_dir), cwd=sweep_dir)

    assert done.returncode == 0, done.stderr
    summaries = {}
    for job in ("0", "1"):
        config = yaml.safe_load((sweep_dir / job / "config.yaml").read_text())
        summary = json.loads((sweep_dir / job / "summary.json").read_text())
        summaries[float(config["privacy"]["target_epsilon"])] = summary
    # One run directory per job, each with its own override and its own run.
    assert sorted(summaries) == [1.0, 4.0]
    assert len({summary["run_id"] for summary in summaries.values()}) == 2
    with (sweep_dir / "sweep.csv").open() as handle:
        rows = list(csv.reader(handle))
    assert rows[0][0] == "privacy.target_epsilon"
    assert [row[0] for row in rows[1:]] == ["1.0", "4.0"]
    for row in rows[1:]:
        summary = summaries[float(row[0])]
        assert float(row[1]) == pytest.approx(summary["global"]["auc"], abs=5e-7)
        spent = max(i["epsilon_spent"] for i in summary["institutions"].values())
        assert float(row[3]) == pytest.approx(spent, abs=5e-5)
        assert spent <= float(row[0]) + 1e-9  # calibrated to the target, never above
    assert (sweep_dir / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| 4.0 |" in (sweep_dir / "sweep.md").read_text()
    assert "Sweep over privacy.target_epsilon" in done.stdout


def test_opted_in_explanations_under_dp_are_released_with_a_warning(sweep_dir):
    summary = json.loads((sweep_dir / "0" / "summary.json").read_text())
    explanations = summary["explanations"]

    assert "NOT covered by the record-level DP-SGD guarantee" in explanations["warning"]
    assert explanations["per_bank"] is None  # per-bank values stay out of the run record
    assert explanations["banks"] == ["bank_a", "bank_b", "bank_c"]
    assert set(explanations["permutation"]) == set(explanations["integrated_gradients"])
    assert (sweep_dir / "0" / "explanations.png").stat().st_size > 0


def test_report_sweep_names_runs_that_failed(sweep_dir, tmp_path, cli):
    broken = tmp_path / "with-failure"
    for job in ("0", "1"):
        (broken / job).mkdir(parents=True)
        for name in ("config.yaml", "summary.json"):
            (broken / job / name).write_bytes((sweep_dir / job / name).read_bytes())
    (broken / "2").mkdir()
    # A third job that wrote its config and died before its summary.
    (broken / "2" / "config.yaml").write_bytes((sweep_dir / "1" / "config.yaml").read_bytes())

    done = cli("report", "sweep", str(broken), cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert "skipped failed run 2" in done.stdout
