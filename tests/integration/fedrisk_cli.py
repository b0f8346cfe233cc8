"""Run the `fedrisk` command line in a subprocess, as a user would."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
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


def simulate_killed(
    run_dir: Path,
    *overrides: str,
    after_rounds: int | None = None,
    until: Callable[[Path], bool] | None = None,
) -> None:
    """Start `fedrisk simulate` into RUN_DIR; SIGKILL its process group part-way.

    The kill comes once ``metrics.jsonl`` holds ``after_rounds`` lines, or once
    ``until(run_dir)`` is true, so the run dies like a crashed coordinator: no clean-up,
    no final records.
    """
    if (after_rounds is None) == (until is None):
        raise ValueError("give exactly one of `after_rounds` and `until`")
    if until is None:
        until = partial(_recorded_rounds_reach, rounds=after_rounds)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [sys.executable, "-m", "fedrisk", "simulate", f"hydra.run.dir={run_dir}", *overrides],
        cwd=run_dir.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if until(run_dir):
                break
            time.sleep(0.05)
        assert process.poll() is None, "the run ended before it could be killed"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL


def _recorded_rounds_reach(run_dir: Path, *, rounds: int | None) -> bool:
    metrics = run_dir / "metrics.jsonl"
    return metrics.exists() and len(metrics.read_text().splitlines()) >= (rounds or 0)
