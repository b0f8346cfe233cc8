"""``fedrisk server``: the coordinator's Flower SuperLink, with TLS and SuperNode auth.

Starts ``flower-superlink`` on the coordinator folder's certificate and key, with
SuperNode authentication on and its state in a database file, bound to 127.0.0.1 only,
then registers exactly the SuperNode public keys the manifest lists. The public
address (``--host``/``--port``) is served by `fedrisk.deploy.gateway`, which forwards
Flower's Fleet API and nothing else: the Control API (submit, stop and list runs,
register nodes) is reachable only from the coordinator's own machine. A SuperNode
whose key was not registered is refused by the SuperLink; a client without TLS cannot
connect.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

from fedrisk.deploy.command import ArgumentParser
from fedrisk.deploy.control import Control, ControlError
from fedrisk.deploy.folders import LISTENING_FILE, CoordinatorFolder, FolderError
from fedrisk.deploy.gateway import FleetGateway
from fedrisk.deploy.processes import Child, ChildFailed, echo_line, stop_requests
from fedrisk.deploy.provision import (
    FLEET_PORT,
    SUPERLINK_CERT_FILE,
    SUPERLINK_KEY_FILE,
    superlink_address,
)

PROG = "fedrisk server"
STATE_FILE = "state.db"
LOG_FILE = "superlink.log"
#: Requests the public port refused (anything but the Fleet API), one line each.
GATEWAY_LOG_FILE = "refused.log"
READY_TIMEOUT_S = 120.0
EXIT_USAGE = 2
EXIT_FAILED = 1
_READY = r"Uvicorn running on https://"
_UNFINISHED = ("pending", "starting", "running")

#: The SuperLink itself (Fleet, Control and Runtime APIs) listens here only.
LOOPBACK = "127.0.0.1"

USAGE = (
    "fedrisk server --consortium DIR/coordinator [--host 0.0.0.0] [--port 8000] "
    "[--control-port P] [--fresh]\n"
    "    start the SuperLink with TLS and SuperNode authentication, register the banks "
    "of the manifest, serve only the Fleet API on HOST:PORT and the Control API on "
    "127.0.0.1:P"
)


def flower_environment(flwr_home: Path) -> dict[str, str]:
    """Return the environment of a Flower process started by fedrisk.

    Flower's home (installed app bundles, credentials) is a folder of the party's
    own; app bundles' dependencies are not installed at run time (fedrisk is); this
    interpreter's scripts folder comes first on ``PATH``.
    """
    env = dict(os.environ)
    # Flower starts its helpers (flower-superexec, flwr-serverapp, flwr-clientapp) by
    # name: find them beside this interpreter first, as in a virtual environment.
    scripts = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([scripts, env.get("PATH", "")])
    env["FLWR_HOME"] = str(flwr_home)
    env["FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION"] = "1"
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def superlink_argv(folder: CoordinatorFolder, *, host: str, port: int, database: Path) -> list[str]:
    """Return the ``flower-superlink`` command for a coordinator folder."""
    return [
        "flower-superlink",
        "--ssl-ca-certfile", str(folder.ca_cert),
        "--ssl-certfile", str(folder.path / SUPERLINK_CERT_FILE),
        "--ssl-keyfile", str(folder.path / SUPERLINK_KEY_FILE),
        "--enable-supernode-auth",
        "--host", host,
        "--port", str(port),
        "--database", str(database),
    ]  # fmt: skip


def server_command(argv: Sequence[str]) -> int:
    """Run ``fedrisk server``; return the exit code.

    Returns
    -------
    int
        0 after a clean stop (Ctrl-C or SIGTERM); 1 if the SuperLink failed or
        exited on its own; 2 for an unusable folder, option or port.
    """
    args = _parser().parse_or_exit_code(argv)
    if isinstance(args, int):
        return args
    try:
        folder = CoordinatorFolder.open(Path(args.consortium))
    except FolderError as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return EXIT_USAGE
    if not _port_free(args.host, args.port):
        print(
            f"{PROG}: port {args.port} on {args.host} is in use (another SuperLink?); "
            "stop it or choose --port",
            file=sys.stderr,
        )
        return EXIT_USAGE
    runtime = folder.runtime
    runtime.mkdir(parents=True, exist_ok=True, mode=0o700)
    database = runtime / STATE_FILE
    if args.fresh and database.exists():
        database.unlink()
    resumed = database.exists()
    control_port = args.control_port or _free_port()
    address = superlink_address(LOOPBACK, control_port)
    gateway = FleetGateway(
        host=args.host,
        port=args.port,
        upstream=address,
        certfile=folder.path / SUPERLINK_CERT_FILE,
        keyfile=folder.path / SUPERLINK_KEY_FILE,
        ca_cert=folder.ca_cert,
        refused=_log_refusal(runtime / GATEWAY_LOG_FILE),
    )
    with stop_requests() as stopping:
        link = Child(
            "SuperLink",
            superlink_argv(folder, host=LOOPBACK, port=control_port, database=database),
            log=runtime / LOG_FILE,
            env=flower_environment(runtime / "flwr-home"),
            echo=_echo_problems if not args.verbose else partial(echo_line, "SuperLink"),
            own_group=False,
        )
        try:
            link.wait_for(_READY, timeout=READY_TIMEOUT_S)
            registered = _register(folder, address, runtime)
            gateway.start()
        except (ChildFailed, ControlError, OSError) as err:
            link.stop()
            print(f"{PROG}: {err}", file=sys.stderr)
            return EXIT_FAILED
        (runtime / LISTENING_FILE).write_text(address + "\n", encoding="utf-8")
        _announce(folder, args.host, args.port, address, registered, resumed, link.log)
        if resumed:
            _report_interrupted_runs(folder, address, runtime)
        while link.running() and not stopping.is_set():
            stopping.wait(0.5)
        stopped_by_user = stopping.is_set()
        gateway.stop()
        code = link.stop()
        (runtime / LISTENING_FILE).unlink(missing_ok=True)
    if stopped_by_user:
        print(f"{PROG}: SuperLink stopped; its state is kept in {database}")
        return 0
    print(
        f"{PROG}: the SuperLink exited on its own (code {code}); last output:\n"
        f"{link.tail()}\n(log: {link.log})",
        file=sys.stderr,
    )
    return EXIT_FAILED


def _register(folder: CoordinatorFolder, address: str, runtime: Path) -> dict[str, bool]:
    """Register every manifest bank's SuperNode key; True where newly registered."""
    done: dict[str, bool] = {}
    with Control(address, root_certificates=folder.ca_cert, flwr_home=runtime / "cli") as link:
        for record in folder.manifest.institutions:
            key = folder.node_public_key(record.name)  # from the manifest, as the bank made it
            done[record.name] = link.register_node(key, name=record.name)
    return done


