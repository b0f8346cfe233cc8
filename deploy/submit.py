"""``fedrisk run``: submit one training run to the consortium's SuperLink and follow it.

The run is configured exactly as ``fedrisk simulate`` is (Hydra overrides on the
same tree), fitted to the manifest's banks, submitted through Flower's Control API
as a Flower App Bundle, and followed until it ends. fedrisk's ServerApp, started by
the SuperLink, writes the run directory as in a simulation (``metrics.jsonl``,
``summary.json``, ``model.npz``, plots, the banks' verified ledgers); this command adds
``config.yaml``, the deployment record in ``summary.json`` and Flower's log of the run.
Ctrl-C stops the run at the SuperLink.

With ``resume=RUN_DIR`` (and no other override) it continues a run whose SuperLink
crashed from the run directory's checkpoint instead (see `fedrisk.deploy.resume`).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fedrisk.conf.root import ConfigError
from fedrisk.data.errors import DataValidationError
from fedrisk.data.schema_file import read_schema
from fedrisk.deploy.command import ArgumentParser
from fedrisk.deploy.control import Control, ControlError, RunState
from fedrisk.deploy.folders import CoordinatorFolder, FolderError
from fedrisk.deploy.processes import stop_requests
from fedrisk.deploy.resume import ResumedRun, record_held_out, resume_dir, resumed_run
from fedrisk.deploy.run_config import (
    compose,
    consortium_of,
    for_consortium,
    save_config,
    write_app,
)
from fedrisk.server.checkpoint import has_checkpoint
from fedrisk.server.records import SUMMARY_FILE, write_json_atomic

PROG = "fedrisk run"
RUN_LOG = "flower-run.log"
POLL_S = 2.0
#: How long the SuperLink may stay unreachable before the run is given up.
UNREACHABLE_S = 30.0
EXIT_USAGE = 2
EXIT_FAILED = 1
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
#: Lines of the ServerApp's log shown while a run is followed.
_SHOWN = re.compile(r"federated rounds|ERROR|WARNING|Roll call|roll call")

USAGE = (
    "fedrisk run --consortium DIR/coordinator --test FILE [--schema FILE] "
    "[--superlink HOST:PORT] [OVERRIDES… | resume=RUN_DIR]\n"
    "    submit a training run (Hydra overrides as for `fedrisk simulate`) and follow it; "
    "resume=RUN_DIR continues a run whose SuperLink crashed from its last checkpoint"
)


class SuperLinkLost(RuntimeError):
    """The SuperLink stopped answering while a run was under way."""


def run_command(argv: Sequence[str]) -> int:
    """Run ``fedrisk run``; return the exit code.

    Returns
    -------
    int
        0 when the run completed and wrote its summary; 1 when it failed, was
        stopped or the SuperLink was lost; 2 for an unusable folder, file or
        configuration, or a run directory that cannot be resumed (nothing is
        submitted then).
    """
    parser = _parser()
    try:
        args, overrides = parser.parse_known_args(list(argv))
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    unknown = [item for item in overrides if item.startswith("--") or "=" not in item]
    if unknown:
        print(f"{PROG}: error: unrecognised arguments: {' '.join(unknown)}", file=sys.stderr)
        return EXIT_USAGE
    try:
        folder = CoordinatorFolder.open(Path(args.consortium))
        test = Path(args.test)
        if not test.is_file():
            raise FolderError(f"--test {test}: no such file (the coordinator's held-out table)")
        resumed = _resumed(args, overrides, folder)
        if resumed is None:
            schema = read_schema(args.schema) if args.schema else None
            composed = compose(overrides, consortium=consortium_of(folder.manifest))
            settings = for_consortium(composed, folder.manifest, schema=schema)
            run_dir = composed.run_dir
        else:
            settings, run_dir = resumed.settings, resumed.run_dir
    except (FolderError, ConfigError, DataValidationError, ValueError, OSError) as err:
        print(f"{PROG}: {' '.join(str(err).split())}", file=sys.stderr)
        return EXIT_USAGE
    run_dir.mkdir(parents=True, exist_ok=True)
    if resumed is None:
        save_config(settings, run_dir / "config.yaml")
        record_held_out(run_dir, test)
    else:  # the run's own config.yaml stays; a summary would be of the crashed attempt
        (run_dir / SUMMARY_FILE).unlink(missing_ok=True)
    app = write_app(
        settings,
        run_dir=run_dir,
        test_path=test,
        manifest_path=folder.manifest_file,
        run_id=resumed.run_id if resumed else "",
        resume=resumed is not None,
    )
    address = args.superlink or folder.default_address()
    advice = _Advice(
        f"{PROG} --consortium {folder.path} --test {test.resolve()} resume={run_dir}", run_dir
    )
    started = time.perf_counter()
    try:
        with Control(
            address, root_certificates=folder.ca_cert, flwr_home=folder.runtime / "cli"
        ) as link:
            run_id = link.submit(app)
            print(
                f"{PROG}: run {run_id} submitted to {address}: consortium "
                f"{folder.manifest.name!r} ({len(settings.consortium.institutions)} banks), "
                f"task {settings.task.name}, strategy {settings.strategy.name.value}, privacy "
                f"{settings.privacy.mode.value}, secure aggregation {settings.secagg.mode.value}, "
                f"{settings.rounds} rounds → {run_dir}"
                + (
                    f" (resuming fedrisk run {resumed.run_id} after round "
                    f"{resumed.completed_round})"
                    if resumed
                    else ""
                ),
                flush=True,
            )
            state = _follow(link, run_id, run_dir / RUN_LOG, advice)
    except SuperLinkLost as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return EXIT_FAILED
    except ControlError as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return EXIT_FAILED
    return _finish(
        state, run_id, run_dir, address, folder, time.perf_counter() - started, advice, resumed
    )


def _resumed(
    args: argparse.Namespace, overrides: Sequence[str], folder: CoordinatorFolder
) -> ResumedRun | None:
    """Return the run to resume if ``resume=RUN_DIR`` was given (checked), else None.

    Raises
    ------
    ConfigError
        If the run cannot be resumed (see `fedrisk.deploy.resume.resumed_run`), or
        ``--schema`` is given with it.
    """
    run_dir = resume_dir(overrides)
    if run_dir is None:
        return None
    if args.schema:
        raise ConfigError(
            f"`resume` continues {run_dir} with the schema in its own config.yaml; "
            f"drop --schema {args.schema}"
        )
    return resumed_run(run_dir, overrides, manifest=folder.manifest, test=Path(args.test))


@dataclass(frozen=True)
class _Advice:
    """How to go on after a run ended early: resume it if it left a checkpoint.

    The ServerApp checkpoints once the roll call is over and after every round, so
    only a run stopped before its first round has nothing to resume from.
    """

    resume_command: str
    run_dir: Path

    def __str__(self) -> str:
        if has_checkpoint(self.run_dir):
            return f"continue it from its last checkpoint with `{self.resume_command}`"
        return "start a new `fedrisk run` (this one stopped before its first checkpoint)"


def _follow(link: Control, run_id: int, log: Path, advice: _Advice) -> RunState:
    """Wait for the run to end, copying its log; stop it on Ctrl-C.

    Raises
    ------
    SuperLinkLost
        If the SuperLink stays unreachable for ``UNREACHABLE_S`` seconds.
    """
    copier = threading.Thread(target=_copy_logs, args=(link, run_id, log), daemon=True)
    copier.start()
    lost_since: float | None = None
    with stop_requests() as stopping:
        while True:
            if stopping.is_set():
                print(f"{PROG}: stopping run {run_id} …", flush=True)
                link.stop(run_id)
                stopping.clear()
            try:
                state = link.state(run_id)
                lost_since = None
            except ControlError as err:
                lost_since = lost_since or time.monotonic()
                if time.monotonic() - lost_since > UNREACHABLE_S:
                    raise SuperLinkLost(
                        f"the SuperLink stopped answering during run {run_id} ({err}). "
                        "Flower cannot continue the run (the ServerApp's round loop ran "
                        "inside the SuperLink that stopped): restart `fedrisk server`, then "
                        f"{advice}"
                    ) from None
                stopping.wait(POLL_S)
                continue
            if state.finished:
                copier.join(timeout=10)
                return state
            stopping.wait(POLL_S)


def _copy_logs(link: Control, run_id: int, log: Path) -> None:
    """Copy the run's log from the SuperLink to ``log``, echoing progress and problems."""
    with log.open("a", encoding="utf-8") as out:
        try:
            for chunk in link.logs(run_id):
                out.write(chunk)
                out.flush()
                for line in _ANSI.sub("", chunk).replace("\r", "\n").splitlines():
                    if _SHOWN.search(line):
                        print(f"  {line.strip()}", flush=True)
        except ControlError as err:
            out.write(f"[fedrisk run] log stream ended: {err}\n")


