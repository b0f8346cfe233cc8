import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from fedrisk.deploy import USAGE, consortium_command
from fedrisk.privacy.manifest import ConsortiumManifest
from fedrisk.secure.signing import load_private_key, public_key_text

BANKS = ("bank-a", "bank-b", "bank-c")
PRIVATE_MARKERS = (b"PRIVATE KEY",)


def _init(out: Path, *extra: str, banks: str = ",".join(BANKS), hosts: str = "link.example.org"):
    return consortium_command(
        [
            "init",
            "--name",
            "demo",
            "--institutions",
            banks,
            "--coordinator-host",
            hosts,
            "--out",
            str(out),
            *extra,
        ]
    )


@pytest.fixture(scope="module")
def consortium(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("consortium")
    assert (
        _init(out, "--epsilon-budget", "4", "--delta", "1e-6", hosts="link.example.org,10.0.0.5")
        == 0
    )
    return out


def _private_files(folder: Path) -> set[str]:
    return {
        str(path.relative_to(folder))
        for path in folder.rglob("*")
        if path.is_file() and any(marker in path.read_bytes() for marker in PRIVATE_MARKERS)
    }


def test_layout(consortium) -> None:
    assert sorted(p.name for p in consortium.iterdir()) == sorted(["ca", "coordinator", *BANKS])
    assert {p.name for p in (consortium / "ca").iterdir()} == {
        "ca_cert.pem",
        "ca_key.pem",
        "README.txt",
    }
    assert {p.name for p in (consortium / "coordinator").iterdir()} == {
        "ca_cert.pem",
        "superlink_cert.pem",
        "superlink_key.pem",
        "consortium.json",
        "README.txt",
        "superlink_address.txt",
    }
    for bank in BANKS:
        assert {p.name for p in (consortium / bank).iterdir()} == {
            "signing_key.pem",
            "supernode_auth_key",
            "supernode_auth_key.pub",
            "join-request.json",
            "ca_cert.pem",
            "consortium.json",
            "consortium.sha256",
            "README.txt",
            "superlink_address.txt",
            "policy.yaml",
        }
    assert "offline" in (consortium / "ca" / "README.txt").read_text()


def test_private_files_are_0600_and_where_they_belong(consortium) -> None:
    assert _private_files(consortium / "ca") == {"ca_key.pem"}
    assert _private_files(consortium / "coordinator") == {"superlink_key.pem"}
    for bank in BANKS:
        assert _private_files(consortium / bank) == {"signing_key.pem", "supernode_auth_key"}
        # The policy holds the bank's secret validation seed: only the bank reads it.
        assert (consortium / bank / "policy.yaml").stat().st_mode & 0o777 == 0o600
    for path in consortium.rglob("*"):
        if path.is_file():
            private = bool(_private_files(path.parent) & {path.name})
            private = private or path.name == "policy.yaml"
            assert (stat.S_IMODE(path.stat().st_mode) == 0o600) == private, path


def test_each_bank_holds_only_its_own_private_material(consortium) -> None:
    contents = {
        bank: {
            name: (consortium / bank / name).read_bytes()
            for name in ("signing_key.pem", "supernode_auth_key")
        }
        for bank in BANKS
    }
    secrets = [blob for files in contents.values() for blob in files.values()]
    assert len(set(secrets)) == len(secrets)
    for folder in consortium.iterdir():
        for path in folder.rglob("*"):
            if not path.is_file():
                continue
            data = path.read_bytes()
            owners = {
                bank for bank, files in contents.items() if any(s in data for s in files.values())
            }
            assert owners <= ({folder.name} if folder.name in BANKS else set()), path


def test_manifest_lists_the_signing_keys_and_budgets(consortium) -> None:
    manifest = ConsortiumManifest.load(consortium / "coordinator" / "consortium.json")
    assert manifest.name == "demo"
    assert [record.name for record in manifest.institutions] == list(BANKS)
    for bank in BANKS:
        key = load_private_key(consortium / bank / "signing_key.pem")
        record = manifest.institution(bank)
        assert record.public_key == public_key_text(key.public_key())
        assert (record.budget_epsilon, record.budget_delta) == (4.0, 1e-6)
        copy = (consortium / bank / "consortium.json").read_bytes()
        assert copy == (consortium / "coordinator" / "consortium.json").read_bytes()


def test_server_certificate_and_supernode_keys_match(consortium) -> None:
    coordinator = consortium / "coordinator"
    cert = x509.load_pem_x509_certificate((coordinator / "superlink_cert.pem").read_bytes())
    ca = x509.load_pem_x509_certificate((coordinator / "ca_cert.pem").read_bytes())
    cert.verify_directly_issued_by(ca)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(sans.get_values_for_type(x509.DNSName)) == {"link.example.org", "localhost"}
    assert {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)} == {"10.0.0.5", "127.0.0.1"}
    for bank in BANKS:
        assert (consortium / bank / "ca_cert.pem").read_bytes() == (
            coordinator / "ca_cert.pem"
        ).read_bytes()
        private = serialization.load_ssh_private_key(
            (consortium / bank / "supernode_auth_key").read_bytes(), None
        )
        listed = ConsortiumManifest.load(coordinator / "consortium.json").institution(bank)
        registered = f"{listed.node_auth_key}\n".encode()
        assert registered == (consortium / bank / "supernode_auth_key.pub").read_bytes()
        public = serialization.load_ssh_public_key(registered)
        assert public.public_numbers() == private.public_key().public_numbers()  # type: ignore[union-attr]


