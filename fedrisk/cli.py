"""The ``fedrisk`` command: one entry point, one sub-command per user task."""

from __future__ import annotations

import sys
from collections.abc import Sequence

USAGE = """usage: fedrisk COMMAND [ARGS]

commands:
  simulate [OVERRIDES…]   train a simulated consortium (Hydra overrides, e.g. rounds=5
                          consortium=banks_3 strategy=fedprox; --multirun for sweeps;
                          --cfg job to print the composed configuration)
  audit PATH              verify every ledger in a run directory (or a folder of ledgers
                          with consortium.json) and recompute every ε independently;
                          writes PATH/audit/report.json and report.html; exit 0 pass,
                          1 violation, 2 unusable
  audit empirical [--canaries=M] [--bank=NAME] [--beta=B] [OVERRIDES…]
                          insert canaries into one bank's data, simulate, attack the final
                          model, and report an empirical lower bound on ε beside the
                          theoretical one (RUN/empirical/report.json)
  data synth --institutions NAME[,NAME…] --out DIR [--task TASK] [--rows N] [--seed S]
                          write one synthetic CSV per bank, a held-out CSV and the schema
                          file the nodes validate against
  consortium join --institution BANK --out DIR/BANK
                          at the bank: generate its signing and SuperNode keys (0600)
                          and the public join request for the coordinator
  consortium assemble --name NAME --coordinator-host HOST[,…] --out DIR REQUEST.json…
                  [--epsilon-budget E] [--delta D]
                          at the coordinator: the consortium CA, the SuperLink's TLS
                          certificate and consortium.json from the banks' join requests
  consortium pin --consortium DIR/BANK --manifest FILE --ca-cert FILE
                  [--superlink HOST:PORT] [--sha256 HEX]
                          at the bank: check the manifest lists its own keys; pin its
                          SHA-256 (`node` refuses a manifest changed since)
  consortium init --name NAME --institutions BANK,BANK[,…] --coordinator-host HOST[,…]
                  --out DIR [--epsilon-budget E] [--delta D]
                          join, assemble and pin on one machine: DIR/ca, DIR/coordinator,
                          DIR/<bank> (each bank's keys generated in its own folder)
  server --consortium DIR/coordinator [--host H] [--port P] [--control-port C]
                          start the SuperLink (TLS, SuperNode authentication), register
                          the manifest's SuperNode keys; only the Fleet API on H:P, the
                          Control API on 127.0.0.1:C; Ctrl-C stops it
  node --consortium DIR/BANK --data FILE [--schema FILE] [--superlink HOST:PORT]
                          validate the bank's table and start its SuperNode (TLS, its
                          authentication key); the data path never leaves the node
  run --consortium DIR/coordinator --test FILE [OVERRIDES…]
                          submit a training run to the running `server` on this machine
                          with the same Hydra configuration as `simulate`; writes the
                          same run directory
  report RUN              render RUN/report.html from a run directory's files (overview,
                          utility, privacy, secure aggregation, rounds); exit 2 if unusable
  report sweep MULTIRUN_DIR [--baseline RUN_DIR]… [--metric NAME]
                          plot a held-out metric against the key a --multirun swept
                          (sweep.png, sweep.csv, sweep.md); exit 2 if unusable
  version                 print the fedrisk version
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch ``fedrisk COMMAND``; return the process exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "simulate":
        from fedrisk.simulations.entry import simulate

        return simulate(rest)
    if command == "data" and rest[:1] == ["synth"]:
        from fedrisk.simulations.synth_data import data_synth_command

        return data_synth_command(rest[1:])
    if command == "consortium":
        from fedrisk.deploy.command import consortium_command

        return consortium_command(rest)
    if command == "server":
        from fedrisk.deploy.superlink import server_command

        return server_command(rest)
    if command == "node":
        from fedrisk.deploy.supernode import node_command

        return node_command(rest)
    if command == "run":
        from fedrisk.deploy.submit import run_command

        return run_command(rest)
    if command == "audit" and rest[:1] == ["empirical"]:
        from fedrisk.simulations.empirical import empirical_audit_command

        return empirical_audit_command(rest[1:])
    if command == "audit":
        from fedrisk.audit.command import audit_command

        return audit_command(rest)
    if command == "report" and rest[:1] == ["sweep"]:
        from fedrisk.audit.sweep_report import sweep_command

        return sweep_command(rest[1:])
    if command == "report":
        from fedrisk.audit.run_report import report_command

        return report_command(rest)
    if command == "version":
        from fedrisk import __version__

        print(__version__)
        return 0
    print(f"fedrisk: unknown command {command!r}; run `fedrisk --help`", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
