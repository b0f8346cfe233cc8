"""Keys are born at the bank: join, assemble, pin on separate "machines" (folders).

The coordinator only ever sees the banks' public join requests; a bank refuses a
manifest that lists other keys for it, and `fedrisk node` refuses a manifest that
changed since it was pinned. Real keys, real files, the real command functions.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from fedrisk.deploy import consortium_command
from fedrisk.deploy.supernode import node_command
from fedrisk.privacy.manifest import ConsortiumManifest
from fedrisk.secure.signing import generate_signing_key, public_key_text

BANKS = ("bank-a", "bank-b")


@pytest.fixture
def machines(tmp_path: Path) -> dict[str, Path]:
    """Each bank joins on its machine; the coordinator assembles from the requests."""
    folders = {bank: tmp_path / f"{bank}-machine" / bank for bank in BANKS}
    for bank, folder in folders.items():
        assert consortium_command(["join", "--institution", bank, "--out", str(folder)]) == 0
    coordinator_machine = tmp_path / "coordinator-machine"
    requests = [str(folder / "join-request.json") for folder in folders.values()]
    assert (
        consortium_command(
            [
                "assemble",
                "--name",
                "demo",
                "--coordinator-host",
                "localhost",
                "--out",
                str(coordinator_machine),
                *requests,
            ]
        )
        == 0
    )
    return {**folders, "coordinator": coordinator_machine / "coordinator"}


def _pin(bank: Path, manifest: Path, coordinator: Path, *extra: str) -> int:
    return consortium_command(
        ["pin", "--consortium", str(bank), "--manifest", str(manifest),
         "--ca-cert", str(coordinator / "ca_cert.pem"), *extra]
    )  # fmt: skip


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    return err


def test_the_coordinator_never_holds_a_bank_private_key(machines: dict[str, Path]) -> None:
    secrets = [
        (machines[bank] / name).read_bytes()
        for bank in BANKS
        for name in ("signing_key.pem", "supernode_auth_key")
    ]
    coordinator_files = [p for p in machines["coordinator"].parent.rglob("*") if p.is_file()]
    for path in coordinator_files:
        data = path.read_bytes()
        assert not any(secret in data for secret in secrets), path
    manifest = ConsortiumManifest.load(machines["coordinator"] / "consortium.json")
    for bank in BANKS:
        request = json.loads((machines[bank] / "join-request.json").read_text())
        record = manifest.institution(bank)
        assert (record.public_key, record.node_auth_key) == (
            request["public_key"],
            request["node_auth_key"],
        )


def test_a_bank_pins_the_manifest_with_its_announced_hash(
    machines: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = machines["coordinator"] / "consortium.json"
    digest = hashlib.sha256(manifest.read_bytes()).hexdigest()
    bank = machines["bank-a"]

    assert _pin(bank, manifest, machines["coordinator"], "--sha256", "00" * 32) == 2
    assert "`--sha256` must be the SHA-256 of" in _one_line(capsys)
    assert not (bank / "consortium.sha256").exists()
    assert _pin(bank, manifest, machines["coordinator"], "--sha256", digest) == 0
    assert (bank / "consortium.sha256").read_text().split()[0] == digest
    assert (bank / "consortium.json").read_bytes() == manifest.read_bytes()


def test_a_manifest_with_another_signing_key_is_refused_by_pin_and_node(
    machines: dict[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    coordinator, bank = machines["coordinator"], machines["bank-a"]
    tampered = tmp_path / "tampered.json"
    content = json.loads((coordinator / "consortium.json").read_text())
    content["institutions"][0]["public_key"] = public_key_text(generate_signing_key().public_key())
    tampered.write_text(json.dumps(content, indent=2, sort_keys=True) + "\n")

    assert _pin(bank, tampered, coordinator) == 2
    err = _one_line(capsys)
    assert "`institutions[bank-a].public_key` must be the key this bank generated" in err

    assert _pin(bank, coordinator / "consortium.json", coordinator) == 0
    capsys.readouterr()
    (bank / "consortium.json").write_bytes(tampered.read_bytes())  # swapped after pinning
    data = tmp_path / "any.csv"
    data.write_text("a\n1\n")
    assert node_command(["--consortium", str(bank), "--data", str(data)]) == 2
    err = _one_line(capsys)
    assert err.startswith("fedrisk node: `") and "must match the SHA-256 pinned in" in err


def test_a_node_without_a_pinned_manifest_does_not_start(
    machines: dict[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = tmp_path / "any.csv"
    data.write_text("a\n1\n")
    assert node_command(["--consortium", str(machines["bank-b"]), "--data", str(data)]) == 2
    assert "no consortium.sha256; check and pin the manifest first" in _one_line(capsys)


def test_a_join_request_altered_in_transit_is_refused(
    machines: dict[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    request = json.loads((machines["bank-a"] / "join-request.json").read_text())
    other = json.loads((machines["bank-b"] / "join-request.json").read_text())
    request["node_auth_key"] = other["node_auth_key"]  # someone else's SuperNode key
    altered = tmp_path / "altered.json"
    altered.write_text(json.dumps(request))

    code = consortium_command(
        ["assemble", "--name", "demo", "--coordinator-host", "localhost",
         "--out", str(tmp_path / "again"), str(altered),
         str(machines["bank-b"] / "join-request.json")]
    )  # fmt: skip

    assert code == 2
    assert "`signature` must verify against its `public_key`" in _one_line(capsys)
    assert not (tmp_path / "again" / "coordinator").exists()


def test_join_never_overwrites_a_bank_folder(
    machines: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    key = (machines["bank-a"] / "signing_key.pem").read_bytes()
    out = str(machines["bank-a"])
    assert consortium_command(["join", "--institution", "bank-a", "--out", out]) == 2
    assert "already exists" in _one_line(capsys)
    assert (machines["bank-a"] / "signing_key.pem").read_bytes() == key
