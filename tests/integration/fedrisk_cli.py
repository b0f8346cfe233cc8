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
