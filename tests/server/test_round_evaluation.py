"""The round loop evaluates what a bank's policy lets it evaluate, and records which model.

Three banks' real ClientApps answer the coordinator's real round loop in-process (an
`AnsweringGrid` hands each message to the bank's app and Context). Each round's
federated evaluation is of the model the round started from, sent to the banks that
trained from it; after the last round the final model is evaluated once, flagged final.
A bank whose policy withholds its training loss or refuses evaluation is recorded, and
nothing crashes.
"""

from __future__ import annotations

import json
from pathlib import Path

from answering_grid import AnsweringGrid
from flwr.app import ArrayRecord, Context, Message, MessageType, RecordDict
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
from fedrisk.server.evaluation import CentralEvaluator, HeldOutSet
from fedrisk.server.records import METRICS_FILE, RunRecorder
from fedrisk.server.roll_call import Roster
from fedrisk.server.rounds import LoopSettings, RoundLoop
from fedrisk.simulations.consortium import build_consortium, resolve_schema
from fedrisk.simulations.entry import check_overrides
from fedrisk.strategies import build_strategy, messages

BANKS = ("bank_a", "bank_b", "bank_c")
NODE_OF = {name: 10 + i for i, name in enumerate(BANKS)}


def _policies(folder: Path, seed: int) -> Path:
    rules = {
        "bank_a": ReleaseRules(train_loss=True),
        "bank_b": ReleaseRules(train_loss=True),
        "bank_c": ReleaseRules(min_evaluation_rows=100_000),  # refuses; withholds its loss
    }
    folder.mkdir()
    for bank, releases in rules.items():
        policy = NodePolicy(
            institution=bank,
            validation_seed=seed,
            privacy=PrivacyRules(mechanism=RequiredMechanism.none),
            secagg=SecAggRules(required=False),
            releases=releases,
        )
        (folder / f"{bank}.yaml").write_text(OmegaConf.to_yaml(OmegaConf.structured(policy)))
    return folder


def test_rounds_evaluate_the_model_trained_from_and_the_final_model_once(tmp_path) -> None:
    seed = check_overrides(["consortium=banks_3"]).seed
    policies = _policies(tmp_path / "policies", seed)
    settings = resolve_schema(
        check_overrides(
            [
                "consortium=banks_3",
                "rounds=2",
                "task.train.epochs=1",
                f"simulation.policy_dir={policies}",
            ]
        )
    )
    built = build_consortium(settings, tmp_path / "data")
    run_config = messages.build_run_config(
        settings,
        run_dir=str(tmp_path / "run"),
        data_dir=str(built.data_dir),
        test_path=str(built.test_path),
        institutions=built.institutions,
        run_id="round-evaluation",
    )
    app = make_client_app()
    contexts = {
        NODE_OF[name]: Context(
            run_id=1,
            node_id=NODE_OF[name],
            node_config={messages.PARTITION_ID: built.institutions.index(name)},
            state=RecordDict(),
            run_config=run_config,
        )
        for name in BANKS
    }
    grid = AnsweringGrid(
        {node: (lambda m, c=context: app(m, c)) for node, context in contexts.items()}
    )
    assert settings.task.schema is not None
    held_out = HeldOutSet.load(built.test_path, settings.task.schema)
    evaluator = CentralEvaluator(settings.task.model, held_out, threshold=settings.task.threshold)
    initial = ArrayRecord(
        build_model(settings.task.model, held_out.x.shape[1], seed=settings.seed).state_dict()
    )
    loop = RoundLoop(
        grid,  # type: ignore[arg-type]
        build_strategy(settings.strategy, n_institutions=3),
        Roster(node_of=dict(NODE_OF), n_train={}, rejected={}),
        evaluator,
        RunRecorder(tmp_path / "run"),
        LoopSettings(
            rounds=2, seed=settings.seed, timeout=60, min_train_nodes=2, show_progress=False
        ),
    )

    result = loop.run(initial)

    def sent(kind: str) -> list[Message]:
        return [m for m in grid.sent if m.metadata.message_type == kind]

    def digests(batch: list[Message]) -> set[str]:
        return {messages.update_digest(messages.arrays_of(m.content)) for m in batch}

    trains, evaluations = sent(MessageType.TRAIN), sent(MessageType.EVALUATE)
    assert len(trains) == 6 and len(evaluations) == 9  # 3 banks × (2 rounds + final)
    for server_round in (1, 2):
        of_round = [e for e in evaluations[3 * (server_round - 1) : 3 * server_round]]
        assert digests(of_round) == digests(trains[3 * (server_round - 1) : 3 * server_round])
        assert all(messages.FINAL_MODEL not in messages.config_of(e.content) for e in of_round)
    final = evaluations[6:]
    assert digests(final) == {messages.update_digest(result.arrays)}
    assert all(messages.config_of(e.content)[messages.FINAL_MODEL] is True for e in final)

    lines = [json.loads(x) for x in (tmp_path / "run" / METRICS_FILE).read_text().splitlines()]
    assert [r["round"] for r in lines] == [1, 2]
    for record in lines:
        assert record["federated_model"] == "round_start"
        assert sorted(record["institutions"]) == ["bank_a", "bank_b"]
        assert list(record["evaluation_refusals"]) == ["bank_c"]
        assert "releases.evaluation" in record["evaluation_refusals"]["bank_c"]
        assert record["train"] == {"loss_withheld_by": ["bank_c"]}
    last = lines[-1]["final"]
    assert last["model_round"] == 2
    assert sorted(last["institutions"]) == ["bank_a", "bank_b"]
    assert list(last["evaluation_refusals"]) == ["bank_c"]
    assert result.last_federated == last["federated"]
    assert last["federated"]["auc"] != lines[-1]["federated"]["auc"]  # another model
