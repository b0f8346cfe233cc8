"""The public port forwards Flower's Fleet API calls and nothing else."""

from __future__ import annotations

import pytest

from fedrisk.deploy.gateway import is_fleet_request


@pytest.mark.parametrize(
    "path", [b"/v1/fleet/pull-messages", b"/v1/fleet/push-object", b"/v1/fleet/activate-node"]
)
def test_fleet_calls_are_forwarded(path: bytes) -> None:
    assert is_fleet_request("POST", path, b"")


@pytest.mark.parametrize(
    ("method", "path", "query"),
    [
        ("POST", b"/v1/control/list-runs", b""),
        ("POST", b"/v1/control/register-node", b""),
        ("POST", b"/v1/runtime/pull-messages", b""),
        ("POST", b"/v1/fleet/../control/list-runs", b""),
        ("POST", b"/v1/fleet/%2e%2e/control/list-runs", b""),
        ("POST", b"/v1/fleet//control", b""),
        ("POST", b"/v1/fleet/pull-messages", b"x=1"),
        ("GET", b"/v1/fleet/pull-messages", b""),
        ("GET", b"/docs", b""),
    ],
)
def test_everything_else_is_refused(method: str, path: bytes, query: bytes) -> None:
    assert not is_fleet_request(method, path, query)
