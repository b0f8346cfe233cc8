"""The roll call admits a node only for the institution it proves with the manifest's key.

A node claiming another bank's name answers first; it is refused and listed, and the
real bank still takes its slot. The nodes sign with the ClientApp's own code
(`fedrisk.client.identity`) and real Ed25519 keys on disk; messages are Flower's.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from answering_grid import Answer, AnsweringGrid
from flwr.app import ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.supercore.task_identity import TaskIdentity

from fedrisk.client.identity import proof_records
from fedrisk.client.node_keys import SIGNING_KEY_FILE
from fedrisk.privacy.manifest import MANIFEST_FILE, ConsortiumManifest, InstitutionRecord
from fedrisk.secure.signing import (
    generate_signing_key,
    load_private_key,
    public_key_text,
    save_private_key,
)
from fedrisk.server.roll_call import RollCallError, roll_call
from fedrisk.strategies import messages
from fedrisk.strategies.roll_call_identity import IDENTITY

BANKS = ("bank-a", "bank-b", "bank-c")
RUN_ID = "run-7"


@pytest.fixture(autouse=True)
def _server_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Flower stamps instructions with the sending task's identity; play the ServerApp."""
    monkeypatch.setattr(TaskIdentity, "_run_id", 1)
    monkeypatch.setattr(TaskIdentity, "_node_id", 1)
    monkeypatch.setattr(TaskIdentity, "_task_id", 1)


class RollCallGrid(AnsweringGrid):
    def get_node_ids(self) -> list[int]:
        return sorted(self.answers)


def _key_folder(root: Path, name: str) -> Path:
    folder = root / name
    folder.mkdir()
    save_private_key(generate_signing_key(), folder / SIGNING_KEY_FILE)
    return folder


@pytest.fixture
def consortium(tmp_path: Path) -> ConsortiumManifest:
    records = []
    for bank in BANKS:
        key = load_private_key(_key_folder(tmp_path, bank) / SIGNING_KEY_FILE)
        records.append(
            InstitutionRecord(
                name=bank,
                public_key=public_key_text(key.public_key()),
                budget_epsilon=8.0,
                budget_delta=1e-5,
            )
        )
    manifest = ConsortiumManifest(name="ci", institutions=tuple(records))
    manifest.save(tmp_path / MANIFEST_FILE)
    return manifest


def _node(state_dir: Path, manifest: Path, node_id: int, claims: str, *, prove: bool) -> Answer:
    """A node that names ``claims`` and signs with the key in ``state_dir``."""
    context = Context(
        run_id=1,
        node_id=node_id,
        node_config={
            messages.NODE_STATE_DIR: str(state_dir),
            messages.NODE_MANIFEST: str(manifest),
        },
        state=RecordDict(),
        run_config={messages.RUN_ID: RUN_ID},
    )

    def answer(query: Message) -> Message:
        node = ConfigRecord({messages.INSTITUTION: claims})
        content = RecordDict({messages.NODE: node, messages.METRICS: MetricRecord()})
        if prove:
            content.update(proof_records(query.content, context, claims))
        return Message(content=content, reply_to=query)

    return answer


def _identities(manifest: ConsortiumManifest) -> dict:
    return {record.name: manifest.public_key(record.name) for record in manifest.institutions}


def test_impostors_are_refused_and_the_real_bank_still_gets_in(
    tmp_path: Path, consortium: ConsortiumManifest
) -> None:
    manifest = tmp_path / MANIFEST_FILE
    rogue = _key_folder(tmp_path, "rogue")  # a key of its own, not bank-a's
    answers = {
        3: _node(rogue, manifest, 3, "bank-a", prove=True),  # bad proof, answers first
        4: _node(rogue, manifest, 4, "bank-b", prove=False),  # no proof at all
        10: _node(tmp_path / "bank-a", manifest, 10, "bank-a", prove=True),
        11: _node(tmp_path / "bank-b", manifest, 11, "bank-b", prove=True),
        12: _node(tmp_path / "bank-c", manifest, 12, "bank-c", prove=True),
    }
    grid = RollCallGrid(answers)

    roster = roll_call(
        grid,  # type: ignore[arg-type]
        expected=BANKS,
        minimum=3,
        timeout=5,
        identities=_identities(consortium),
        run_id=RUN_ID,
        poll=0.01,
    )

    assert roster.node_of == {"bank-a": 10, "bank-b": 11, "bank-c": 12}
    assert set(roster.rejected) == {3, 4}
    assert "claims 'bank-a' without proof" in roster.rejected[3]
    assert "does not verify" in roster.rejected[3]
    assert "no proof of identity for 'bank-b'" in roster.rejected[4]
    challenges = [m.content.config_records[IDENTITY]["challenge"] for m in grid.sent]
    assert len(set(challenges)) == len(grid.sent)  # a fresh challenge for every node


def test_a_proof_is_bound_to_its_run(tmp_path: Path, consortium: ConsortiumManifest) -> None:
    manifest = tmp_path / MANIFEST_FILE
    answers = {
        10 + i: _node(tmp_path / bank, manifest, 10 + i, bank, prove=True)
        for i, bank in enumerate(BANKS)
    }

    with pytest.raises(RollCallError, match="refused: node claims 'bank-a' without proof"):
        roll_call(
            RollCallGrid(answers),  # type: ignore[arg-type]
            expected=BANKS,
            minimum=3,
            timeout=0.2,
            identities=_identities(consortium),
            run_id="another-run",
            poll=0.01,
        )