def _finish(
    state: RunState,
    run_id: int,
    run_dir: Path,
    address: str,
    folder: CoordinatorFolder,
    seconds: float,
    advice: _Advice,
    resumed: ResumedRun | None,
) -> int:
    summary_file = run_dir / SUMMARY_FILE
    if state.sub_status != "completed" or not summary_file.is_file():
        why = " ".join(state.details.split()) or "no summary was written"
        if state.sub_status == "stopped":
            why += " (stopped at the SuperLink: Ctrl-C, `flwr stop`, or a SuperLink restart)"
        if state.sub_status in ("stopped", "failed"):
            why += f"; to go on, {advice}"
        print(
            f"{PROG}: run {run_id} ended {state.sub_status or state.status}: {why} "
            f"(Flower's log: {run_dir / RUN_LOG})",
            file=sys.stderr,
        )
        return EXIT_FAILED
    summary = json.loads(summary_file.read_text(encoding="utf-8"))
    deployment: dict[str, object] = {
        "superlink": address,
        "flower_run_id": str(run_id),
        "status": "completed",
    }
    if resumed is not None:
        deployment["resumed_after_round"] = resumed.completed_round
    summary.update(
        consortium=folder.manifest.name,
        seeded=False,
        deployment=deployment,
        seconds={"federation": seconds, "total": seconds},
    )
    write_json_atomic(summary_file, summary)
    _print_outcome(summary, run_dir)
    return 0


