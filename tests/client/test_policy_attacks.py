"""A coordinator that asks a bank's node for less than its policy allows is refused.

Each test acts as a dishonest coordinator would: it sends the real ClientApp (the one
``flower-supernode`` runs, mods included) real Flower messages carrying a run config of
its choosing, to a node set up as ``fedrisk node`` sets one up (institution, table,
state folder, manifest and the bank's own policy file in the node config).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.supercore.task_identity import TaskIdentity
from omegaconf import OmegaConf

from fedrisk.client.app import make_client_app
from fedrisk.client.node_keys import SIGNING_KEY_FILE
from fedrisk.client.node_setup import node_setup
from fedrisk.client.policy import POLICY_FILE, PolicyError, load_policy, write_policy
from fedrisk.client.policy_rules import PolicyRefusal, check_run
from fedrisk.conf.root import FedriskConfig
from fedrisk.data.encoding import TableEncoder
from fedrisk.data.schema import TableSchema
from fedrisk.data.schema_file import read_schema
from fedrisk.models.tabular import build_model
from fedrisk.privacy.ledger import read_ledger
from fedrisk.privacy.manifest import MANIFEST_FILE, ConsortiumManifest, InstitutionRecord
from fedrisk.secure.signing import (
    generate_signing_key,
    load_private_key,
    public_key_text,
    save_private_key,
)
from fedrisk.simulations.consortium import resolve_schema
from fedrisk.simulations.entry import check_overrides
from fedrisk.simulations.synth_data import SynthRequest, write_synthetic
from fedrisk.strategies import messages

BANKS = ("bank-a", "bank-b", "bank-c", "bank-d", "bank-e")
BANK = "bank-a"
NODE_ID = 7
#: What the bank's default policy accepts of the privacy group.
DP = ("privacy=dpsgd", "privacy.noise_source=os_entropy")


@pytest.fixture(autouse=True)
def _task_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    for attribute in ("_run_id", "_node_id", "_task_id"):
        monkeypatch.setattr(TaskIdentity, attribute, 1)


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bank-a's folder: its table, schema, signing key, manifest and policy."""
    root = tmp_path_factory.mktemp("bank")
    write_synthetic(
        SynthRequest(task="credit_default", institutions=list(BANKS), out=root, rows=2500, seed=3)
    )
    folder = root / BANK
    folder.mkdir(exist_ok=True)
    key = generate_signing_key()
    save_private_key(key, folder / SIGNING_KEY_FILE)
    records = tuple(
        InstitutionRecord(
            name=name,
            public_key=public_key_text(
                (key if name == BANK else generate_signing_key()).public_key()
            ),
            budget_epsilon=8.0,
            budget_delta=1e-5,
        )
        for name in BANKS
    )
    ConsortiumManifest(name="pilot", institutions=records).save(folder / MANIFEST_FILE)
    (folder / "schema.yaml").write_bytes((root / "schema.yaml").read_bytes())
    write_policy(folder, institution=BANK, schema_file="schema.yaml")
    return folder


def _policy(folder: Path, **changes: object) -> Path:
    """A copy of the bank's policy with some fields changed (as its security officer would)."""
    text = OmegaConf.load(folder / POLICY_FILE)
    for key, value in changes.items():
        OmegaConf.update(text, key, value)
    path = folder / f"policy-{abs(hash(tuple(sorted(map(str, changes.items())))))}.yaml"
    path.write_text(OmegaConf.to_yaml(text), encoding="utf-8")
    return path


def _settings(folder: Path, *overrides: str) -> FedriskConfig:
    settings = resolve_schema(
        check_overrides(["consortium=banks_5", "rounds=2", "task.train.epochs=1", *overrides])
    )
    settings.task.schema = read_schema(folder / "schema.yaml")
    return settings


def _context(folder: Path, settings: FedriskConfig, *, policy: Path | None = None) -> Context:
    table = folder.parent / f"{BANK}.csv"
    return Context(
        run_id=11,
        node_id=NODE_ID,
        node_config={
            messages.NODE_INSTITUTION: BANK,
            messages.NODE_DATA_PATH: str(table),
            messages.NODE_STATE_DIR: str(folder),
            messages.NODE_MANIFEST: str(folder / MANIFEST_FILE),
            messages.NODE_POLICY: str(policy or folder / POLICY_FILE),
        },
        state=RecordDict(),
        run_config={
            **messages.build_run_config(
                settings,
                run_dir=str(folder / "run"),
                data_dir="",
                test_path="",
                institutions=BANKS,
                run_id="run-1",
            ),
        },
    )