def _report_interrupted_runs(folder: CoordinatorFolder, address: str, runtime: Path) -> None:
    """Stop, and say so, any run the previous SuperLink left unfinished.

    fedrisk's ServerApp ran inside the SuperLink that stopped, so the run's round
    loop is gone: Flower cannot continue it, and a node waiting on it would wait for
    nothing. The run is marked stopped; ``fedrisk run … resume=RUN_DIR`` continues it
    from its run directory's last checkpoint as a new Flower run.
    """
    try:
        with Control(address, root_certificates=folder.ca_cert, flwr_home=runtime / "cli") as link:
            for run_id in link.runs():
                state = link.state(run_id)
                if state.status in _UNFINISHED:
                    link.stop(run_id)
                    print(
                        f"{PROG}: run {run_id} was interrupted when the SuperLink stopped; "
                        "it is marked stopped. Continue it from its last checkpoint with "
                        "`fedrisk run --consortium … --test … resume=RUN_DIR` (its run "
                        "directory), or start a new run."
                    )
    except ControlError as err:
        print(f"{PROG}: could not check for interrupted runs: {err}", file=sys.stderr)


def _announce(
    folder: CoordinatorFolder,
    host: str,
    port: int,
    control: str,
    registered: dict[str, bool],
    resumed: bool,
    log: Path,
) -> None:
    state = "previous state" if resumed else "new state"
    new = [name for name, fresh in registered.items() if fresh]
    kept = [name for name, fresh in registered.items() if not fresh]
    print(
        f"{PROG}: SuperLink of consortium {folder.manifest.name!r} listening on "
        f"https://{host}:{port} for SuperNodes (Fleet API only; TLS with "
        f"{SUPERLINK_CERT_FILE}; SuperNode authentication on; {state} in "
        f"{folder.runtime / STATE_FILE}); Control API on https://{control} (this "
        "machine only)"
    )
    if new:
        print(f"{PROG}: registered the SuperNode keys of {', '.join(new)}")
    if kept:
        print(f"{PROG}: already registered: {', '.join(kept)}")
    print(f"{PROG}: log {log}; Ctrl-C stops the SuperLink", flush=True)


def _free_port() -> int:
    """Return a free TCP port on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def _log_refusal(log: Path) -> Callable[[str], None]:
    """Return a callback appending each refused gateway request to ``log``."""

    def refused(line: str) -> None:
        with log.open("a", encoding="utf-8") as out:
            out.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {line}\n")

    return refused


def _port_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _echo_problems(line: str) -> None:
    if "already in use" in line:  # a re-registration after a restart: reported above
        return
    if "No SuperNode found with the given public key" in line:
        print("  [SuperLink] refused a SuperNode whose key is not registered", file=sys.stderr)
        return
    echo_line("SuperLink", line, problems_only=True)


def _parser() -> ArgumentParser:
    parser = ArgumentParser(prog=PROG, description=USAGE)
    parser.add_argument("--consortium", required=True, help="the coordinator folder")
    parser.add_argument("--host", default="0.0.0.0", help="interface to listen on (0.0.0.0)")
    parser.add_argument(
        "--port", type=int, default=FLEET_PORT, help=f"HTTPS port for SuperNodes ({FLEET_PORT})"
    )
    parser.add_argument(
        "--control-port",
        type=int,
        default=0,
        help="loopback port of the Control API (default: a free one, see superlink/listening.txt)",
    )
    parser.add_argument(
        "--fresh", action="store_true", help="discard the previous state (registrations, runs)"
    )
    parser.add_argument("--verbose", action="store_true", help="show Flower's own log lines")
    return parser
