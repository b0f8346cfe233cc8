"""A simulated bank's real ClientApp, handed Flower messages in-process (no simulation).

The banks' tables are written by the real consortium generator; each bank's policy is
either the simulation's permissive one or a policy file written here, as a bank would
keep it (``simulation.policy_dir``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.clientapp import ClientApp
from omegaconf import OmegaConf

from fedrisk.client.app import make_client_app
from fedrisk.client.policy import (
    NodePolicy,
    PrivacyRules,
    ReleaseRules,
    RequiredMechanism,
    SecAggRules,
)
from fedrisk.models.tabular import build_model
from fedrisk.simulations.consortium import build_consortium, resolve_schema
from fedrisk.simulations.entry import check_overrides
from fedrisk.strategies import messages
from fedrisk.strategies.risk_wire import RISK_MESSAGE_TYPE

BASE = ["consortium=banks_3", "rounds=2", "task.train.epochs=1"]


def write_policies(folder: Path, releases: dict[str, ReleaseRules]) -> Path:
    """Write a policy file per bank (no DP or SecAgg required: a plaintext test run).

    The secret validation seed is the run's seed, so the validation rows are those of
    the simulation's own policy (tests compare the two).
    """
    folder.mkdir(parents=True, exist_ok=True)
    seed = check_overrides(BASE).seed
    for bank, rules in releases.items():
        policy = NodePolicy(
            institution=bank,
            validation_seed=seed,
            privacy=PrivacyRules(mechanism=RequiredMechanism.none),
            secagg=SecAggRules(required=False),
            releases=rules,
        )
        (folder / f"{bank}.yaml").write_text(OmegaConf.to_yaml(OmegaConf.structured(policy)))
    return folder


@dataclass
class Bank:
    """One bank's ClientApp and the Context Flower keeps for it during a run."""

    app: ClientApp
    context: Context
    node_id: int
    width: int
    sent: list[Message] = field(default_factory=list)

    def ask(self, message_type: str, arrays: ArrayRecord, **config: object) -> Message:
        """Send one instruction through the real ClientApp (mods and handler)."""
        content = RecordDict({messages.ARRAYS: arrays, messages.CONFIG: ConfigRecord(config)})
        msg = Message(content=content, dst_node_id=self.node_id, message_type=message_type)
        self.sent.append(msg)
        return self.app(msg, self.context)

    def train(self, arrays: ArrayRecord, server_round: int = 1) -> Message:
        return self.ask(MessageType.TRAIN, arrays, **{messages.SERVER_ROUND: server_round})

    def evaluate(self, arrays: ArrayRecord, *, final: bool = False) -> Message:
        config: dict[str, object] = {messages.SERVER_ROUND: 1}
        if final:
            config[messages.FINAL_MODEL] = True
        return self.ask(MessageType.EVALUATE, arrays, **config)

    def risk(self, arrays: ArrayRecord) -> Message:
        return self.ask(RISK_MESSAGE_TYPE, arrays)

    def explain(self, arrays: ArrayRecord) -> Message:
        return self.ask(
            messages.EXPLAIN_MESSAGE_TYPE, arrays, **{messages.EXPLAIN_BASELINE: [0.0] * self.width}
        )

    def model(self, seed: int) -> ArrayRecord:
        """A global model of the run's architecture (a crafted one, for the attacks)."""
        settings = resolve_schema(check_overrides(BASE))
        return ArrayRecord(build_model(settings.task.model, self.width, seed=seed).state_dict())


def run_config_for(tmp_path: Path, *overrides: str) -> dict[str, str]:
    """Write banks_3's tables under ``tmp_path`` and return the run's ``run_config``."""
    settings = resolve_schema(check_overrides([*BASE, *overrides]))
    built = build_consortium(settings, tmp_path / "data")
    return messages.build_run_config(
        settings,
        run_dir=str(tmp_path / "run"),
        data_dir=str(built.data_dir),
        test_path=str(built.test_path),
        institutions=built.institutions,
        run_id="release-rules-run",
    )


def bank(run_config: dict[str, str], name: str, *, node_id: int = 7) -> Bank:
    """Start ``name``'s ClientApp with an empty state, as Flower does at a run's start."""
    partition = messages.institutions_of(run_config).index(name)
    context = Context(
        run_id=1,
        node_id=node_id,
        node_config={messages.PARTITION_ID: partition},
        state=RecordDict(),
        run_config=run_config,
    )
    return Bank(make_client_app(), context, node_id, width=_width(run_config, partition))


def _width(run_config: dict[str, str], partition: int) -> int:
    from fedrisk.client.node_setup import node_setup

    probe = Context(
        run_id=1,
        node_id=0,
        node_config={messages.PARTITION_ID: partition},
        state=RecordDict(),
        run_config=run_config,
    )
    return int(node_setup(probe).data.x_train.shape[1])
