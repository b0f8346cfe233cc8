"""A run directory's own configuration, read back for ``resume=RUN_DIR``.

``fedrisk simulate resume=RUN_DIR`` and ``fedrisk run … resume=RUN_DIR`` both continue
a crashed run with the ``config.yaml`` it was started with and nothing else; this
module is the one place that reads it back and refuses what cannot be resumed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from fedrisk.conf.root import ConfigError, FedriskConfig, load_settings

RESUME_KEY = "resume"
CONFIG_FILE = "config.yaml"


def resume_dir(overrides: Sequence[str]) -> Path | None:
    """Return the run directory of a ``resume=RUN_DIR`` override, if there is one."""
    for item in overrides:
        key, _, value = item.partition("=")
        if key.lstrip("+") == RESUME_KEY and value:
            return Path(value).expanduser().resolve()
    return None


def resumed_settings(run_dir: Path, overrides: Sequence[str]) -> tuple[DictConfig, FedriskConfig]:
    """Return the run's own configuration, with ``resume`` set to ``run_dir``.

    Parameters
    ----------
    run_dir : Path
        The run directory named by ``resume=``.
    overrides : Sequence[str]
        Every override given; only ``resume=…`` is allowed.

    Returns
    -------
    tuple[DictConfig, FedriskConfig]
        The composed configuration (for Hydra) and its validated settings.

    Raises
    ------
    ConfigError
        With one line, if other overrides are given, ``run_dir`` is not a run directory,
        or its ``config.yaml`` is not a valid configuration.
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
        cfg[RESUME_KEY] = str(run_dir)
        settings = load_settings(OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]
    except (OmegaConfBaseException, OSError, ValueError) as err:
        if isinstance(err, ConfigError):
            raise
        raise ConfigError(f"{config_file}: {' '.join(str(err).split())}") from None
    return cfg, settings
