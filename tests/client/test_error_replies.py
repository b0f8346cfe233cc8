"""A node's error reply names a code and what to do; the value and the path stay in its log.

Flower turns an exception raised in a ClientApp into an error reply carrying its text,
and a data error's text quotes the offending cell and the table's path. The bank's real
ClientApp is handed a real message for a table with a bad cell, in a folder whose name
the test can recognise.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pandas as pd
import pytest
from flwr.common.constant import ErrorCode
from release_node import bank, run_config_for

from fedrisk.client.error_replies import ErrorKind, error_reason
from fedrisk.client.policy import PolicyError
from fedrisk.client.policy_rules import PolicyRefusal
from fedrisk.strategies import messages

SECRET_VALUE = "7731-CUSTOMER-4242"
FOLDER = "bank-a-private-share-QZX"


@pytest.fixture(autouse=True)
def _server_process(monkeypatch: pytest.MonkeyPatch) -> None:
    from flwr.supercore.task_identity import TaskIdentity

    for attribute in ("_run_id", "_node_id", "_task_id"):
        monkeypatch.setattr(TaskIdentity, attribute, 1)


def test_a_bad_cell_reaches_the_node_log_and_only_a_code_reaches_the_coordinator(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run_config = run_config_for(tmp_path)
    private = tmp_path / FOLDER
    shutil.copytree(run_config[messages.DATA_DIR], private)
    table_path = private / "bank_a" / "train.parquet"
    table = pd.read_parquet(table_path)
    column = next(c for c in table.columns if pd.api.types.is_float_dtype(table[c]))
    table[column] = table[column].astype(str)
    table.loc[table.index[3], column] = SECRET_VALUE
    table.to_parquet(table_path)
    run_config = {**run_config, messages.DATA_DIR: str(private)}
    node = bank(run_config, "bank_b")  # a healthy bank (probes the table width)
    node.context.node_config[messages.PARTITION_ID] = 0  # now play bank_a

    with caplog.at_level(logging.ERROR, logger="fedrisk.client.error_replies"):
        reply = node.train(node.model(seed=1))

    assert reply.has_error()
    assert reply.error.code == ErrorCode.CLIENT_APP_RAISED_EXCEPTION
    reason = reply.error.reason or ""
    assert reason.startswith("fedrisk node error [data-validation]: the bank's table failed")
    assert SECRET_VALUE not in reason and FOLDER not in reason and str(tmp_path) not in reason
    assert messages.error_summary(reason) == reason  # one line, read as is by the coordinator
    logged = caplog.text
    assert SECRET_VALUE in logged and str(table_path) in logged and "[data-validation]" in logged


def test_each_kind_of_failure_gets_its_code_and_only_coordinator_facing_text() -> None:
    path = "/srv/bank-a-private-share-QZX/policy.yaml"

    cases = {
        PolicyError(f"{path}: `releases.min_evaluation_rows` must be at least 1; got 0"): (
            ErrorKind.policy_file,
            "the bank's policy file is missing or invalid",
        ),
        PolicyRefusal("releases.evaluation", "the bank releases no evaluation metrics"): (
            ErrorKind.policy,
            "policy rule `releases.evaluation`: the bank releases no evaluation metrics",
        ),
        messages.MalformedMessage("message must carry an ArrayRecord `arrays`; got []"): (
            ErrorKind.message,
            "message must carry an ArrayRecord `arrays`; got []",
        ),
        KeyError(f"{path} {SECRET_VALUE}"): (ErrorKind.internal, "the node failed unexpectedly"),
    }

    for err, (kind, text) in cases.items():
        got_kind, reason = error_reason(err)
        assert got_kind is kind
        assert reason.startswith(f"fedrisk node error [{kind.value}]: {text}")
        assert path not in reason and SECRET_VALUE not in reason