def _query(context: Context) -> RecordDict:
    msg = Message(content=RecordDict(), dst_node_id=NODE_ID, message_type=MessageType.QUERY)
    return make_client_app()(msg, context).content


def _train(context: Context, settings: FedriskConfig, server_round: int = 1) -> RecordDict:
    assert settings.task.schema is not None
    width = len(TableEncoder(settings.task.schema).feature_names)
    model = build_model(settings.task.model, width, seed=0)
    content = RecordDict(
        {
            messages.ARRAYS: ArrayRecord(model.state_dict()),
            messages.CONFIG: ConfigRecord({messages.SERVER_ROUND: server_round}),
        }
    )
    msg = Message(content=content, dst_node_id=NODE_ID, message_type=MessageType.TRAIN)
    return make_client_app()(msg, context).content


def _refusal(content: RecordDict) -> tuple[str, str]:
    refusal = content.config_records[messages.REFUSAL]
    return str(refusal[messages.REFUSAL_RULE]), str(refusal[messages.REFUSAL_REASON])


def _ledgers(folder: Path) -> list[Path]:
    return sorted(folder.glob("ledger-*.jsonl"))


# The coordinator asks for `privacy=none`: raw weights, nothing in the ledger.
def test_a_run_without_dp_is_refused_and_nothing_is_trained_or_sent(bank: Path) -> None:
    settings = _settings(bank, "privacy=none", "secagg=secaggplus")
    context = _context(bank, settings)

    rule, reason = _refusal(_query(context))
    reply = _train(context, settings)

    assert rule == "privacy.mechanism" and "privacy=none" in reason
    assert _refusal(reply)[0] == "privacy.mechanism"
    assert messages.ARRAYS not in reply.array_records and not reply.array_records
    assert _ledgers(bank) == []


# The coordinator asks for seeded DP noise, which it could subtract.
def test_seeded_noise_is_refused(bank: Path) -> None:
    settings = _settings(bank, "privacy=dpsgd", "privacy.noise_source=seeded", "secagg=secaggplus")

    rule, _ = _refusal(_train(_context(bank, settings), settings))

    assert rule == "privacy.allow_seeded_noise"


def test_a_policy_file_cannot_allow_seeded_noise(bank: Path) -> None:
    path = _policy(bank, **{"privacy.allow_seeded_noise": True})

    with pytest.raises(PolicyError, match="allow_seeded_noise"):
        load_policy(path)


@pytest.mark.parametrize(
    ("overrides", "rule"),
    [
        (("secagg=none",), "secagg.required"),
        (("secagg=secaggplus", "secagg.threshold=3"), "secagg.min_threshold_fraction"),
        (("secagg=secaggplus", "secagg.consistency_check=false"), "secagg.consistency_check"),
        (("secagg=secaggplus", "privacy.noise_multiplier=0.2"), "privacy.min_noise_multiplier"),
    ],
    ids=["no-secagg", "low-threshold", "no-consistency", "little-noise"],
)
def test_weaker_settings_are_refused_naming_the_rule(
    bank: Path, overrides: tuple[str, ...], rule: str
) -> None:
    settings = _settings(bank, "privacy=dpsgd", "privacy.noise_source=os_entropy", *overrides)
    context = _context(bank, settings)

    assert _refusal(_query(context))[0] == rule
    assert _refusal(_train(context, settings))[0] == rule
    assert _ledgers(bank) == []


def test_a_class_weight_from_the_banks_labels_is_refused_under_dp(bank: Path) -> None:
    # The config schema refuses `pos_weight: null` with DP-SGD already; a coordinator
    # that skips that check still meets the node's own rule.
    settings = _settings(
        bank, "privacy=dpsgd", "privacy.noise_source=os_entropy", "secagg=secaggplus"
    )
    settings.task.train.pos_weight = None

    with pytest.raises(PolicyRefusal) as refused:
        check_run(settings, load_policy(bank / POLICY_FILE), institution=BANK, institutions=5)

    assert refused.value.rule == "privacy.class_weight"


