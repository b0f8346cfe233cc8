"""`fedrisk report sweep` on constructed multirun folders: the key found, values, errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from fedrisk.audit.sweep_report import sweep_command, write_sweep_report
from fedrisk.audit.sweep_runs import BANKS_KEY, SweepReportError, load_sweep

BANKS = {"bank_a": 3000, "bank_b": 2000, "bank_c": 1000}


def config(**changes: object) -> dict:
    cfg: dict = {
        "rounds": 2,
        "seed": 42,
        "consortium": {"name": "banks_3", "institutions": [{"name": n} for n in BANKS]},
        "strategy": {"name": "fedavg"},
        "privacy": {"mode": "none", "target_epsilon": 8.0, "noise_multiplier": None},
    }
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = cfg
        for parent in parents:
            node = node[parent]
        node[leaf] = value
    return cfg


def write_run(
    folder: Path,
    name: str,
    cfg: dict,
    *,
    auc: float | None,
    epsilon: float | None = None,
    banks: int = 3,
) -> Path:
    run = folder / name
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    if auc is not None:
        institutions = {
            f"bank_{i}": {
                "n_train": 100,
                **({"epsilon_spent": epsilon - i * 0.01} if epsilon else {}),
            }
            for i in range(banks)
        }
        summary = {
            "global": {"auc": auc, "pr_auc": auc / 2},
            "institutions": institutions,
            "stop_reason": "completed",
            "rounds_completed": 2,
        }
        (run / "summary.json").write_text(json.dumps(summary))
    return run


def dp(epsilon: float, **changes: object) -> dict:
    return config(
        privacy__mode="dpsgd",
        privacy__target_epsilon=epsilon,
        privacy__noise_multiplier=None,
        **changes,
    )


@pytest.fixture
def epsilon_sweep(tmp_path: Path) -> Path:
    folder = tmp_path / "multirun"
    for i, (eps, auc) in enumerate([(2.0, 0.80), (0.5, 0.70), (1.0, 0.75)]):
        write_run(folder, str(i), dp(eps), auc=auc, epsilon=eps)
    write_run(folder, "3", config(), auc=0.84)  # the non-private run in the same multirun
    write_run(folder, "4", dp(4.0), auc=None)  # crashed: config.yaml but no summary
    return folder


def test_epsilon_sweep_writes_plot_and_tables_with_each_runs_values(epsilon_sweep: Path):
    sweep, rows = write_sweep_report(epsilon_sweep)

    assert sweep.key == "privacy.target_epsilon"
    assert [b.name for b in sweep.baselines] == ["3"]
    assert set(sweep.failed) == {"4"} and "summary.json: missing" in sweep.failed["4"]
    assert (epsilon_sweep / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with (epsilon_sweep / "sweep.csv").open() as handle:
        table = list(csv.reader(handle))
    assert table == rows
    assert table[0][:4] == ["privacy.target_epsilon", "auc", "auc std", "ε spent (max bank)"]
    assert [r[:2] for r in table[1:]] == [
        ["0.5", "0.700000"],
        ["1.0", "0.750000"],
        ["2.0", "0.800000"],
        ["non-private baseline", "0.840000"],
    ]
    assert [r[3] for r in table[1:4]] == ["0.5000", "1.0000", "2.0000"]
    markdown = (epsilon_sweep / "sweep.md").read_text()
    assert "| 0.5 | 0.700000 |" in markdown and "skipped failed run `4`" in markdown
    assert "![auc against privacy.target_epsilon](sweep.png)" in markdown


def test_metric_and_external_baseline(epsilon_sweep: Path, tmp_path: Path):
    (epsilon_sweep / "3").rename(tmp_path / "plain")  # the baseline lives elsewhere

    _, rows = write_sweep_report(epsilon_sweep, metric="pr_auc", baselines=[tmp_path / "plain"])

    assert [r[1] for r in rows[1:]] == ["0.350000", "0.375000", "0.400000", "0.420000"]
    assert rows[-1][4] == "plain"
    with pytest.raises(
        SweepReportError,
        match=r"no run recorded `global\.ks` in summary\.json; available: auc, pr_auc",
    ):
        write_sweep_report(epsilon_sweep, metric="ks")


def test_seeds_beside_one_key_are_replicates(tmp_path: Path):
    for i, (alpha, seed, auc) in enumerate(
        [(0.1, 1, 0.70), (0.1, 2, 0.72), (1.0, 1, 0.8), (1.0, 2, 0.8)]
    ):
        write_run(tmp_path, str(i), config(seed=seed, task={"alpha": alpha}), auc=auc)

    sweep, rows = write_sweep_report(tmp_path)

    assert sweep.key == "task.alpha" and sweep.replicated
    assert rows[1][:3] == ["0.1", "0.710000", f"{0.0141421356:.6f}"]
    assert rows[2][:3] == ["1.0", "0.800000", "0.000000"]
    assert rows[1][4] == "0 1"


def test_a_consortium_swap_is_a_sweep_over_the_number_of_banks(tmp_path: Path):
    write_run(tmp_path, "0", config(), auc=0.8, banks=3)
    five = config(consortium={"name": "banks_5", "test_rows": 20000, "institutions": []})
    write_run(tmp_path, "1", five, auc=0.83, banks=5)

    sweep = load_sweep(tmp_path)

    assert sweep.key == BANKS_KEY
    assert [sweep.value(r) for r in sweep.runs] == [3, 5]


def test_categorical_key_keeps_run_order(tmp_path: Path):
    for i, (name, auc) in enumerate([("fedprox", 0.8), ("fedavg", 0.79), ("fedadam", 0.81)]):
        write_run(tmp_path, str(i), config(strategy={"name": name}), auc=auc)

    _, rows = write_sweep_report(tmp_path)

    assert [r[0] for r in rows[1:]] == ["fedprox", "fedavg", "fedadam"]


def test_runs_that_differ_in_two_keys_are_refused_naming_both(tmp_path: Path):
    write_run(tmp_path, "0", config(rounds=2, strategy={"name": "fedavg"}), auc=0.8)
    write_run(tmp_path, "1", config(rounds=5, strategy={"name": "fedprox"}), auc=0.8)

    with pytest.raises(SweepReportError, match=r"differ in 2 keys \(rounds, strategy.name\)"):
        load_sweep(tmp_path)


def test_unusable_folders_fail_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    (tmp_path / "empty").mkdir()
    write_run(tmp_path / "one", "0", config(), auc=0.8)
    write_run(tmp_path / "same", "0", config(), auc=0.8)
    write_run(tmp_path / "same", "1", config(), auc=0.81)

    cases = {
        "empty": "no runs (no subfolder with config.yaml",
        "one": "1 completed run(s) to compare; a sweep needs at least two",
        "same": "the runs do not differ in any configuration key",
        "missing": "no such directory",
    }
    for name, message in cases.items():
        assert sweep_command([str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("fedrisk report sweep: ") and message in err, err
        assert err.count("\n") == 1
    assert sweep_command([str(tmp_path / "same"), "--colour"]) == 2
    assert "unexpected argument '--colour'" in capsys.readouterr().err


def test_command_prints_the_table_and_the_files(
    epsilon_sweep: Path, capsys: pytest.CaptureFixture[str]
):
    assert sweep_command([str(epsilon_sweep), "--metric=auc"]) == 0

    out = capsys.readouterr().out
    assert "Sweep over privacy.target_epsilon" in out and "0.750000" in out
    assert "skipped failed run 4" in out
    assert str(epsilon_sweep / "sweep.png") in out
