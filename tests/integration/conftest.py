import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from fedrisk_cli import run_cli, simulate_into


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