def test_a_schema_with_another_column_is_refused(bank: Path) -> None:
    settings = _settings(bank, *DP, "secagg=secaggplus")
    assert settings.task.schema is not None
    schema = settings.task.schema
    settings.task.schema = TableSchema(
        features=schema.features[:-1], label=schema.label, protected=schema.protected
    )

    rule, reason = _refusal(_query(_context(bank, settings)))

    assert rule == "schema" and "drops feature" in reason


# The coordinator reorders `task.schema` (or a row changes): the budget is not reset.
def test_a_reordered_schema_composes_with_the_budget_already_spent(bank: Path) -> None:
    policy = _policy(bank, **{"secagg.required": False})
    plain = _settings(bank, *DP, "secagg=none")
    reordered = _settings(bank, *DP, "secagg=none")
    assert reordered.task.schema is not None
    reordered.task.schema.features = list(reversed(reordered.task.schema.features))

    first = _train(_context(bank, plain, policy=policy), plain)
    second_context = _context(bank, reordered, policy=policy)
    second_context.run_config[messages.RUN_ID] = "run-2"  # a new run by the coordinator
    second = _train(second_context, reordered)

    assert messages.REFUSAL not in first.config_records
    assert messages.REFUSAL not in second.config_records
    (ledger,) = _ledgers(bank)  # one ledger: the population's, not one per schema order
    key = load_private_key(bank / SIGNING_KEY_FILE).public_key()
    entries = read_ledger(ledger, key)
    assert [e.run_id for e in entries] == ["run-1", "run-2"]
    assert entries[0].to_json()["table_sha256"] == entries[1].to_json()["table_sha256"]
    assert entries[1].epsilon > entries[0].epsilon  # composed, never reset
    spent = messages.metrics_of(second)[messages.EPSILON]
    assert spent == pytest.approx(entries[1].epsilon)


def test_a_changed_row_composes_with_the_budget_already_spent(bank: Path) -> None:
    # A new export of the same customers (one cell changed) is the same population.
    policy = _policy(bank, **{"secagg.required": False})
    settings = _settings(bank, *DP, "secagg=none")
    changed = bank.parent / "changed" / f"{BANK}.csv"
    changed.parent.mkdir(exist_ok=True)
    lines = (bank.parent / f"{BANK}.csv").read_text().splitlines()
    header, first_row = lines[0].split(","), lines[1].split(",")
    column = next(i for i, name in enumerate(header) if name == "income")
    first_row[column] = str(float(first_row[column]) + 1.0)
    changed.write_text("\n".join([lines[0], ",".join(first_row), *lines[2:]]) + "\n")
    before = _context(bank, settings, policy=policy)
    before.run_config[messages.RUN_ID] = "run-3"
    after = _context(bank, settings, policy=policy)
    after.run_config[messages.RUN_ID] = "run-4"
    after.node_config[messages.NODE_DATA_PATH] = str(changed)

    _train(before, settings)
    _train(after, settings)

    (ledger,) = _ledgers(bank)
    entries = read_ledger(ledger, load_private_key(bank / SIGNING_KEY_FILE).public_key())
    by_run = {e.run_id: e for e in entries}
    assert by_run["run-3"].to_json()["table_sha256"] != by_run["run-4"].to_json()["table_sha256"]
    assert by_run["run-4"].epsilon > by_run["run-3"].epsilon


def test_the_validation_split_follows_the_banks_secret_seed(bank: Path) -> None:
    one = _settings(bank, *DP, "secagg=secaggplus", "seed=1")
    two = _settings(bank, *DP, "secagg=secaggplus", "seed=2")

    first = node_setup(_context(bank, one)).data
    second = node_setup(_context(bank, two)).data

    assert torch.equal(torch.as_tensor(first.y_val), torch.as_tensor(second.y_val))
    assert (first.x_val == second.x_val).all()


def test_a_deployed_node_without_a_policy_answers_nothing(bank: Path) -> None:
    settings = _settings(bank, *DP, "secagg=secaggplus")
    context = _context(bank, settings)
    del context.node_config[messages.NODE_POLICY]

    with pytest.raises(PolicyError, match="policy"):
        node_setup(context)
