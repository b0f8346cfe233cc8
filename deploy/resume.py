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
`fedrisk.conf.run_dir`, and this one also checks the run is of this consortium.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fedrisk.conf.root import ConfigError, FedriskConfig
from fedrisk.conf.run_dir import RESUME_KEY, resume_dir, resumed_settings
from fedrisk.deploy.run_config import consortium_of
from fedrisk.privacy.manifest import ConsortiumManifest
from fedrisk.server.checkpoint import CheckpointError, load_checkpoint

__all__ = ["RESUME_KEY", "ResumedRun", "resume_dir", "resumed_run"]


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
    run_dir: Path, overrides: Sequence[str], *, manifest: ConsortiumManifest
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

    Raises
    ------
    ConfigError
        With one line, if other overrides are given, ``run_dir`` is not a run
        directory, it holds no readable checkpoint, or the checkpoint or the run is of
        another configuration or consortium.
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
    return ResumedRun(
        run_dir=run_dir,
        settings=settings,
        run_id=checkpoint.run_id,
        completed_round=checkpoint.completed_round,
    )
