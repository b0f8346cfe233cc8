"""``fedrisk run … resume=RUN_DIR``: continue a pilot's run after the SuperLink crashed.

fedrisk's ServerApp runs inside the SuperLink, so a SuperLink crash ends its round
loop; Flower cannot continue that run. The coordinator's checkpoint
(`fedrisk.server.checkpoint`) can: the resumed run is a new Flower run that carries
the checkpoint's fedrisk run id, its own ``config.yaml`` and ``resume``, and writes
into the same run directory. The ServerApp then starts after the checkpoint's round,
and the banks keep composing their ledgers under the same run id: a round a bank
trained before the crash is answered from the bank's kept copy of that release, not
trained and counted again (see `fedrisk.client.released_updates`).

This is the deployment twin of ``fedrisk simulate resume=RUN_DIR``
(`fedrisk.simulations.resume`): both read the run's own configuration back through
`fedrisk.conf.run_dir`, and this one also checks the run is of this consortium and
that ``--test`` is the held-out table the run started with: ``fedrisk run`` records the
table's SHA-256 in ``RUN_DIR/held-out.json`` when it submits a new run
(:func:`record_held_out`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fedrisk.conf.root import ConfigError, FedriskConfig
from fedrisk.conf.run_dir import RESUME_KEY, resume_dir, resumed_settings
from fedrisk.deploy.run_config import consortium_of
from fedrisk.privacy.manifest import ConsortiumManifest
from fedrisk.server.checkpoint import CheckpointError, load_checkpoint
from fedrisk.server.records import write_json_atomic

__all__ = [
    "HELD_OUT_FILE",
    "RESUME_KEY",
    "ResumedRun",
    "record_held_out",
    "resume_dir",
    "resumed_run",
]

#: In the run directory: the held-out table a pilot run was started with, and its SHA-256.
HELD_OUT_FILE = "held-out.json"


@dataclass(frozen=True)
class ResumedRun:
    """What a resumed deployment run is submitted with.

    Attributes
    ----------
    run_dir : Path
        The crashed run's directory (absolute); the resumed run writes into it.
    settings : FedriskConfig
        The run's own ``config.yaml``, with ``resume`` set to ``run_dir``.
    run_id : str
        fedrisk's run id, the checkpoint's (the banks' ledgers go on under it).
    completed_round : int
        The checkpoint's last completed round; the run continues after it.
    """

    run_dir: Path
    settings: FedriskConfig
    run_id: str
    completed_round: int


def resumed_run(
    run_dir: Path,
    overrides: Sequence[str],
    *,
    manifest: ConsortiumManifest,
    test: Path | None = None,
) -> ResumedRun:
    """Check that ``run_dir`` can be resumed on this consortium, and return how.

    Parameters
    ----------
    run_dir : Path
        The run directory named by ``resume=``.
    overrides : Sequence[str]
        Every override given (only ``resume=…`` is allowed).
    manifest : ConsortiumManifest
        The consortium of ``--consortium``; it must be the run's.
    test : Path | None (default: None)
        The held-out table of ``--test``; when given, it must be the one the run was
        started with (if the run recorded it).

    Raises
    ------
    ConfigError
        With one line, if other overrides are given, ``run_dir`` is not a run
        directory, it holds no readable checkpoint, the checkpoint or the run is of
        another configuration or consortium, or ``test`` is another held-out table.
    """
    _, settings = resumed_settings(run_dir, overrides)
    try:
        checkpoint = load_checkpoint(run_dir)
        checkpoint.check_against(run_id=checkpoint.run_id, settings=settings)
    except CheckpointError as err:
        raise ConfigError(str(err)) from None
    if settings.consortium != consortium_of(manifest):
        raise ConfigError(
            f"{run_dir} is a run of consortium {settings.consortium.name!r} "
            f"({', '.join(i.name for i in settings.consortium.institutions)}); --consortium "
            f"must be its coordinator folder; got consortium {manifest.name!r}"
        )
    if test is not None:
        _check_held_out(run_dir, test)
    return ResumedRun(
        run_dir=run_dir,
        settings=settings,
        run_id=checkpoint.run_id,
        completed_round=checkpoint.completed_round,
    )


def record_held_out(run_dir: Path, test: Path) -> None:
    """Record in ``run_dir`` which held-out table a new pilot run evaluates on."""
    write_json_atomic(
        run_dir / HELD_OUT_FILE, {"file": str(test.resolve()), "sha256": _file_sha256(test)}
    )


def _check_held_out(run_dir: Path, test: Path) -> None:
    """Refuse a ``--test`` table other than the run's (runs without the record pass)."""
    path = run_dir / HELD_OUT_FILE
    if not path.is_file():
        return
    try:
        recorded = json.loads(path.read_text())
        file, sha256 = str(recorded["file"]), str(recorded["sha256"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ConfigError(
            f"{path}: unreadable ({err}); it names the run's held-out table"
        ) from None
    if _file_sha256(test) != sha256:
        raise ConfigError(
            f"--test {test} is not the held-out table {run_dir} started with ({file}, "
            f"SHA-256 {sha256[:12]}…); resume with that table, or the run's central "
            f"metrics would mix two test sets"
        )


def _file_sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