def test_refuses_to_overwrite_an_existing_part(tmp_path, capsys) -> None:
    (tmp_path / "bank-b").mkdir()
    assert _init(tmp_path) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--out" in err and "bank-b" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bank-b"]


@pytest.mark.parametrize(
    ("extra", "banks", "hosts", "option", "value"),
    [
        ((), "bank-a", "h", "--institutions", "bank-a"),
        ((), "bank-a,bank-a", "h", "--institutions", "bank-a"),
        ((), "bank-a,bank b", "h", "--institutions", "bank b"),
        ((), "bank-a,bank.b", "h", "--institutions", "bank.b"),
        ((), "bank-a,coordinator", "h", "--institutions", "coordinator"),
        ((), "bank-a,", "h", "--institutions", "''"),
        ((), "bank-a,bank-b", "", "--coordinator-host", "''"),
        ((), "bank-a,bank-b", "a,,b", "--coordinator-host", "''"),
        ((), "bank-a,bank-b", "bad host", "--coordinator-host", "bad host"),
        (("--epsilon-budget", "0"), "bank-a,bank-b", "h", "--epsilon-budget", "0.0"),
        (("--epsilon-budget", "inf"), "bank-a,bank-b", "h", "--epsilon-budget", "inf"),
        (("--epsilon-budget", "x"), "bank-a,bank-b", "h", "--epsilon-budget", "x"),
        (("--delta", "1"), "bank-a,bank-b", "h", "--delta", "1.0"),
    ],
)
def test_bad_inputs_exit_2_with_one_line(
    tmp_path, capsys, extra, banks, hosts, option, value
) -> None:
    assert _init(tmp_path / "out", *extra, banks=banks, hosts=hosts) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and option in err and value in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_bad_consortium_name_exits_2(tmp_path, capsys) -> None:
    code = consortium_command(
        [
            "init",
            "--name",
            "a/b",
            "--institutions",
            "x,y",
            "--coordinator-host",
            "h",
            "--out",
            str(tmp_path),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and "--name" in err and "a/b" in err and "\n" not in err


def test_missing_option_and_subcommand_exit_2(capsys) -> None:
    assert consortium_command(["init", "--name", "demo"]) == 2
    assert "--institutions" in capsys.readouterr().err
    assert consortium_command([]) == 2


def test_usage_names_the_command_and_its_options() -> None:
    for part in (
        "fedrisk consortium init",
        "fedrisk consortium join",
        "fedrisk consortium assemble",
        "fedrisk consortium pin",
        "--sha256",
        "--name",
        "--institutions",
        "--coordinator-host",
        "--out",
    ):
        assert part in USAGE
