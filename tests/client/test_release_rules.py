"""Nothing leaves a bank outside what its policy allows: the attacks, performed for real.

A malicious coordinator sends crafted models and queries to a bank's real ClientApp
(its mods and handlers, real Flower messages and Context, the bank's real table): the
evaluation oracle, a one-row explanation, risk counts of another model, repeated final
releases. Each is refused naming the policy rule; what the policy allows is answered.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from flwr.app import Message
from release_node import BASE, Bank, bank, run_config_for, write_policies

from fedrisk.client.node_setup import local_model, node_setup
from fedrisk.client.policy import ReleaseRules
from fedrisk.client.policy_rules import RULE_EVALUATION, RULE_EXPLANATIONS, RULE_RISK
from fedrisk.client.trainer import evaluate_model
from fedrisk.models.group_counts import group_counts
from fedrisk.models.tabular import predict_proba
from fedrisk.simulations.consortium import resolve_schema
from fedrisk.simulations.entry import check_overrides
from fedrisk.strategies import WEIGHT_KEY, messages
from fedrisk.strategies.risk_wire import FAIRNESS, counts_of


@pytest.fixture(autouse=True)
def _server_process(monkeypatch: pytest.MonkeyPatch) -> None:
    from flwr.supercore.task_identity import TaskIdentity

    for attribute in ("_run_id", "_node_id", "_task_id"):
        monkeypatch.setattr(TaskIdentity, attribute, 1)


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """banks_3's tables, written once for the module."""
    folder = tmp_path_factory.mktemp("banks")
    run_config_for(folder)
    return folder


def _with_policies(
    tables: Path, tmp_path: Path, *overrides: str, **rules: ReleaseRules
) -> dict[str, str]:
    policies = write_policies(
        tmp_path / "policies",
        {b: rules.get(b, ReleaseRules()) for b in ("bank_a", "bank_b", "bank_c")},
    )
    return _run_config(tables, f"simulation.policy_dir={policies}", *overrides)


def _run_config(tables: Path, *overrides: str) -> dict[str, str]:
    settings = resolve_schema(check_overrides([*BASE, *overrides]))
    return messages.build_run_config(
        settings,
        run_dir=str(tables / "run"),
        data_dir=str(tables / "data"),
        test_path=str(tables / "data" / "test.parquet"),
        institutions=["bank_a", "bank_b", "bank_c"],
        run_id="release-rules-run",
    )


def _refusal(reply: Message) -> tuple[str, str]:
    assert not reply.has_error(), reply.error
    assert messages.METRICS not in reply.content.metric_records
    refusal = messages.config_of(reply.content, messages.REFUSAL)
    return str(refusal[messages.REFUSAL_RULE]), str(refusal[messages.REFUSAL_REASON])


def _metrics(reply: Message) -> dict[str, float]:
    assert not reply.has_error(), reply.error
    assert messages.REFUSAL not in reply.content.config_records
    record = messages.metrics_of(reply.content)
    return {k: float(v) for k, v in record.items()}  # type: ignore[arg-type]


def test_evaluation_scores_only_models_trained_from_and_the_final_model_once(tables) -> None:
    node: Bank = bank(_run_config(tables), "bank_c")
    sent, crafted, other = node.model(seed=1), node.model(seed=99), node.model(seed=98)

    node.train(sent)
    trained_from = node.evaluate(sent)
    oracle = node.evaluate(crafted)
    final = node.evaluate(crafted, final=True)
    final_again = node.evaluate(crafted, final=True)
    another_final = node.evaluate(other, final=True)

    setup = node_setup(node.context)
    expected = evaluate_model(
        local_model(setup, sent),
        setup.data.x_val,
        setup.data.y_val,
        threshold=setup.settings.task.threshold,
        fpr=setup.settings.task.false_alarm_rate,
        cost_ratio=setup.settings.task.cost_ratio,
    )
    got = _metrics(trained_from)
    assert got[WEIGHT_KEY] == len(setup.data.y_val)
    assert got["auc"] == pytest.approx(expected["auc"])
    rule, reason = _refusal(oracle)
    assert rule == RULE_EVALUATION
    assert "only models it was sent to train from" in reason
    assert _metrics(final)["auc"] != got["auc"]  # the crafted model, scored once as final
    assert _refusal(final_again)[0] == RULE_EVALUATION
    assert "once per run" in _refusal(final_again)[1]
    assert _refusal(another_final)[0] == RULE_EVALUATION
    assert "one final model per run" in _refusal(another_final)[1]


