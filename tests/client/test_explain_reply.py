"""A bank's explanation reply: what it sends, and when it refuses."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord, RecordDict

from fedrisk.client.explain_reply import ExplainRefused, explanation_record
from fedrisk.client.node_data import NodeData
from fedrisk.client.node_setup import NodeSetup
from fedrisk.client.policy import simulated_policy
from fedrisk.conf.root import FedriskConfig
from fedrisk.data.borrowers import draw_borrowers
from fedrisk.data.default_risk import default_probability
from fedrisk.data.encoding import TableEncoder
from fedrisk.models.tabular import build_model
from fedrisk.simulations.consortium import resolve_schema
from fedrisk.simulations.entry import check_overrides
from fedrisk.strategies import messages


def setup_for(*overrides: str, rows: int = 120) -> NodeSetup:
    settings: FedriskConfig = resolve_schema(check_overrides(["consortium=banks_3", *overrides]))
    rng = np.random.default_rng(0)
    table = draw_borrowers(rng, n_rows=rows, segment_mix=(0.5, 0.3, 0.2), covariate_shift=0.0)
    y = (rng.random(rows) < default_probability(table)).astype(np.float32)
    assert settings.task.schema is not None
    encoder = TableEncoder(settings.task.schema)
    x = encoder.encode(table)
    data = NodeData("bank_a", x[:0], y[:0], x, y, encoder.feature_names, "00" * 32)
    return NodeSetup(settings, "bank_a", data, simulated_policy(settings, "bank_a"))


def request(setup: NodeSetup, baseline: list[float] | None = None) -> RecordDict:
    width = setup.data.x_val.shape[1]
    model = build_model(setup.settings.task.model, width, seed=2)
    return RecordDict(
        {
            messages.ARRAYS: ArrayRecord(model.state_dict()),
            messages.CONFIG: ConfigRecord(
                {messages.EXPLAIN_BASELINE: baseline if baseline is not None else [0.0] * width}
            ),
        }
    )


def test_reply_carries_sums_over_a_seeded_sample_of_at_most_max_rows() -> None:
    setup = setup_for("explain.max_rows=50", "explain.repeats=1", "explain.ig_steps=4")

    first = explanation_record(setup, request(setup))
    again = explanation_record(setup, request(setup))

    assert first[messages.EXPLAIN_ROWS] == 50
    assert len(first[messages.EXPLAIN_FEATURES]) == 17
    assert first["permutation"] == again["permutation"]
    assert len(first["integrated_gradients"]) == 17


def test_under_secure_aggregation_the_reply_hides_the_row_count() -> None:
    plain = setup_for("explain.methods=[integrated_gradients]", "explain.ig_steps=4")
    secure = setup_for(
        "secagg=secaggplus",
        "explain.enabled=true",
        "explain.methods=[integrated_gradients]",
        "explain.ig_steps=4",
    )

    sums = explanation_record(plain, request(plain))
    means = explanation_record(secure, request(secure))

    assert means[messages.EXPLAIN_ROWS] == 1
    np.testing.assert_allclose(
        means["integrated_gradients"], np.asarray(sums["integrated_gradients"]) / 120
    )


def test_refusals_say_why() -> None:
    off = setup_for("explain.enabled=false")
    with pytest.raises(ExplainRefused, match=r"`explain.enabled` is false"):
        explanation_record(off, request(off))

    setup = setup_for()
    windows = dataclasses.replace(setup.data, x_val=setup.data.x_val[:, :, None])
    with pytest.raises(ExplainRefused, match="tabular models only"):
        explanation_record(dataclasses.replace(setup, data=windows), request(setup))

    with pytest.raises(
        messages.MalformedMessage,
        match=r"`baseline` must be a list of 34 numbers; got \[0.0, 1.0\]",
    ):
        explanation_record(setup, request(setup, baseline=[0.0, 1.0]))
