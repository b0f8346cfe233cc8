"""`fedrisk run … resume=RUN_DIR` without starting Flower: what is checked, what is submitted."""

import shutil
import tomllib
from pathlib import Path

import numpy as np
import pytest

from fedrisk.cli import main
from fedrisk.conf.root import ConfigError, settings_from_run_config
from fedrisk.deploy.folders import CoordinatorFolder
from fedrisk.deploy.provision import ConsortiumSpec, provision
from fedrisk.deploy.resume import HELD_OUT_FILE, record_held_out, resume_dir, resumed_run
from fedrisk.deploy.run_config import compose, for_consortium, save_config, write_app
from fedrisk.server.checkpoint import Checkpoint, config_digest, write_checkpoint
from fedrisk.strategies import messages

BANKS = ("bank-a", "bank-b", "bank-c")
RUN_ID = "4242"


@pytest.fixture(scope="module")
def consortium(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("consortium")
    provision(
        ConsortiumSpec(name="pilot", institutions=BANKS, coordinator_hosts=("localhost",)), out
    )
    return out


@pytest.fixture
def crashed(consortium: Path, tmp_path: Path) -> Path:
    """A run directory as `fedrisk run` leaves it when the SuperLink dies after round 2."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    manifest = CoordinatorFolder.open(consortium / "coordinator").manifest
    settings = for_consortium(
        compose(["privacy=dpsgd", "rounds=4", f"hydra.run.dir={run_dir}"]), manifest, schema=None
    )
    save_config(settings, run_dir / "config.yaml")
    write_checkpoint(
        run_dir,
        Checkpoint(
            run_id=RUN_ID,
            completed_round=2,
            seed=settings.seed,
            config_sha256=config_digest(settings),
            model={"w": np.zeros(3, dtype=np.float32)},
        ),
    )
    return run_dir


def test_a_crashed_run_resumes_with_its_own_config_run_id_and_directory(
    consortium: Path, crashed: Path, tmp_path: Path
) -> None:
    folder = CoordinatorFolder.open(consortium / "coordinator")
    assert resume_dir(["resume=" + str(crashed)]) == crashed
    assert resume_dir(["rounds=2"]) is None

    resumed = resumed_run(crashed, [f"resume={crashed}"], manifest=folder.manifest)

    assert (resumed.run_dir, resumed.run_id, resumed.completed_round) == (crashed, RUN_ID, 2)
    assert resumed.settings.rounds == 4 and resumed.settings.resume == str(crashed)
    test = tmp_path / "heldout.csv"
    test.write_text("x\n")
    app = write_app(resumed.settings, run_dir=crashed, test_path=test,
                    manifest_path=folder.manifest_file, run_id=resumed.run_id,
                    resume=True)  # fmt: skip
    run_config = tomllib.loads((app / "pyproject.toml").read_text())["tool"]["flwr"]["app"][
        "config"
    ]
    assert messages.run_id_of(run_config) == RUN_ID
    assert run_config[messages.RESUME] == "true"
    assert run_config[messages.RUN_DIR] == str(crashed)
    assert config_digest(settings_from_run_config(run_config)) == config_digest(resumed.settings)


def _refusal(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(list(argv)) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("fedrisk run: ") and "Traceback" not in err
    return err


def test_resume_refuses_what_it_cannot_continue_with_one_line(
    consortium: Path, crashed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    test = tmp_path / "heldout.csv"
    test.write_text("x\n")
    run = ("run", "--consortium", str(consortium / "coordinator"), "--test", str(test))

    err = _refusal(capsys, *run, f"resume={tmp_path / 'nowhere'}")
    assert f"{tmp_path / 'nowhere'} does not exist" in err

    empty = tmp_path / "empty"
    empty.mkdir()
    shutil.copy(crashed / "config.yaml", empty / "config.yaml")
    err = _refusal(capsys, *run, f"resume={empty}")
    assert f"{empty} holds no complete checkpoint" in err and "nothing to resume" in err

    err = _refusal(capsys, *run, f"resume={crashed}", "rounds=6")
    assert "drop the other arguments ['rounds=6']" in err

    err = _refusal(capsys, *run, "--schema", str(test), f"resume={crashed}")
    assert "drop --schema" in err

    config = crashed / "config.yaml"
    config.write_text(config.read_text().replace("rounds: 4", "rounds: 6"))
    err = _refusal(capsys, *run, f"resume={crashed}")
    assert "the checkpoint was written under another configuration" in err


def test_resume_refuses_the_run_of_another_consortium(
    consortium: Path, crashed: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    provision(ConsortiumSpec("other", BANKS, ("localhost",), epsilon_budget=3.0), other)
    manifest = CoordinatorFolder.open(other / "coordinator").manifest

    with pytest.raises(
        ConfigError, match=r"is a run of consortium 'pilot' .*got consortium 'other'"
    ):
        resumed_run(crashed, [f"resume={crashed}"], manifest=manifest)


def test_resume_refuses_another_held_out_table_than_the_run_started_with(
    consortium: Path, crashed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    started = tmp_path / "heldout.csv"
    started.write_text("x,y\n1,0\n")
    record_held_out(crashed, started)
    other = tmp_path / "other.csv"
    other.write_text("x,y\n1,1\n")
    run = ("run", "--consortium", str(consortium / "coordinator"))
    folder = CoordinatorFolder.open(consortium / "coordinator")

    err = _refusal(capsys, *run, "--test", str(other), f"resume={crashed}")
    assert f"--test {other} is not the held-out table {crashed} started with" in err
    assert str(started.resolve()) in err

    moved = tmp_path / "moved.csv"  # the same table under another name is the same table
    shutil.copy(started, moved)
    resumed = resumed_run(crashed, [f"resume={crashed}"], manifest=folder.manifest, test=moved)
    assert resumed.completed_round == 2

    (crashed / HELD_OUT_FILE).write_text("{not json")
    err = _refusal(capsys, *run, "--test", str(started), f"resume={crashed}")
    assert f"{crashed / HELD_OUT_FILE}: unreadable" in err

    (crashed / HELD_OUT_FILE).unlink()  # a run from before the record: not checked
    assert resumed_run(crashed, [f"resume={crashed}"], manifest=folder.manifest, test=other)
