import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from fedrisk_cli import run_cli, simulate_into
from shared_runs import DPSGD_SECAGG, THREE_BANKS


@pytest.fixture
def simulate() -> Callable[..., dict]:
    """`fedrisk simulate` into RUN_DIR with OVERRIDES; asserts success, returns summary."""

    def _simulate(run_dir: Path, *overrides: str) -> dict:
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        done = simulate_into(run_dir, *overrides)
        assert "Traceback" not in done.stderr
        return json.loads((run_dir / "summary.json").read_text())

    return _simulate


@pytest.fixture
def cli() -> Callable[..., subprocess.CompletedProcess]:
    """`fedrisk ARGS` in a given folder, without asserting on the outcome."""
    return run_cli


@dataclass(frozen=True)
class SharedRun:
    """A finished simulation's run directory and what it printed."""

    dir: Path
    stdout: str


@pytest.fixture(scope="session")
def default_run(tmp_path_factory) -> Path:
    """`fedrisk simulate` with no overrides (banks_5, 10 rounds, baselines), run once."""
    run_dir = tmp_path_factory.mktemp("default") / "run"
    done = simulate_into(run_dir)
    assert "Traceback" not in done.stderr
    return run_dir


@pytest.fixture(scope="session")
def three_banks_run(tmp_path_factory) -> SharedRun:
    """`shared_runs.THREE_BANKS`, run once for every module that reads it."""
    run_dir = tmp_path_factory.mktemp("banks3") / "run"
    done = simulate_into(run_dir, *THREE_BANKS)
    assert "Traceback" not in done.stderr
    return SharedRun(dir=run_dir, stdout=done.stdout)


@pytest.fixture(scope="session")
def dpsgd_secagg_run(tmp_path_factory) -> Path:
    """`shared_runs.DPSGD_SECAGG`, run once, uninterrupted."""
    run_dir = tmp_path_factory.mktemp("dpsgd-secagg") / "whole"
    done = simulate_into(run_dir, *DPSGD_SECAGG)
    assert "Traceback" not in done.stderr
    return run_dir


@pytest.fixture(scope="session")
def dpsgd_secagg_audit(dpsgd_secagg_run) -> subprocess.CompletedProcess:
    """`fedrisk audit` of the shared DP-SGD + SecAgg+ run (writes its ``audit/`` folder)."""
    return run_cli("audit", str(dpsgd_secagg_run), cwd=dpsgd_secagg_run.parent)
