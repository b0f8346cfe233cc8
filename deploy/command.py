"""``fedrisk consortium``: banks join with keys of their own; the coordinator assembles.

``join`` (at a bank) generates its keys and a public join request; ``assemble`` (at the
coordinator) builds the CA, the SuperLink's certificate and the manifest from the join
requests; ``pin`` (at a bank) checks the manifest lists its keys and pins its SHA-256;
``init`` does all three on one machine, one folder per party.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from fedrisk.deploy.join import (
    JOIN_REQUEST_FILE,
    PIN_FILE,
    JoinError,
    JoinRequest,
    manifest_sha256,
    pin,
)
from fedrisk.deploy.provision import (
    COORDINATOR_DIR,
    ConsortiumSpec,
    SpecError,
    assemble,
    join_bank,
    provision,
)
from fedrisk.privacy.manifest import MANIFEST_FILE

EXIT_USAGE = 2
_PROG = "fedrisk consortium"
_OPTIONS = {
    "name": "--name",
    "institution": "--institution",
    "institutions": "--institutions",
    "coordinator_hosts": "--coordinator-host",
    "epsilon_budget": "--epsilon-budget",
    "delta": "--delta",
}

USAGE = (
    "fedrisk consortium join --institution BANK --out DIR/BANK\n"
    "    at the bank: generate its signing and SuperNode keys (mode 0600) and the public "
    "join request DIR/BANK/join-request.json for the coordinator\n"
    "fedrisk consortium assemble --name NAME --coordinator-host HOST[,HOST…] --out DIR "
    "[--epsilon-budget 8.0] [--delta 1e-05] REQUEST.json…\n"
    "    at the coordinator: create the CA (DIR/ca) and DIR/coordinator with the SuperLink's "
    "TLS certificate and consortium.json from the banks' join requests\n"
    "fedrisk consortium pin --consortium DIR/BANK --manifest consortium.json --ca-cert "
    "ca_cert.pem [--superlink HOST:PORT] [--sha256 HEX]\n"
    "    at the bank: check the manifest lists its own keys and pin its SHA-256\n"
    "fedrisk consortium init --name NAME --institutions BANK,BANK[,…] "
    "--coordinator-host HOST[,HOST…] --out DIR [--epsilon-budget 8.0] [--delta 1e-05]\n"
    "    all of the above on one machine: DIR/<bank> (each with its own keys), DIR/ca, "
    "DIR/coordinator"
)


class ArgumentParser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line on stderr and exit code 2."""

    def error(self, message: str) -> NoReturn:
        """Print ``message`` on one line and exit with code 2."""
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)

    def parse_or_exit_code(self, argv: Sequence[str]) -> argparse.Namespace | int:
        """Parse ``argv``, or return the exit code where argparse would exit.

        ``--help`` returns 0 after printing the help; an invalid option returns 2 after
        one line on stderr.
        """
        try:
            return self.parse_args(list(argv))
        except SystemExit as exc:
            return exc.code if isinstance(exc.code, int) else EXIT_USAGE


def consortium_command(argv: Sequence[str]) -> int:
    """Run ``fedrisk consortium`` with the arguments after ``consortium``.

    Parameters
    ----------
    argv : Sequence[str]
        The sub-command and its options, e.g. ``["init", "--name", "c", …]``.

    Returns
    -------
    int
        0 on success; 2 for an invalid option, an existing output part, or a join
        request or manifest that is refused, after one line on stderr naming it.

    Raises
    ------
    OSError
        If writing fails for a reason other than an existing output part.
    """
    args = _parser().parse_or_exit_code(argv)
    if isinstance(args, int):
        return args
    command = f"{_PROG} {args.command}"
    try:
        return _COMMANDS[args.command](args)
    except SpecError as exc:
        option = _OPTIONS[exc.field]
        print(
            f"{command}: error: {option} must be {exc.constraint}; got {exc.value!r}",
            file=sys.stderr,
        )
    except FileExistsError as exc:
        print(f"{command}: error: --out {args.out!r}: {exc}", file=sys.stderr)
    except JoinError as exc:
        print(f"{command}: error: {' '.join(str(exc).split())}", file=sys.stderr)
    return EXIT_USAGE


