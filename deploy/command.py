"""``fedrisk consortium``: provision a consortium's keys, certificates and manifest."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from fedrisk.deploy.provision import ConsortiumSpec, SpecError, provision

EXIT_USAGE = 2
_PROG = "fedrisk consortium"
_OPTIONS = {
    "name": "--name",
    "institutions": "--institutions",
    "coordinator_hosts": "--coordinator-host",
    "epsilon_budget": "--epsilon-budget",
    "delta": "--delta",
}

USAGE = (
    "fedrisk consortium init --name NAME --institutions BANK,BANK[,…] "
    "--coordinator-host HOST[,HOST…] --out DIR [--epsilon-budget 8.0] [--delta 1e-05]\n"
    "    create the consortium CA, the SuperLink's TLS certificate, each bank's signing "
    "and SuperNode keys, and consortium.json in DIR/ca, DIR/coordinator, DIR/<bank>"
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
        0 on success; 2 for an invalid option or an existing output part, after one
        line on stderr naming the option and the value.

    Raises
    ------
    OSError
        If writing fails for a reason other than an existing output part.
    """
    args = _parser().parse_or_exit_code(argv)
    if isinstance(args, int):
        return args
    try:
        spec = ConsortiumSpec(
            name=args.name,
            institutions=_split(args.institutions),
            coordinator_hosts=_split(args.coordinator_host),
            epsilon_budget=args.epsilon_budget,
            delta=args.delta,
        )
    except SpecError as exc:
        option = _OPTIONS[exc.field]
        print(
            f"{_PROG} init: error: {option} must be {exc.constraint}; got {exc.value!r}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        folders = provision(spec, Path(args.out))
    except FileExistsError as exc:
        print(f"{_PROG} init: error: --out {args.out!r}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    names = ", ".join(folder.name for folder in folders)
    print(f"consortium {spec.name!r} written to {Path(args.out)}: {names}")
    print(f"move {folders[0]} (the CA private key) offline now")
    return 0


def _parser() -> ArgumentParser:
    parser = ArgumentParser(prog=_PROG, description="Provision a consortium.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)
    init = commands.add_parser(
        "init", help="create keys, certificates and the manifest", description=USAGE
    )
    init.add_argument("--name", required=True, help="consortium name")
    init.add_argument("--institutions", required=True, help="comma-separated bank names (≥ 2)")
    init.add_argument(
        "--coordinator-host", required=True, help="comma-separated SuperLink DNS names / IPs"
    )
    init.add_argument("--out", required=True, help="output folder")
    init.add_argument("--epsilon-budget", type=float, default=8.0, help="ε per bank (8.0)")
    init.add_argument("--delta", type=float, default=1e-5, help="δ per bank (1e-05)")
    return parser


def _split(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",")) if text.strip() else ()
