"""The CLI's expected failures: one readable line on stderr, exit 2, no traceback."""

import pytest
from fedrisk_cli import run_cli


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("consortium=nope", "Could not find 'consortium/nope'"),
        ("strategy.fraction_train=2", "`strategy.fraction_train` must be in (0, 1]; got 2.0"),
    ],
)
def test_bad_simulate_override_prints_one_line(tmp_path, override, fragment):
    done = run_cli("simulate", override, cwd=tmp_path, timeout=120)

    assert done.returncode == 2
    assert fragment in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "outputs").exists()


def test_unknown_command(tmp_path):
    done = run_cli("fly", cwd=tmp_path, timeout=120)

    assert done.returncode == 2
    assert "unknown command 'fly'" in done.stderr