def _init(args: argparse.Namespace) -> int:
    spec = _spec(args, _split(args.institutions))
    folders = provision(spec, Path(args.out))
    names = ", ".join(folder.name for folder in folders)
    print(f"consortium {spec.name!r} written to {Path(args.out)}: {names}")
    print(
        "each bank folder generated its own keys and pinned the manifest; "
        f"{COORDINATOR_DIR} holds no bank's private key"
    )
    print(f"move {folders[0]} (the CA private key) offline now")
    return 0


def _join(args: argparse.Namespace) -> int:
    out = Path(args.out)
    request = join_bank(args.institution, out)
    print(f"{request.institution}: signing and SuperNode keys generated in {out} (mode 0600)")
    print(
        f"send {out / JOIN_REQUEST_FILE} (public) to the coordinator; keep the rest of "
        f"{out} at the bank"
    )
    return 0


def _assemble(args: argparse.Namespace) -> int:
    requests = [JoinRequest.load(Path(path)) for path in args.requests]
    spec = _spec(args, tuple(request.institution for request in requests))
    folders = assemble(spec, requests, Path(args.out))
    manifest = folders[1] / MANIFEST_FILE
    digest = manifest_sha256(manifest.read_bytes())
    print(f"consortium {spec.name!r} assembled in {Path(args.out)}: ca, {COORDINATOR_DIR}")
    print(f"manifest {manifest} SHA-256 {digest}")
    print(
        f"send every bank {manifest.name}, ca_cert.pem and superlink_address.txt from "
        f"{folders[1]}, and tell them the SHA-256 over another channel; move {folders[0]} "
        "(the CA private key) offline now"
    )
    return 0


def _pin(args: argparse.Namespace) -> int:
    folder = Path(args.consortium)
    bank, digest = pin(
        folder,
        Path(args.manifest),
        Path(args.ca_cert),
        superlink=args.superlink,
        sha256=args.sha256,
    )
    print(
        f"{bank}: {args.manifest} lists this bank's own keys; pinned SHA-256 {digest} in "
        f"{folder / PIN_FILE}"
    )
    return 0


_COMMANDS = {"init": _init, "join": _join, "assemble": _assemble, "pin": _pin}


def _spec(args: argparse.Namespace, institutions: tuple[str, ...]) -> ConsortiumSpec:
    return ConsortiumSpec(
        name=args.name,
        institutions=institutions,
        coordinator_hosts=_split(args.coordinator_host),
        epsilon_budget=args.epsilon_budget,
        delta=args.delta,
    )


def _parser() -> ArgumentParser:
    parser = ArgumentParser(prog=_PROG, description="Provision a consortium.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)
    init = commands.add_parser(
        "init", help="one machine: join every bank, assemble, pin", description=USAGE
    )
    init.add_argument("--name", required=True, help="consortium name")
    init.add_argument("--institutions", required=True, help="comma-separated bank names (≥ 2)")
    _coordinator_options(init)
    join = commands.add_parser(
        "join", help="at a bank: its keys and join request", description=USAGE
    )
    join.add_argument("--institution", required=True, help="this bank's name")
    join.add_argument("--out", required=True, help="the bank's new folder")
    assemble_ = commands.add_parser(
        "assemble", help="at the coordinator: CA, certificate, manifest", description=USAGE
    )
    assemble_.add_argument("--name", required=True, help="consortium name")
    assemble_.add_argument("requests", nargs="+", help="the banks' join-request.json files")
    _coordinator_options(assemble_)
    pin_ = commands.add_parser(
        "pin", help="at a bank: check and pin the manifest", description=USAGE
    )
    pin_.add_argument("--consortium", required=True, help="this bank's folder")
    pin_.add_argument("--manifest", required=True, help="consortium.json from the coordinator")
    pin_.add_argument("--ca-cert", required=True, help="ca_cert.pem from the coordinator")
    pin_.add_argument("--superlink", default=None, help="HOST:PORT the SuperNode dials")
    pin_.add_argument("--sha256", default=None, help="the manifest's SHA-256, told separately")
    return parser


def _coordinator_options(parser: ArgumentParser) -> None:
    parser.add_argument(
        "--coordinator-host", required=True, help="comma-separated SuperLink DNS names / IPs"
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--epsilon-budget", type=float, default=8.0, help="ε per bank (8.0)")
    parser.add_argument("--delta", type=float, default=1e-5, help="δ per bank (1e-05)")


def _split(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",")) if text.strip() else ()
