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

from omegaconf import DictConfig

from fedrisk.conf.root import ConfigError
from fedrisk.conf.run_dir import RESUME_KEY, resume_dir, resumed_settings
from fedrisk.server.checkpoint import CheckpointError, load_checkpoint
from fedrisk.simulations.consortium import resolve_schema

__all__ = ["RESUME_KEY", "resume_dir", "resumed_config"]


def resumed_config(run_dir: Path, argv: Sequence[str]) -> tuple[DictConfig, str]:
    """Return the configuration and run id to resume ``run_dir`` with.

    Raises
    ------
    ConfigError
        If other overrides are given, the run directory has no config or checkpoint,
        or the checkpoint is of another configuration.
    """
    cfg, settings = resumed_settings(run_dir, argv)
    try:
        checkpoint = load_checkpoint(run_dir)
        checkpoint.check_against(run_id=checkpoint.run_id, settings=resolve_schema(settings))
    except CheckpointError as err:
        raise ConfigError(str(err)) from None
    return cfg, checkpoint.run_id
