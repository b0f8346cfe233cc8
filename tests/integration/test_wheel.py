"""The built wheel installs fedrisk as one namespace, configs included."""

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (found,) = out.glob("fedrisk-*.whl")
    return found


def test_wheel_puts_everything_under_fedrisk(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/", 1)[0] for n in names}

    assert tops == {"fedrisk", next(t for t in tops if t.endswith(".dist-info"))}
    for part in (
        "server",
        "client",
        "strategies",
        "privacy",
        "secure",
        "models",
        "data",
        "audit",
        "simulations",
        "deploy",
        "conf",
    ):
        assert f"fedrisk/{part}/__init__.py" in names
    assert "fedrisk/py.typed" in names
    assert "fedrisk/conf/config.yaml" in names
    assert "fedrisk/conf/consortium/banks_5.yaml" in names


@pytest.mark.slow
def test_wheel_imports_and_loads_configs_in_a_fresh_venv(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
    )
    probe = (
        "import fedrisk.server, fedrisk.client, fedrisk.strategies, fedrisk.conf\n"
        "from fedrisk.simulations.entry import check_overrides\n"
        "s = check_overrides(['consortium=banks_3'])\n"
        "print(fedrisk.server.__file__)\n"
        "print(s.consortium.name, len(s.consortium.institutions))\n"
    )
    done = subprocess.run(
        [str(python), "-c", probe], capture_output=True, text=True, cwd=tmp_path, check=True
    )
    server_file, config_line = done.stdout.strip().splitlines()

    assert server_file.startswith(str(env_dir))
    assert config_line == "banks_3 3"