def _print_outcome(summary: dict, run_dir: Path) -> None:
    central = summary.get("global") or {}
    auc = central.get("auc")
    auc_text = f"{auc:.4f}" if isinstance(auc, float) else "n/a"
    print(
        f"{PROG}: {summary.get('rounds_completed')} of {summary.get('rounds_planned')} rounds "
        f"({summary.get('stop_reason')}); held-out AUC {auc_text}"
    )
    for name, entry in sorted((summary.get("institutions") or {}).items()):
        spent = entry.get("epsilon_spent")
        budget = entry.get("epsilon_budget")
        privacy = f"ε {spent:.3f} of {budget:g}" if isinstance(spent, float) else "no DP ledger"
        refused = f"; refused: {entry['refused']}" if entry.get("refused") else ""
        print(f"  {name}: {privacy}{refused}")
    print(f"{PROG}: run directory {run_dir} (audit it with `fedrisk audit {run_dir}`)")


def _parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog=PROG, description=USAGE)
    parser.add_argument("--consortium", required=True, help="the coordinator folder")
    parser.add_argument("--test", required=True, help="held-out table for central evaluation")
    parser.add_argument("--schema", default=None, help="the banks' schema file")
    parser.add_argument(
        "--superlink",
        default=None,
        help="the Control API's HOST:PORT (default: the running fedrisk server's, on loopback)",
    )
    return parser
