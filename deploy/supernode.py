"""``fedrisk node``: one bank's Flower SuperNode, with TLS and its authentication key.

Before anything connects, the bank's table is validated with the loader a ClientApp
uses (same errors as in simulation); a table that fails does not join, and the reason
is printed here, at the bank, only. The SuperNode then dials the SuperLink over TLS
(verified against the consortium CA) and authenticates with the bank's SuperNode key.
The data path goes into the SuperNode's node config, which stays on this machine.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import sys
import threading
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path

from fedrisk.client.node_data import NodeData, load_node_data
from fedrisk.client.policy import POLICY_FILE, load_policy
from fedrisk.data.errors import DataValidationError
from fedrisk.data.schema import TableSchema
from fedrisk.data.schema_file import read_schema
from fedrisk.data.synthetic import credit_schema
from fedrisk.deploy.command import ArgumentParser
from fedrisk.deploy.folders import BankFolder, FolderError
from fedrisk.deploy.processes import Child, ChildFailed, echo_line, stop_requests
from fedrisk.deploy.superlink import flower_environment
from fedrisk.models.spec import TrainSpec
from fedrisk.strategies import messages

PROG = "fedrisk node"
LOG_FILE = "supernode.log"
CONNECT_TIMEOUT_S = 120.0
#: Present while a SuperNode of this folder runs; left behind when it was killed.
RUNNING_FILE = "running"
#: Flower counts a silent SuperNode online for two 30 s heartbeats (HEARTBEAT_PATIENCE).
RESTART_PATIENCE_S = 100.0
REGISTRATION_PATIENCE_S = 20.0
CONNECT_PATIENCE_S = 300.0
RETRY_S = 5.0
EXIT_USAGE = 2
EXIT_FAILED = 1
_CONNECTED = r"SuperNode ID: \d+"
_RECEIVED = re.compile(r"Receiving: (\S+) message")
_GAVE_UP = r"Failed to activate SuperNode|Exit Code: \d+"
_REFUSED = ("Failed to activate SuperNode", "code: 2004", "Invalid SuperNode authentication")

USAGE = (
    "fedrisk node --consortium DIR/BANK --data FILE [--schema FILE] [--superlink HOST:PORT]\n"
    "    validate the bank's table, then start its SuperNode (TLS, SuperNode "
    "authentication); Ctrl-C stops it"
)


def node_config(bank: BankFolder, data: Path, schema: Path | None = None) -> str:
    """Return the SuperNode's ``--node-config``: who it is, its data, keys, manifest, policy.

    ``schema`` (``fedrisk node --schema``) is the bank's own schema file, used when its
    policy names none: a run's schema must then hold the same columns.

    Raises
    ------
    FolderError
        If a path holds a double quote (Flower's node-config syntax cannot carry it).
    """
    values = {
        messages.NODE_INSTITUTION: bank.institution,
        messages.NODE_DATA_PATH: str(data.resolve()),
        messages.NODE_STATE_DIR: str(bank.path),
        messages.NODE_MANIFEST: str(bank.manifest_file),
        messages.NODE_POLICY: str(bank.path / POLICY_FILE),
    }
    if schema is not None:
        values[messages.NODE_SCHEMA] = str(schema.resolve())
    for key, value in values.items():
        if '"' in value:
            raise FolderError(f"`{key}` must not contain a double quote; got {value!r}")
    return " ".join(f'{key}="{value}"' for key, value in values.items())


def supernode_argv(
    bank: BankFolder, *, superlink: str, data: Path, runtime_port: int, schema: Path | None = None
) -> list[str]:
    """Return the ``flower-supernode`` command for a bank folder."""
    return [
        "flower-supernode",
        "--superlink", superlink,
        "--root-certificates", str(bank.ca_cert),
        "--auth-supernode-private-key", str(bank.auth_key),
        "--host", "127.0.0.1",
        "--port", str(runtime_port),
        "--node-config", node_config(bank, data, schema),
    ]  # fmt: skip


def validate_data(bank: BankFolder, data: Path, schema: TableSchema) -> NodeData:
    """Load and validate the bank's table as its ClientApp will.

    Raises
    ------
    fedrisk.data.errors.DataValidationError
        Naming the file, column and row that fail.
    """
    return load_node_data(
        data,
        schema,
        institution=bank.institution,
        min_rows=TrainSpec().batch_size,
        seed=0,
    )


def node_command(argv: Sequence[str]) -> int:
    """Run ``fedrisk node``; return the exit code.

    Returns
    -------
    int
        0 after a clean stop (Ctrl-C or SIGTERM); 1 if the SuperNode could not
        connect, was refused or exited; 2 for an unusable folder, option, schema or
        data file.
    """
    args = _parser().parse_or_exit_code(argv)
    if isinstance(args, int):
        return args
    data = Path(args.data)
    try:
        bank = BankFolder.open(Path(args.consortium))
        load_policy(bank.path / POLICY_FILE)  # the node answers nothing without one
        schema = read_schema(args.schema) if args.schema else credit_schema()
        table = validate_data(bank, data, schema)
        argv_flower = supernode_argv(
            bank,
            superlink=args.superlink or bank.default_address(),
            data=data,
            runtime_port=_free_port(),
            schema=Path(args.schema) if args.schema else None,
        )
    except DataValidationError as err:
        print(f"{PROG}: {_institution(args)} does not join: {err}", file=sys.stderr)
        return EXIT_USAGE
    except (FolderError, ValueError, OSError) as err:
        print(f"{PROG}: {' '.join(str(err).split())}", file=sys.stderr)
        return EXIT_USAGE
    superlink = args.superlink or bank.default_address()
    print(
        f"{PROG}: {bank.institution}: {data} validated ({table.n_train:,} training and "
        f"{len(table.y_val):,} validation rows, fingerprint {table.fingerprint[:12]}…)"
    )
    bank.runtime.mkdir(parents=True, exist_ok=True, mode=0o700)
    running = bank.runtime / RUNNING_FILE
    with stop_requests() as stopping:
        try:
            node, line = _connect(bank, argv_flower, verbose=args.verbose, stopping=stopping)
        except ChildFailed as err:
            print(f"{PROG}: {_why_not_connected(str(err), superlink)}", file=sys.stderr)
            return EXIT_FAILED
        running.write_text(f"{os.getpid()}\n", encoding="utf-8")
        print(
            f"{PROG}: {bank.institution}'s SuperNode connected to {superlink} over TLS, "
            f"authenticated as node {line.rsplit(' ', 1)[-1]}; waiting for runs "
            f"(log {node.log}; Ctrl-C stops it)",
            flush=True,
        )
        while node.running() and not stopping.is_set():
            stopping.wait(0.5)
        stopped_by_user = stopping.is_set()
        code = node.stop()
        running.unlink(missing_ok=True)
    if stopped_by_user:
        print(f"{PROG}: {bank.institution}'s SuperNode stopped")
        return 0
    print(
        f"{PROG}: {bank.institution}'s SuperNode exited (code {code}); "
        f"{_why_not_connected(node.tail(), superlink)}",
        file=sys.stderr,
    )
    return EXIT_FAILED


def _connect(
    bank: BankFolder, argv: list[str], *, verbose: bool, stopping: threading.Event
) -> tuple[Child, str]:
    """Start the SuperNode until it is connected; return it and its "SuperNode ID" line.

    A SuperNode that was killed (its ``running`` marker is still there) stays online
    at the SuperLink until two of its heartbeats are missed, and until then its key
    is refused; so after a crash a refusal is retried for ``RESTART_PATIENCE_S``.
    Otherwise a refusal is retried for ``REGISTRATION_PATIENCE_S`` (a SuperLink that
    has just started registers the keys a moment later), and an unreachable SuperLink
    for ``CONNECT_PATIENCE_S`` (a node may start before the coordinator).

    Raises
    ------
    ChildFailed
        If Flower's SuperNode exits or gives up, quoting its last lines.
    """
    crashed = (bank.runtime / RUNNING_FILE).exists()
    started = time.monotonic()
    while True:
        node = Child(
            f"{bank.institution}'s SuperNode",
            argv,
            log=bank.runtime / LOG_FILE,
            env=flower_environment(bank.runtime / "flwr-home"),
            echo=partial(echo_line, "SuperNode") if verbose else _echo_progress,
            own_group=False,
        )
        try:
            line = node.wait_for(f"{_CONNECTED}|{_GAVE_UP}", timeout=CONNECT_TIMEOUT_S)
            if not re.search(_GAVE_UP, line):
                return node, line
            time.sleep(1.0)  # let Flower print its reason
            failure = ChildFailed(f"{node.name} gave up; last output:\n{node.tail(12)}")
        except ChildFailed as err:
            failure = err
        node.stop()
        refused = any(marker in str(failure) for marker in _REFUSED)
        if refused and crashed:
            patience, why = (
                RESTART_PATIENCE_S,
                (
                    f"the SuperLink still counts {bank.institution}'s previous SuperNode as "
                    "online (it stopped without signing off)"
                ),
            )
        elif refused:
            patience, why = REGISTRATION_PATIENCE_S, "the SuperLink refused this key so far"
        else:
            patience, why = CONNECT_PATIENCE_S, "the SuperLink is not reachable yet"
        if time.monotonic() - started > patience or stopping.is_set():
            raise failure
        print(f"{PROG}: {why}; retrying in {RETRY_S:g} s", flush=True)
        stopping.wait(RETRY_S)


def _why_not_connected(output: str, superlink: str) -> str:
    """Name the likely cause of a failed connection, then Flower's last lines."""
    if any(marker in output for marker in _REFUSED):
        return (
            f"the SuperLink at {superlink} refused this SuperNode's key (it is not "
            f"registered: is it in the coordinator's manifest?)\n{output}"
        )
    if "CERTIFICATE_VERIFY_FAILED" in output or "certificate verify failed" in output:
        return (
            f"the SuperLink at {superlink} did not present the consortium's certificate\n{output}"
        )
    return f"could not connect to the SuperLink at {superlink}\n{output}"


def _institution(args: argparse.Namespace) -> str:
    try:
        return BankFolder.open(Path(args.consortium)).institution
    except FolderError:
        return "this bank"


def _free_port() -> int:
    """Return a free TCP port on 127.0.0.1 for the SuperNode's local Runtime API."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _echo_progress(line: str) -> None:
    received = _RECEIVED.search(line)
    if received:
        print(f"  received {received.group(1)}", flush=True)
    else:
        echo_line("SuperNode", line, problems_only=True)


def _parser() -> ArgumentParser:
    parser = ArgumentParser(prog=PROG, description=USAGE)
    parser.add_argument("--consortium", required=True, help="this bank's folder")
    parser.add_argument("--data", required=True, help="the bank's CSV or Parquet table")
    parser.add_argument(
        "--schema", default=None, help="schema file (default: the credit_default task's)"
    )
    parser.add_argument(
        "--superlink", default=None, help="HOST:PORT (default: written at provisioning)"
    )
    parser.add_argument("--verbose", action="store_true", help="show Flower's own log lines")
    return parser
