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
(`fedrisk.simulations.resume`), with the same refusals; the two packages are
independent layers and cannot share the function.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from fedrisk.conf.root import ConfigError, FedriskConfig, load_settings
from fedrisk.deploy.run_config import consortium_of
from fedrisk.privacy.manifest import ConsortiumManifest
from fedrisk.server.checkpoint import CheckpointError, load_checkpoint

RESUME_KEY = "resume"
CONFIG_FILE = "config.yaml"


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


def resume_dir(overrides: Sequence[str]) -> Path | None:
    """Return the run directory of a ``resume=RUN_DIR`` override, if there is one."""
    for item in overrides:
        key, _, value = item.partition("=")
        if key.lstrip("+") == RESUME_KEY and value:
            return Path(value).expanduser().resolve()
    return None


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
    others = [item for item in overrides if item.partition("=")[0].lstrip("+") != RESUME_KEY]
    if others:
        raise ConfigError(
            f"`resume` continues {run_dir} with its own {CONFIG_FILE}; drop the other "
            f"arguments {others}"
        )
    if not run_dir.is_dir():
        raise ConfigError(f"`resume` must name a run directory; {run_dir} does not exist")
    config_file = run_dir / CONFIG_FILE
    if not config_file.is_file():
        raise ConfigError(f"`resume` must name a run directory; {config_file} does not exist")
    try:
        cfg = OmegaConf.load(config_file)
        if not isinstance(cfg, DictConfig):
            raise ConfigError(f"{config_file} must hold a mapping")
        settings = load_settings(OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]
    except (OmegaConfBaseException, OSError, ValueError) as err:
        if isinstance(err, ConfigError):
            raise
        raise ConfigError(f"{config_file}: {' '.join(str(err).split())}") from None
    settings = replace(settings, resume=str(run_dir))
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
