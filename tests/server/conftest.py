"""Coordinator tests build Flower messages outside a running ServerApp."""

import pytest
from flwr.supercore.task_identity import TaskIdentity


@pytest.fixture(autouse=True)
def _server_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Messages take their run and task ids from the running task, as in a ServerApp."""
    for attribute in ("_run_id", "_node_id", "_task_id"):
        monkeypatch.setattr(TaskIdentity, attribute, 1)
