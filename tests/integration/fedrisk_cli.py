"""Run the `fedrisk` command line in a subprocess, as a user would."""

import subprocess
import sys
from pathlib import Path


def run_cli(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `python -m fedrisk ARGS` as a user would, capturing its output."""
    return subprocess.run(
        [sys.executable, "-m", "fedrisk", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )


def simulate_into(run_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    """Run `fedrisk simulate` into RUN_DIR (from its parent folder); assert it succeeded."""
    done = run_cli("simulate", f"hydra.run.dir={run_dir}", *overrides, cwd=run_dir.parent)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done
