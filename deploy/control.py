"""The coordinator's calls to the SuperLink's Control API, through Flower's own client.

``fedrisk server`` registers the manifest's SuperNode keys; ``fedrisk run`` submits a
Flower App Bundle, follows the run's status and logs, and stops it on Ctrl-C. Each
call goes over TLS to the SuperLink's HTTPS port, verified against the consortium CA.
Flower's error messages are kept, on one line, in :class:`ControlError`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

#: How a finished run ended (Flower's ``SubStatus``) or that it has not ended.
FINISHED = "finished"


class ControlError(RuntimeError):
    """A Control API call failed; the message is Flower's reason on one line."""


@dataclass(frozen=True)
class RunState:
    """A run's state as the SuperLink reports it.

    Attributes
    ----------
    status : str
        ``pending``, ``starting``, ``running`` or ``finished``.
    sub_status : str
        For a finished run: ``completed``, ``failed`` or ``stopped``.
    details : str
        Flower's explanation of a failure.
    """

    status: str
    sub_status: str
    details: str

    @property
    def finished(self) -> bool:
        """Whether the run has ended."""
        return self.status == FINISHED


class Control:
    """One open connection to a SuperLink's Control API.

    Parameters
    ----------
    address : str
        ``host:port`` of the SuperLink.
    root_certificates : Path
        The consortium CA certificate the SuperLink's certificate must chain to.
    flwr_home : Path
        Flower's home folder for this client (credentials and cache stay there, not
        in the user's ``~/.flwr``).

    Raises
    ------
    ControlError
        If the client cannot be set up.
    """

    def __init__(self, address: str, *, root_certificates: Path, flwr_home: Path) -> None:
        from flwr.cli.typing import SuperLinkConnection
        from flwr.cli.utils import init_http_client_from_connection

        flwr_home.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.environ["FLWR_HOME"] = str(flwr_home)
        connection = SuperLinkConnection(
            name="fedrisk",
            address=address,
            root_certificates=str(root_certificates.resolve()),
            insecure=False,
        )
        with _flower_errors():
            self._client = init_http_client_from_connection(connection)
        self.address = address

    def close(self) -> None:
        """Close the connection."""
        self._client.close()

    def __enter__(self) -> Control:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def register_node(self, public_key: bytes, *, name: str) -> bool:
        """Register one SuperNode's authentication public key (an OpenSSH EC key line).

        Returns
        -------
        bool
            True if registered now, False if the key was already registered (a
            SuperLink restarted on its previous state).

        Raises
        ------
        ControlError
            If the key does not parse or the SuperLink refuses it for another reason.
        """
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from flwr.proto.control_pb2 import RegisterNodeRequest
        from flwr.supercore.primitives.asymmetric import public_key_to_bytes

        try:
            key = serialization.load_ssh_public_key(public_key)
        except ValueError as err:
            raise ControlError(
                f"SuperNode key of {name}: not an OpenSSH public key ({err})"
            ) from None
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise ControlError(f"SuperNode key of {name}: must be an EC public key")
        try:
            with _flower_errors():
                self._client.RegisterNode(
                    RegisterNodeRequest(public_key=public_key_to_bytes(key), name=name)
                )
        except ControlError as err:
            if "already in use" in str(err):
                return False
            raise
        return True

    def submit(self, app_dir: Path) -> int:
        """Build the Flower App Bundle in ``app_dir``, start a run, return its id.

        Raises
        ------
        ControlError
            If the bundle cannot be built or the SuperLink refuses the run.
        """
        from flwr.cli.build import build_fab_from_disk
        from flwr.cli.config_utils import load_and_validate
        from flwr.common.config import get_metadata_from_config
        from flwr.common.serde import fab_to_proto, user_config_to_proto
        from flwr.proto.control_pb2 import StartRunRequest
        from flwr.supercore.fab import Fab

        try:
            config, _ = load_and_validate(app_dir / "pyproject.toml", check_module=False)
            fab_bytes = build_fab_from_disk(app_dir)
        except ValueError as err:
            raise ControlError(f"cannot build the Flower App in {app_dir}: {err}") from None
        get_metadata_from_config(config)
        fab = Fab(hashlib.sha256(fab_bytes).hexdigest(), fab_bytes, {})
        request = StartRunRequest(
            fab=fab_to_proto(fab), override_config=user_config_to_proto({}), federation=""
        )
        with _flower_errors():
            response = self._client.StartRun(request)
        if not response.HasField("run_id"):
            raise ControlError("the SuperLink did not start the run")
        return int(response.run_id)

    def runs(self) -> list[int]:
        """Return the ids of every run the SuperLink knows.

        Raises
        ------
        ControlError
            If the SuperLink cannot be reached.
        """
        from flwr.proto.control_pb2 import ListRunsRequest

        with _flower_errors():
            response = self._client.ListRuns(ListRunsRequest())
        return sorted(int(run_id) for run_id in response.run_dict)

    def state(self, run_id: int) -> RunState:
        """Return a run's current state.

        Raises
        ------
        ControlError
            If the SuperLink does not know the run or cannot be reached.
        """
        from flwr.common.serde import run_from_proto
        from flwr.proto.control_pb2 import ListRunsRequest

        with _flower_errors():
            response = self._client.ListRuns(ListRunsRequest(run_id=run_id))
        if run_id not in response.run_dict:
            raise ControlError(f"the SuperLink knows no run {run_id}")
        status = run_from_proto(response.run_dict[run_id]).status
        return RunState(status.status, status.sub_status, status.details)

    def logs(self, run_id: int) -> Iterator[str]:
        """Yield the run's log output (from the start) until the run ends.

        Raises
        ------
        ControlError
            If the stream breaks.
        """
        from flwr.proto.control_pb2 import StreamLogsRequest

        request = StreamLogsRequest(run_id=run_id, after_timestamp=0.0)
        with _flower_errors():
            for response in self._client.StreamLogs(request):
                yield response.log_output

    def stop(self, run_id: int) -> None:
        """Ask the SuperLink to stop a run (no error if it has already ended)."""
        from flwr.proto.control_pb2 import StopRunRequest

        with contextlib.suppress(ControlError), _flower_errors():
            self._client.StopRun(StopRunRequest(run_id=run_id))


@contextlib.contextmanager
def _flower_errors() -> Iterator[None]:
    """Turn Flower CLI and HTTP errors into a one-line :class:`ControlError`."""
    import click
    import httpx
    from flwr.cli.utils import flwr_cli_exc_handler

    try:
        with flwr_cli_exc_handler():
            yield
    except click.ClickException as err:
        raise ControlError(" ".join(err.format_message().split())) from None
    except httpx.HTTPError as err:  # raised while a stream is consumed
        raise ControlError(" ".join(str(err).split()) or type(err).__name__) from None
