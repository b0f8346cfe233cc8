"""``fedrisk simulate resume=RUN_DIR``: continue a crashed run from its last checkpoint.

The run continues with its own ``config.yaml`` (no other overrides), in its own
directory, under its own run id, so the institutions' ledgers go on in the same run:
a round a bank trained before the crash but the server never aggregated is answered
from the bank's record of that release, not trained and counted again (see
`fedrisk.client.released_updates`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from fedrisk.conf.root import ConfigError, load_settings
from fedrisk.server.checkpoint import CheckpointError, load_checkpoint
from fedrisk.simulations.consortium import resolve_schema

RESUME_KEY = "resume"


def resume_dir(argv: Sequence[str]) -> Path | None:
    """Return the run directory of a ``resume=RUN_DIR`` override, if ``argv`` has one."""
    for arg in argv:
        key, _, value = arg.partition("=")
        if key.lstrip("+") == RESUME_KEY and value:
            return Path(value).expanduser().resolve()
    return None


def resumed_config(run_dir: Path, argv: Sequence[str]) -> tuple[DictConfig, str]:
    """Return the configuration and run id to resume ``run_dir`` with.

    Raises
    ------
    ConfigError
        If other overrides are given, the run directory has no config or checkpoint,
        or the checkpoint is of another configuration.
    """
    others = [a for a in argv if a.partition("=")[0].lstrip("+") != RESUME_KEY]
    if others:
        raise ConfigError(
            f"`resume` continues {run_dir} with its own config.yaml; drop the other "
            f"arguments {others}"
        )
    config_file = run_dir / "config.yaml"
    if not config_file.is_file():
        raise ConfigError(f"`resume` must name a run directory; {config_file} does not exist")
    cfg = OmegaConf.load(config_file)
    if not isinstance(cfg, DictConfig):
        raise ConfigError(f"{config_file} must hold a mapping")
    cfg[RESUME_KEY] = str(run_dir)
    settings = load_settings(OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]
    try:
        checkpoint = load_checkpoint(run_dir)
        checkpoint.check_against(run_id=checkpoint.run_id, settings=resolve_schema(settings))
    except CheckpointError as err:
        raise ConfigError(str(err)) from None
    return cfg, checkpoint.run_id
