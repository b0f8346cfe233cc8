"""`fedrisk server`, `node` and `run` without starting Flower: folders, commands, config."""

import shutil
import socket
import tomllib
from pathlib import Path

import pytest
from flwr.cli.config_utils import load_and_validate

from fedrisk.cli import main
from fedrisk.conf.privacy import NoiseSource
from fedrisk.conf.root import ConfigError, settings_from_run_config
from fedrisk.data.synthetic import credit_schema
from fedrisk.deploy.folders import BankFolder, CoordinatorFolder, FolderError
from fedrisk.deploy.provision import ConsortiumSpec, provision
from fedrisk.deploy.run_config import (
    DEPLOYMENT_STAGE_TIMEOUT_S,
    compose,
    for_consortium,
    write_app,
)
from fedrisk.deploy.superlink import superlink_argv
from fedrisk.deploy.supernode import node_config, supernode_argv
from fedrisk.strategies import messages

BANKS = ("bank-a", "bank-b", "bank-c")


@pytest.fixture(scope="module")
def consortium(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("consortium")
    provision(
        ConsortiumSpec(
            name="pilot",
            institutions=BANKS,
            coordinator_hosts=("link.example.org",),
            epsilon_budget=3.0,
        ),
        out,
    )
    return out


def test_folders_open_and_name_the_bank_by_its_key(consortium: Path, tmp_path: Path) -> None:
    coordinator = CoordinatorFolder.open(consortium / "coordinator")
    assert [r.name for r in coordinator.manifest.institutions] == list(BANKS)
    assert coordinator.default_address() == "link.example.org:8000"
    renamed = tmp_path / "whatever"
    shutil.copytree(consortium / "bank-b", renamed)
    bank = BankFolder.open(renamed)
    assert bank.institution == "bank-b"
    assert bank.default_address() == "link.example.org:8000"


def test_a_folder_of_the_wrong_kind_or_consortium_is_refused(
    consortium: Path, tmp_path: Path
) -> None:
    with pytest.raises(FolderError, match=r"missing superlink_cert\.pem .*coordinator folder"):
        CoordinatorFolder.open(consortium / "bank-a")
    with pytest.raises(FolderError, match=r"missing signing_key\.pem .*bank folder"):
        BankFolder.open(consortium / "coordinator")
    with pytest.raises(FolderError, match="no such folder"):
        BankFolder.open(tmp_path / "nowhere")
    other = tmp_path / "other"
    provision(ConsortiumSpec("other", ("x-1", "x-2"), ("localhost",)), other)
    mixed = tmp_path / "mixed"
    shutil.copytree(consortium / "bank-a", mixed)
    shutil.copy(other / "x-1" / "signing_key.pem", mixed / "signing_key.pem")
    with pytest.raises(FolderError, match=r"`public_key` must be the folder's own signing key"):
        BankFolder.open(mixed)


def test_flower_commands_use_tls_and_node_authentication(consortium: Path) -> None:
    coordinator = CoordinatorFolder.open(consortium / "coordinator")
    link = superlink_argv(coordinator, host="0.0.0.0", port=8443, database=Path("/s.db"))
    assert "--enable-supernode-auth" in link and "--insecure" not in link
    for flag, name in (
        ("--ssl-ca-certfile", "ca_cert.pem"),
        ("--ssl-certfile", "superlink_cert.pem"),
        ("--ssl-keyfile", "superlink_key.pem"),
    ):
        assert Path(link[link.index(flag) + 1]).name == name
    bank = BankFolder.open(consortium / "bank-c")
    node = supernode_argv(
        bank, superlink="link.example.org:8000", data=Path("t.csv"), runtime_port=1
    )
    assert "--insecure" not in node
    assert Path(node[node.index("--root-certificates") + 1]) == bank.ca_cert
    assert Path(node[node.index("--auth-supernode-private-key") + 1]) == bank.auth_key
    config = node[node.index("--node-config") + 1]
    assert config == node_config(bank, Path("t.csv"))
    assert f'{messages.NODE_INSTITUTION}="bank-c"' in config
    assert f'{messages.NODE_DATA_PATH}="{Path("t.csv").resolve()}"' in config
    assert f'{messages.NODE_STATE_DIR}="{bank.path}"' in config
    with pytest.raises(FolderError, match="double quote"):
        node_config(bank, Path('a"b.csv'))


def test_run_settings_are_the_manifests_consortium(consortium: Path) -> None:
    manifest = CoordinatorFolder.open(consortium / "coordinator").manifest
    composed = compose(["privacy=dpsgd", "secagg=secaggplus", "rounds=2", "hydra.run.dir=r/1"])
    settings = for_consortium(composed, manifest, schema=None)

    assert composed.run_dir == Path("r/1").resolve()
    assert settings.consortium.name == "pilot"
    assert [i.name for i in settings.consortium.institutions] == list(BANKS)
    assert {i.epsilon_budget for i in settings.consortium.institutions} == {3.0}
    assert settings.rounds == 2
    assert settings.task.schema == credit_schema()
    assert settings.privacy.noise_source is NoiseSource.os_entropy
    timeouts = settings.secagg.timeouts
    assert timeouts.keys == timeouts.unmask == timeouts.consistency == DEPLOYMENT_STAGE_TIMEOUT_S


def test_overrides_win_over_the_deployment_defaults(consortium: Path) -> None:
    manifest = CoordinatorFolder.open(consortium / "coordinator").manifest
    composed = compose(
        ["privacy=dpsgd", "privacy.noise_source=seeded", "secagg=secaggplus",
         "secagg.timeouts.unmask=30"]
    )  # fmt: skip
    settings = for_consortium(composed, manifest, schema=None)
    assert settings.privacy.noise_source is NoiseSource.seeded
    assert settings.secagg.timeouts.unmask == 30.0
    assert settings.secagg.timeouts.keys == DEPLOYMENT_STAGE_TIMEOUT_S


def test_settings_that_do_not_fit_the_consortium_are_refused(consortium: Path) -> None:
    manifest = CoordinatorFolder.open(consortium / "coordinator").manifest
    composed = compose(["strategy.min_train_nodes=4"])  # fine for banks_5, not for 3 banks
    with pytest.raises(ConfigError, match=r"min_train_nodes.*3 institutions of consortium pilot"):
        for_consortium(composed, manifest, schema=None)
    with pytest.raises(ConfigError, match="multirun"):
        compose(["--multirun", "seed=1,2"])


def test_the_app_bundle_carries_the_run_config_and_no_data_path(
    consortium: Path, tmp_path: Path
) -> None:
    coordinator = CoordinatorFolder.open(consortium / "coordinator")
    settings = for_consortium(compose(["rounds=3"]), coordinator.manifest, schema=None)
    test = tmp_path / "heldout.csv"
    test.write_text("x\n")

    app = write_app(settings, run_dir=tmp_path / "run", test_path=test,
                    manifest_path=coordinator.manifest_file)  # fmt: skip

    assert sorted(p.name for p in app.iterdir()) == ["pyproject.toml"]
    config, _ = load_and_validate(app / "pyproject.toml", check_module=True)
    assert config["tool"]["flwr"]["app"]["components"] == {
        "serverapp": "fedrisk.server.app:app",
        "clientapp": "fedrisk.client.app:app",
    }
    run_config = tomllib.loads((app / "pyproject.toml").read_text())["tool"]["flwr"]["app"][
        "config"
    ]
    assert settings_from_run_config(run_config) == settings
    assert run_config[messages.RUN_DIR] == str(tmp_path / "run")
    assert run_config[messages.TEST_PATH] == str(test)
    assert run_config[messages.MANIFEST] == str(coordinator.manifest_file)
    assert run_config[messages.DATA_DIR] == ""
    assert messages.institutions_of(run_config) == list(BANKS)


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    return err


def test_cli_refuses_unusable_input_with_one_line(
    consortium: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    coordinator = str(consortium / "coordinator")
    assert main(["server", "--consortium", str(tmp_path / "none")]) == 2
    assert "no such folder" in _one_line_error(capsys)

    assert main(["node", "--consortium", str(consortium / "bank-a"),
                 "--data", str(tmp_path / "missing.csv")]) == 2  # fmt: skip
    err = _one_line_error(capsys)
    assert err.startswith("fedrisk node: bank-a does not join: ") and "missing.csv" in err

    assert main(["run", "--consortium", coordinator, "--test", str(tmp_path / "no.csv")]) == 2
    assert "--test" in _one_line_error(capsys)

    test = tmp_path / "heldout.csv"
    test.write_text("x\n")
    assert main(["run", "--consortium", coordinator, "--test", str(test), "strategy.nope=1"]) == 2
    assert "strategy.nope" in _one_line_error(capsys)
    assert main(["run", "--consortium", coordinator, "--test", str(test), "--bogus"]) == 2
    assert "--bogus" in _one_line_error(capsys)


def test_server_refuses_a_port_in_use(consortium: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["server", "--consortium", str(consortium / "coordinator"),
                     "--host", "127.0.0.1", "--port", str(port)])  # fmt: skip
    assert code == 2
    assert f"port {port} on 127.0.0.1 is in use" in _one_line_error(capsys)