def test_evaluation_off_or_too_few_rows_is_refused(tables, tmp_path) -> None:
    run_config = _with_policies(
        tables,
        tmp_path,
        bank_a=ReleaseRules(evaluation=False),
        bank_b=ReleaseRules(min_evaluation_rows=100_000),
    )
    replies = {}
    for name in ("bank_a", "bank_b"):
        node = bank(run_config, name)
        model = node.model(seed=1)
        node.train(model)
        replies[name] = (node.evaluate(model), node.evaluate(model, final=True))

    for name, fragment in (
        ("bank_a", "releases no evaluation metrics"),
        ("bank_b", "at least 100000 validation rows"),
    ):
        for reply in replies[name]:
            rule, reason = _refusal(reply)
            assert (rule, fragment in reason) == (RULE_EVALUATION, True), reason


def test_train_loss_is_sent_only_if_the_policy_allows(tables, tmp_path) -> None:
    run_config = _with_policies(tables, tmp_path, bank_a=ReleaseRules(train_loss=True))
    quiet, talkative = bank(run_config, "bank_b"), bank(run_config, "bank_a")

    withheld = _metrics(quiet.train(quiet.model(seed=1)))
    sent = _metrics(talkative.train(talkative.model(seed=1)))

    assert "train_loss" not in withheld and withheld[WEIGHT_KEY] > 0
    assert sent["train_loss"] > 0


def test_a_one_row_explanation_of_a_crafted_model_is_refused(tables, tmp_path) -> None:
    one_row = _with_policies(
        tables,
        tmp_path,
        "explain.max_rows=1",
        "explain.methods=[integrated_gradients]",
        bank_a=ReleaseRules(explanations=True),
    )
    node = bank(one_row, "bank_a")
    crafted = node.model(seed=5)

    rule, reason = _refusal(node.explain(crafted))

    assert rule == RULE_EXPLANATIONS
    assert "at least 200 explained rows" in reason
    assert messages.EXPLANATION not in node.explain(crafted).content.config_records
    off = bank(one_row, "bank_b")
    assert _refusal(off.explain(crafted)) == (
        RULE_EXPLANATIONS,
        "bank_b: policy rule `releases.explanations`: the bank releases no explanations",
    )


def test_explanations_and_risk_counts_only_of_the_final_model_once(tables) -> None:
    config = _run_config(tables, "explain.methods=[integrated_gradients]", "explain.ig_steps=4")
    node = bank(config, "bank_c")
    trained, final = node.model(seed=1), node.model(seed=2)
    node.train(trained)

    assert _metrics(node.evaluate(final, final=True))["auc"] > 0
    refused_explain = node.explain(trained)  # a model it trained from is not the final one
    explained = node.explain(final)
    explained_again = node.explain(final)
    refused_risk = node.risk(trained)
    risk = node.risk(final)
    risk_again = node.risk(final)

    assert _refusal(refused_explain)[0] == RULE_EXPLANATIONS
    assert messages.EXPLANATION in explained.content.config_records
    assert "once per run" in _refusal(explained_again)[1]
    assert _refusal(refused_risk)[0] == RULE_RISK
    assert _metrics(risk)["auc"] > 0
    assert "once per run" in _refusal(risk_again)[1]


def test_risk_counts_leave_out_small_groups_and_follow_the_policy(tables, tmp_path) -> None:
    probe = bank(_run_config(tables), "bank_a")
    setup = node_setup(probe.context)
    model = probe.model(seed=1)
    proba = predict_proba(local_model(setup, model), setup.data.x_val)
    attribute, values = next(iter(sorted(setup.data.groups_val.items())))
    full = group_counts(setup.data.y_val, proba, values, threshold=setup.settings.task.threshold)
    sizes = sorted(full.count)
    least = sizes[0] + 1  # the smallest group falls under the policy's least rows
    assert least <= sizes[-1]
    run_config = _with_policies(
        tables,
        tmp_path,
        bank_a=ReleaseRules(min_evaluation_rows=least),
        bank_b=ReleaseRules(risk_counts=False),
    )

    reply = bank(run_config, "bank_a").risk(model)
    refused = bank(run_config, "bank_b").risk(model)

    sent = counts_of(messages.config_of(reply.content, FAIRNESS), sorted(setup.data.groups_val))[
        attribute
    ]
    kept = [i for i, c in enumerate(full.count) if c >= least]
    assert sent.groups == tuple(full.groups[i] for i in kept)
    assert sent.count == tuple(full.count[i] for i in kept)
    assert sent.caught == tuple(full.caught[i] for i in kept)
    assert full.groups[int(np.argmin(full.count))] not in sent.groups
    assert _refusal(refused) == (
        RULE_RISK,
        "bank_b: policy rule `releases.risk_counts`: the bank releases no risk metrics or "
        "fairness counts",
    )
