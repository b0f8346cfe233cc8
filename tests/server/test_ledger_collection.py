"""The coordinator keeps only ledgers that verify, and says why it dropped the others."""

from __future__ import annotations

from pathlib import Path

import pytest
from answering_grid import Answer, AnsweringGrid
from flwr.app import ConfigRecord, Error, Message, RecordDict

from fedrisk.privacy.accountant import AccountantKind, epsilon_spent
from fedrisk.privacy.ledger import LedgerWriter, ledger_path, read_ledger
from fedrisk.privacy.manifest import ConsortiumManifest, InstitutionRecord
from fedrisk.privacy.mechanism import PoissonGaussian
from fedrisk.secure.signing import generate_signing_key, public_key_text
from fedrisk.server.ledger_collection import collect_ledgers
from fedrisk.strategies import messages

FINGERPRINT = "cd" * 32
MECHANISM = PoissonGaussian(noise_multiplier=1.1, sample_rate=0.01, steps=100, max_grad_norm=1.0)
NAMES = ("bank_a", "bank_b", "bank_c")
NODE_OF = {name: 100 + i for i, name in enumerate(NAMES)}


@pytest.fixture
def consortium(tmp_path: Path) -> tuple[ConsortiumManifest, dict[str, Path]]:
    keys = {name: generate_signing_key() for name in NAMES}
    manifest = ConsortiumManifest(
        name="c",
        institutions=tuple(
            InstitutionRecord(
                name=name,
                public_key=public_key_text(key.public_key()),
                budget_epsilon=8.0,
                budget_delta=1e-5,
            )
            for name, key in keys.items()
        ),
    )
    paths = {}
    for name, key in keys.items():
        path = ledger_path(tmp_path / name, institution=name, dataset_fingerprint=FINGERPRINT)
        path.parent.mkdir()
        writer = LedgerWriter(
            path, signing_key=key, institution=name, dataset_fingerprint=FINGERPRINT
        )
        for round_ in (1, 2):
            writer.append(
                run_id="r1",
                round=round_,
                mechanism=MECHANISM,
                delta=1e-5,
                accountant=AccountantKind.rdp,
                epsilon=epsilon_spent(
                    [MECHANISM] * round_, delta=1e-5, accountant=AccountantKind.rdp
                ),
                budget_epsilon=8.0,
                budget_delta=1e-5,
                update_sha256="00" * 32,
            )
        paths[name] = path
    return manifest, paths


def sends(name: str, content: bytes) -> Answer:
    def answer(message: Message) -> Message:
        record = ConfigRecord({messages.LEDGER_FILE: name, messages.LEDGER_CONTENT: content})
        return Message(content=RecordDict({messages.LEDGER: record}), reply_to=message)

    return answer


def test_verified_ledgers_are_kept_in_the_run_directory(consortium, tmp_path: Path) -> None:
    manifest, paths = consortium
    grid = AnsweringGrid({NODE_OF[n]: sends(paths[n].name, paths[n].read_bytes()) for n in NAMES})
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    facts = collect_ledgers(grid, NODE_OF, manifest, run_dir, timeout=5)  # type: ignore[arg-type]
    assert [m.metadata.message_type for m in grid.sent] == [messages.LEDGER_MESSAGE_TYPE] * 3
    for name in NAMES:
        assert facts[name] == {
            "ledger": f"ledgers/{paths[name].name}",
            "ledger_entries": 2,
            "ledger_verified": True,
        }
        kept = run_dir / str(facts[name]["ledger"])
        assert kept.read_bytes() == paths[name].read_bytes()
        assert [e.round for e in read_ledger(kept, manifest.public_key(name))] == [1, 2]


def test_tampered_misnamed_silent_and_failed_ledgers_are_not_kept(
    consortium, tmp_path: Path
) -> None:
    manifest, paths = consortium
    tampered = paths["bank_a"].read_bytes().replace(b'"round":2', b'"round":3')
    stolen = paths["bank_c"]  # bank_b answers with bank_c's ledger under bank_c's name

    def fails(message: Message) -> Message:
        return Message(Error(code=0, reason="disk full"), reply_to=message)

    grid = AnsweringGrid(
        {
            NODE_OF["bank_a"]: sends(paths["bank_a"].name, tampered),
            NODE_OF["bank_b"]: sends(stolen.name, stolen.read_bytes()),
            NODE_OF["bank_c"]: lambda message: None,
        }
    )
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    facts = collect_ledgers(grid, NODE_OF, manifest, run_dir, timeout=5)  # type: ignore[arg-type]
    assert facts["bank_a"]["ledger_verified"] is False
    assert "signature" in str(facts["bank_a"]["ledger_error"])
    assert facts["bank_b"]["ledger_verified"] is False
    assert "ledger-bank_b-<16 hex>.jsonl" in str(facts["bank_b"]["ledger_error"])
    assert facts["bank_c"] == {"ledger_verified": False, "ledger_error": "no reply within 5 s"}
    assert list((run_dir / "ledgers").iterdir()) == []

    grid = AnsweringGrid({NODE_OF[n]: fails for n in NAMES})
    facts = collect_ledgers(grid, NODE_OF, manifest, run_dir, timeout=5)  # type: ignore[arg-type]
    assert facts["bank_a"]["ledger_error"] == "bank_a's node could not send its ledger: disk full"
