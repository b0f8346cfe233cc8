"""query.explain end to end without Ray: the banks' real reply code, the coordinator's pooling."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from answering_grid import AnsweringGrid
from flwr.app import ArrayRecord, ConfigRecord, Message, RecordDict

from fedrisk.client.explain_reply import ExplainRefused, explanation_record
from fedrisk.client.node_data import NodeData
from fedrisk.client.node_setup import NodeSetup
from fedrisk.client.policy import simulated_policy
from fedrisk.conf.root import FedriskConfig
from fedrisk.data.borrowers import draw_borrowers
from fedrisk.data.default_risk import default_probability
from fedrisk.data.encoding import TableEncoder
from fedrisk.models.tabular import build_model
from fedrisk.server.explanations import PLOT_FILE, explain_final_model
from fedrisk.simulations.consortium import resolve_schema
from fedrisk.simulations.entry import check_overrides
from fedrisk.strategies import messages

NAMES = ("bank_a", "bank_b", "bank_c")
NODE_OF = {name: 200 + i for i, name in enumerate(NAMES)}
ROWS = {"bank_a": 90, "bank_b": 40, "bank_c": 25}


def settings_for(*overrides: str) -> FedriskConfig:
    return resolve_schema(check_overrides(["consortium=banks_3", *overrides]))


def bank_data(settings: FedriskConfig, name: str, seed: int) -> NodeData:
    rng = np.random.default_rng(seed)
    table = draw_borrowers(rng, n_rows=ROWS[name], segment_mix=(0.5, 0.3, 0.2), covariate_shift=0.0)
    y = (rng.random(len(table)) < default_probability(table)).astype(np.float32)
    assert settings.task.schema is not None
    encoder = TableEncoder(settings.task.schema)
    x = encoder.encode(table)
    return NodeData(name, x[:0], y[:0], x, y, encoder.feature_names, "00" * 32)


class BankGrid(AnsweringGrid):
    """Every node answers with the real ClientApp reply code on its own rows."""

    def __init__(self, setups: dict[int, NodeSetup], tamper: str | None = None) -> None:
        super().__init__()
        self.setups = setups
        self.tamper = tamper

    def answer(self, message: Message) -> Message:
        setup = self.setups[message.metadata.dst_node_id]
        record = explanation_record(setup, message.content)
        if setup.institution == self.tamper:
            record[messages.EXPLAIN_FEATURES] = ["income"]
        return Message(content=RecordDict({messages.EXPLANATION: record}), reply_to=message)


def run(settings: FedriskConfig, tmp_path: Path, tamper: str | None = None):
    setups = {
        NODE_OF[name]: NodeSetup(
            settings, name, bank_data(settings, name, seed), simulated_policy(settings, name)
        )
        for seed, name in enumerate(NAMES)
    }
    width = setups[NODE_OF["bank_a"]].data.x_val.shape[1]
    arrays = ArrayRecord(build_model(settings.task.model, width, seed=1).state_dict())
    held_out = bank_data(settings, "bank_a", 99).x_val
    grid = BankGrid(setups, tamper)
    record = explain_final_model(
        grid, settings, NODE_OF, arrays, held_out_x=held_out, run_dir=tmp_path
    )
    return record, grid, held_out


def test_plain_run_pools_row_weighted_means_and_keeps_per_bank_values(tmp_path: Path) -> None:
    settings = settings_for("explain.repeats=1", "explain.ig_steps=8")

    record, grid, held_out = run(settings, tmp_path)

    baseline = grid.sent[0].content.config_records[messages.CONFIG][messages.EXPLAIN_BASELINE]
    np.testing.assert_allclose(baseline, held_out.astype(np.float64).mean(axis=0))
    assert record["rows"] == ROWS
    assert record["banks"] == list(NAMES)
    assert record["warning"] is None and record["failures"] == {}
    per_bank = record["per_bank"]
    for method in ("permutation", "integrated_gradients"):
        pooled = record[method]
        assert len(pooled) == 17  # the credit schema's columns, one-hot levels grouped
        for feature, value in pooled.items():
            weighted = sum(ROWS[b] * per_bank[b][method][feature] for b in NAMES) / sum(
                ROWS.values()
            )
            assert value == pytest.approx(weighted, rel=1e-12, abs=1e-15)
    assert max(record["integrated_gradients"].values()) > 0
    assert (tmp_path / PLOT_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    json.dumps(record)  # it goes into summary.json as is


def test_secure_aggregation_opt_in_weighs_banks_equally_and_warns(tmp_path: Path) -> None:
    settings = settings_for(
        "secagg=secaggplus", "explain.enabled=true", "explain.methods=[permutation]"
    )

    record, grid, _ = run(settings, tmp_path)

    assert record["rows"] is None and record["per_bank"] is None
    assert "sent outside the secure-aggregation masked sum" in record["warning"]
    assert "DP-SGD" not in record["warning"]  # this run has no DP: the warning says so
    setups = grid.setups
    means = [
        np.asarray(explanation_record(s, grid.sent[0].content)["permutation"])
        for s in setups.values()
    ]
    np.testing.assert_allclose(list(record["permutation"].values()), np.mean(means, axis=0))
    assert "integrated_gradients" not in record


def test_privacy_on_skips_explanations_unless_opted_in(tmp_path: Path) -> None:
    settings = settings_for("privacy=dpsgd")

    record, grid, _ = run_skipped(settings, tmp_path)

    assert "privacy=dpsgd" in record["skipped"] and "explain.enabled=true" in record["skipped"]
    assert grid.sent == []  # nothing was asked of the banks
    setup = NodeSetup(
        settings, "bank_a", bank_data(settings, "bank_a", 0), simulated_policy(settings, "bank_a")
    )
    with pytest.raises(ExplainRefused, match="privacy mechanism is on"):
        explanation_record(setup, RecordDict({messages.CONFIG: ConfigRecord()}))


def run_skipped(settings: FedriskConfig, tmp_path: Path):
    grid = BankGrid({})
    record = explain_final_model(
        grid, settings, NODE_OF, ArrayRecord(), held_out_x=np.zeros((2, 3)), run_dir=tmp_path
    )
    return record, grid, None


def test_a_reply_for_other_features_is_left_out_and_named(tmp_path: Path) -> None:
    settings = settings_for("explain.repeats=1", "explain.ig_steps=4")

    record, _, _ = run(settings, tmp_path, tamper="bank_b")

    assert record["banks"] == ["bank_a", "bank_c"]
    assert set(record["failures"]) == {"bank_b"}
    assert record["failures"]["bank_b"].startswith("bank_b's explanation must cover the features")
    assert set(record["rows"]) == {"bank_a", "bank_c"}


class RefusingGrid(BankGrid):
    """bank_c's node declines, as a node whose configuration forbids explanations does."""

    def send_and_receive(self, messages_, *, timeout=None):
        replies = list(super().send_and_receive(messages_, timeout=timeout))
        for reply in replies:
            if reply.metadata.src_node_id == NODE_OF["bank_c"]:
                reply.content = RecordDict(
                    {messages.REFUSAL: ConfigRecord({messages.REFUSAL_REASON: "not here"})}
                )
        return replies


def test_a_refusal_is_recorded_with_its_reason_and_off_means_off(tmp_path: Path) -> None:
    settings = settings_for("explain.repeats=1", "explain.ig_steps=4")
    setups = {
        NODE_OF[name]: NodeSetup(
            settings, name, bank_data(settings, name, seed), simulated_policy(settings, name)
        )
        for seed, name in enumerate(NAMES)
    }
    width = setups[NODE_OF["bank_a"]].data.x_val.shape[1]
    arrays = ArrayRecord(build_model(settings.task.model, width, seed=1).state_dict())
    held_out = np.zeros((4, width), dtype=np.float32)

    record = explain_final_model(
        RefusingGrid(setups), settings, NODE_OF, arrays, held_out_x=held_out, run_dir=tmp_path
    )
    off = explain_final_model(
        BankGrid({}),
        settings_for("explain.enabled=false"),
        NODE_OF,
        arrays,
        held_out_x=held_out,
        run_dir=tmp_path,
    )

    assert record["failures"] == {"bank_c": "bank_c declined: not here"}
    assert record["banks"] == ["bank_a", "bank_b"]
    assert off == {"skipped": "explain.enabled is false"}
