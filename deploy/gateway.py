"""The coordinator's public port: Flower's Fleet API only, forwarded to a loopback SuperLink.

Flower 1.41 serves the Fleet, Control and Runtime APIs of ``flower-superlink`` on one
HTTPS port, and its open-source Control API authenticates nobody (a no-op plugin):
whoever holds the public CA certificate could list and stop runs, submit apps, and
register SuperNode keys of their own. ``fedrisk server`` therefore binds the SuperLink
to 127.0.0.1 and serves the public address with this gateway, which terminates TLS
with the SuperLink's certificate and forwards a request only when it is a ``POST`` to
``/v1/fleet/<method>`` (no query, no dot segments, no escapes); anything else gets
``403`` and is logged. SuperNode authentication is untouched: its signed headers are
forwarded as they came and checked by the SuperLink.

Notes
-----
Who can use the Control API: whoever can open a connection to the SuperLink's loopback
port, i.e. the coordinator's operator on the coordinator's machine. Keep that machine's
accounts to the operator.
"""

from __future__ import annotations

import re
import ssl
import sys
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import httpx
import uvicorn

#: What the gateway forwards: Flower's Fleet API methods (request/response POSTs).
FLEET_PATH = re.compile(rb"/v1/fleet/[a-z][a-z-]{0,63}")
REFUSAL = (
    b"fedrisk: only the Fleet API is served on this port; the Control and Runtime APIs "
    b"are served on the coordinator's loopback only\n"
)
FORWARD_TIMEOUT_S = 300.0
_DROPPED = {
    b"host", b"content-length", b"connection", b"keep-alive", b"transfer-encoding",
    b"te", b"trailer", b"upgrade", b"proxy-authorization", b"proxy-connection",
    b"accept-encoding",
}  # fmt: skip

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def is_fleet_request(method: str, raw_path: bytes, query: bytes) -> bool:
    """Return whether a request is one the gateway forwards."""
    return method == "POST" and not query and FLEET_PATH.fullmatch(raw_path) is not None


class FleetGateway:
    """An HTTPS server on ``host:port`` forwarding Fleet API calls to ``upstream``.

    Parameters
    ----------
    host, port : str, int
        The public address the SuperNodes dial.
    upstream : str
        ``host:port`` of the SuperLink on loopback.
    certfile, keyfile : Path
        The SuperLink's TLS certificate and key (the gateway presents them).
    ca_cert : Path
        The consortium CA certificate the SuperLink's certificate is verified against.
    refused : Callable[[str], None] (default: print to stderr)
        Receives one line per refused request.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        upstream: str,
        certfile: Path,
        keyfile: Path,
        ca_cert: Path,
        refused: Callable[[str], None] | None = None,
    ) -> None:
        self._upstream = f"https://{upstream}"
        self._ca_cert = ca_cert
        self._refused = refused or (lambda line: print(line, file=sys.stderr, flush=True))
        self._client: httpx.AsyncClient | None = None
        config = uvicorn.Config(
            self.app,
            host=host,
            port=port,
            ssl_certfile=str(certfile),
            ssl_keyfile=str(keyfile),
            lifespan="off",
            interface="asgi3",
            proxy_headers=False,
            access_log=False,
            log_level="warning",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="fleet-gateway", daemon=True)

    def start(self, *, timeout: float = 30.0) -> None:
        """Start serving; return once the port listens.

        Raises
        ------
        OSError
            If the gateway did not start within ``timeout`` (e.g. the port is taken).
        """
        self._thread.start()
        waited = 0.0
        while not self._server.started:
            if not self._thread.is_alive() or waited > timeout:
                raise OSError("the Fleet API gateway did not start (is the port in use?)")
            self._thread.join(0.05)
            waited += 0.05

    def stop(self) -> None:
        """Stop serving and wait for the server thread."""
        self._server.should_exit = True
        self._thread.join(timeout=10)

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI request: forward a Fleet API call, refuse anything else."""
        if scope["type"] != "http":
            return
        raw_path = scope.get("raw_path") or scope["path"].encode("ascii", "replace")
        if not is_fleet_request(scope["method"], raw_path, scope.get("query_string", b"")):
            client = scope.get("client") or ("?", 0)
            self._refused(
                f"refused {scope['method']} {raw_path.decode('ascii', 'replace')[:120]} "
                f"from {client[0]}:{client[1]} (only the Fleet API is served on this port)"
            )
            await _respond(send, 403, [(b"content-type", b"text/plain")], REFUSAL)
            return
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in _DROPPED]
        try:
            reply = await self._http().post(
                self._upstream + raw_path.decode("ascii"), content=bytes(body), headers=headers
            )
        except httpx.HTTPError as err:
            self._refused(f"the SuperLink did not answer a Fleet API call: {err}")
            await _respond(send, 502, [(b"content-type", b"text/plain")], b"bad gateway\n")
            return
        out = [
            (k.encode("latin-1"), v.encode("latin-1"))
            for k, v in reply.headers.multi_items()
            if k.lower().encode("latin-1") not in _DROPPED | {b"content-encoding"}
        ]
        await _respond(send, reply.status_code, out, reply.content)

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            context = ssl.create_default_context(cafile=str(self._ca_cert))
            self._client = httpx.AsyncClient(verify=context, timeout=FORWARD_TIMEOUT_S)
        return self._client


async def _respond(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    length = (b"content-length", str(len(body)).encode("ascii"))
    await send({"type": "http.response.start", "status": status, "headers": [*headers, length]})
    await send({"type": "http.response.body", "body": body})
