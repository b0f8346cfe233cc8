"""A plaintext DP-SGD bank asked for a round it already released sends its kept update again.

The coordinator crashed after the bank's release and before aggregating; the resumed
run asks for the same round from the same global model. A restarted ClientApp (a fresh
``Context``) answers from its kept copy: the same bytes, so the same digest as its
signed ledger entry, no resend statement, and no second ledger entry. Real Opacus
training, real Ed25519 keys and ledger, real Flower messages, handed over in-process.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.supercore.task_identity import TaskIdentity

from fedrisk.client import app
from fedrisk.client.node_setup import node_setup
from fedrisk.models.tabular import build_model
from fedrisk.privacy.ledger import read_ledger
from fedrisk.privacy.manifest import ConsortiumManifest
from fedrisk.simulations.consortium import build_consortium, institution_profiles, resolve_schema
from fedrisk.simulations.entry import check_overrides
from fedrisk.simulations.provision import provision
from fedrisk.strategies import messages

BANK = "bank_c"  # the smallest bank of banks_3: 800 training rows
ROUND = 2


@pytest.fixture(autouse=True)
def _server_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Flower stamps instructions with the sending task's identity; play the ServerApp."""
    monkeypatch.setattr(TaskIdentity, "_run_id", 1)
    monkeypatch.setattr(TaskIdentity, "_node_id", 1)
    monkeypatch.setattr(TaskIdentity, "_task_id", 1)


@pytest.fixture
def run_config(tmp_path: Path) -> dict[str, str]:
    """A provisioned banks_3 DP-SGD run: the banks' data, keys and manifest on disk."""
    overrides = ["consortium=banks_3", "privacy=dpsgd", "rounds=3", "task.train.epochs=1"]
    settings = resolve_schema(check_overrides(overrides))
    built = build_consortium(settings, tmp_path / "data")
    profiles = institution_profiles(settings.consortium, seed=settings.seed)
    provisioned = provision(settings, profiles, run_dir=tmp_path)
    return messages.build_run_config(
        settings,
        run_dir=str(tmp_path),
        data_dir=str(built.data_dir),
        test_path=str(built.test_path),
        institutions=built.institutions,
        manifest=str(provisioned.manifest_path),
        state_dir=str(provisioned.state_dir),
        run_id="0123456789abcdef",
    )


def _started_client_app(run_config: dict[str, str]) -> Context:
    """The Context a (re)started ClientApp of BANK begins with: nothing in its state."""
    partition = [*messages.institutions_of(run_config)].index(BANK)
    return Context(
        run_id=1,
        node_id=7,
        node_config={messages.PARTITION_ID: partition},
        state=RecordDict(),
        run_config=run_config,
    )


def _instruction(global_model: ArrayRecord) -> Message:
    content = RecordDict(
        {
            messages.ARRAYS: global_model,
            messages.CONFIG: ConfigRecord({messages.SERVER_ROUND: ROUND}),
        }
    )
    return Message(content=content, dst_node_id=7, message_type=MessageType.TRAIN)


def test_a_released_round_asked_again_is_answered_with_the_kept_update_byte_for_byte(
    run_config,
) -> None:
    global_model = _global_model(run_config, seed=3)

    first = app.train(_instruction(global_model), _started_client_app(run_config))
    again = app.train(_instruction(global_model), _started_client_app(run_config))

    sent, resent = (messages.arrays_of(reply.content) for reply in (first, again))
    assert sent.keys() == resent.keys()
    for name in sent:
        assert sent[name].data == resent[name].data, name
    assert messages.RESENT not in again.content  # sent as it was: no statement needed
    assert messages.REFUSAL not in again.content
    first_metrics, again_metrics = (
        r.content.metric_records[messages.METRICS] for r in (first, again)
    )
    assert again_metrics == first_metrics  # the same ε, rows and loss as released
    manifest = ConsortiumManifest.load(Path(run_config[messages.MANIFEST]))
    ledger = next((Path(run_config[messages.STATE_DIR]) / BANK).glob("ledger-*.jsonl"))
    entries = read_ledger(ledger, manifest.public_key(BANK))
    assert [(e.round, e.run_id) for e in entries] == [(ROUND, "0123456789abcdef")]
    assert entries[0].update_sha256 == messages.update_digest(resent)
    assert entries[0].epsilon == first_metrics[messages.EPSILON]


def test_a_released_round_asked_from_another_global_model_is_refused(run_config) -> None:
    app.train(_instruction(_global_model(run_config, seed=3)), _started_client_app(run_config))

    other = _global_model(run_config, seed=4)
    refused = app.train(_instruction(other), _started_client_app(run_config))

    reason = str(refused.content.config_records[messages.REFUSAL][messages.REFUSAL_REASON])
    assert f"round {ROUND} of run 0123456789abcdef was already released" in reason
    assert "would spend its privacy twice" in reason
    assert messages.ARRAYS not in refused.content.array_records


def _global_model(run_config: dict[str, str], *, seed: int) -> ArrayRecord:
    """The coordinator's model of the round (initialised with ``seed``)."""
    setup = node_setup(_started_client_app(run_config))
    model = build_model(setup.settings.task.model, setup.data.x_train.shape[1], seed=seed)
    return ArrayRecord(model.state_dict())
