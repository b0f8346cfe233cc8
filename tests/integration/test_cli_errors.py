"""The CLI's expected failures: one readable line on stderr, exit 2, no traceback."""

import subprocess
import sys

import pytest


def run_cli(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "fedrisk", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("consortium=nope", "Could not find 'consortium/nope'"),
        ("strategy.fraction_train=2", "`strategy.fraction_train` must be in (0, 1]; got 2.0"),
    ],
)
def test_bad_simulate_override_prints_one_line(tmp_path, override, fragment):
    done = run_cli("simulate", override, cwd=tmp_path)

    assert done.returncode == 2
    assert fragment in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "outputs").exists()


def test_unknown_command(tmp_path):
    done = run_cli("fly", cwd=tmp_path)

    assert done.returncode == 2
    assert "unknown command 'fly'" in done.stderr
