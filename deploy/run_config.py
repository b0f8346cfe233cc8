"""What ``fedrisk run`` submits: the Hydra configuration, made concrete for a consortium.

The configuration is composed from the same tree and overrides as ``fedrisk simulate``
(``fedrisk/conf/config.yaml`` and its groups), then fitted to the deployment: the
consortium is the manifest's (names and budgets), the table schema is the one the
banks validate against, and DP noise is reseeded from the operating system unless an
override says otherwise. The result becomes Flower's ``run_config`` through the same
function a simulation uses, and is carried to the SuperLink and every SuperNode in a
Flower App Bundle whose only file is a generated ``pyproject.toml``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

from omegaconf import OmegaConf, open_dict

from fedrisk.conf.consortium import ConsortiumConfig, InstitutionConfig
from fedrisk.conf.faults import FaultsConfig
from fedrisk.conf.privacy import NoiseSource
from fedrisk.conf.root import (
    ConfigError,
    FedriskConfig,
    load_settings,
    register_configs,
    settings_to_json,
)
from fedrisk.conf.task import DataSource
from fedrisk.data.schema import TableSchema
from fedrisk.data.synthetic import credit_schema
from fedrisk.privacy.manifest import ConsortiumManifest
from fedrisk.strategies.messages import build_run_config

CONFIG_MODULE = "fedrisk.conf"
CONFIG_NAME = "config"
APP_DIR = "flower-app"
APP_NAME = "fedrisk-run"
#: Stands for a bank's row count, which the coordinator never learns.
UNKNOWN_ROWS = 1
#: Fewest seconds a secure-aggregation stage waits in a deployment (unless overridden):
#: every message starts a ClientApp process at each bank (≈5 s of imports on an idle
#: core), so the simulation defaults of 60 s are too short for busy bank machines.
DEPLOYMENT_STAGE_TIMEOUT_S = 300.0


@dataclasses.dataclass(frozen=True)
class Composed:
    """The composed configuration of one ``fedrisk run``.

    Attributes
    ----------
    settings : FedriskConfig
        Validated settings, before they are fitted to the consortium.
    run_dir : Path
        Hydra's ``hydra.run.dir`` (``outputs/DATE/TIME`` unless overridden), absolute.
    overrides : tuple[str, ...]
        The overrides as given.
    """

    settings: FedriskConfig
    run_dir: Path
    overrides: tuple[str, ...]


def compose(overrides: Sequence[str], *, consortium: ConsortiumConfig | None = None) -> Composed:
    """Compose and validate the configuration as ``fedrisk simulate`` does.

    ``consortium`` (the manifest's, `consortium_of`) replaces the composed consortium
    before validation, so rules that depend on the number of banks (e.g. an explicit
    ``secagg.threshold``) are checked against the real consortium, not the default.

    Raises
    ------
    ConfigError
        With one line naming the key or group, the value and what is allowed.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    if any(arg in ("-m", "--multirun") for arg in overrides):
        raise ConfigError("`--multirun` is for simulations; submit one run at a time")
    register_configs()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
            cfg = hydra_compose(
                config_name=CONFIG_NAME, overrides=list(overrides), return_hydra_config=True
            )
            run_dir = Path(str(cfg.hydra.run.dir))
            with open_dict(cfg):
                del cfg["hydra"]
    except (HydraException, OmegaConfBaseException) as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        raise ConfigError(lines[0] if lines else type(err).__name__) from None
    finally:
        GlobalHydra.instance().clear()
    container = OmegaConf.to_container(cfg, resolve=True)
    if not isinstance(container, dict):
        raise ConfigError("the configuration must be a mapping")
    if consortium is not None:
        container["consortium"] = OmegaConf.to_container(
            OmegaConf.structured(consortium), enum_to_str=True
        )
    settings = load_settings({str(key): value for key, value in container.items()})
    return Composed(settings=settings, run_dir=run_dir.resolve(), overrides=tuple(overrides))


def for_consortium(
    composed: Composed, manifest: ConsortiumManifest, *, schema: TableSchema | None
) -> FedriskConfig:
    """Fit the settings to a provisioned consortium.

    Parameters
    ----------
    composed : Composed
        The composed configuration.
    manifest : ConsortiumManifest
        The consortium's banks and budgets.
    schema : TableSchema | None
        The banks' table schema; ``None`` keeps ``task.schema``, or the synthetic
        generator's for ``task.source=synthetic_credit``.

    Returns
    -------
    FedriskConfig
        Settings whose consortium is the manifest's; ``faults`` cleared (they are for
        simulations); unless overridden, ``privacy.noise_source=os_entropy`` and every
        secure-aggregation stage timeout at least ``DEPLOYMENT_STAGE_TIMEOUT_S``.

    Raises
    ------
    ConfigError
        If the result is invalid (e.g. ``strategy.min_train_nodes`` above the number
        of banks), or no schema is known.
    """
    settings = composed.settings
    if schema is None:
        schema = settings.task.schema
    if schema is None and settings.task.source is DataSource.synthetic_credit:
        schema = credit_schema()
    if schema is None:
        raise ConfigError("`task.schema` must be set (or pass --schema FILE); got none")
    consortium = consortium_of(manifest)
    privacy = settings.privacy
    if not _overridden(composed, "privacy.noise_source"):
        privacy = dataclasses.replace(privacy, noise_source=NoiseSource.os_entropy)
    timeouts = settings.secagg.timeouts
    longer = {
        stage: max(getattr(timeouts, stage), DEPLOYMENT_STAGE_TIMEOUT_S)
        for stage in ("keys", "consistency", "unmask")
        if not _overridden(composed, f"secagg.timeouts.{stage}")
    }
    secagg = dataclasses.replace(settings.secagg, timeouts=dataclasses.replace(timeouts, **longer))
    try:  # replace() re-validates: the cross-group rules now see the real consortium
        fitted = dataclasses.replace(
            settings,
            consortium=consortium,
            task=dataclasses.replace(settings.task, schema=schema),
            privacy=privacy,
            secagg=secagg,
            faults=FaultsConfig(),
        )
    except (TypeError, ValueError) as err:
        raise ConfigError(str(err)) from None
    return load_settings(json.loads(settings_to_json(fitted)))


def consortium_of(manifest: ConsortiumManifest) -> ConsortiumConfig:
    """Return the consortium a run on ``manifest``'s banks is configured with.

    The banks' names and budgets are the manifest's; their row counts stand at
    ``UNKNOWN_ROWS``, since the coordinator never learns them.
    """
    return ConsortiumConfig(
        name=manifest.name,
        institutions=[
            InstitutionConfig(
                name=record.name,
                rows=UNKNOWN_ROWS,
                epsilon_budget=record.budget_epsilon,
                delta=record.budget_delta,
            )
            for record in manifest.institutions
        ],
    )


def _overridden(composed: Composed, key: str) -> bool:
    return any(item.lstrip("+~").startswith(f"{key}=") for item in composed.overrides)


def write_app(
    settings: FedriskConfig,
    *,
    run_dir: Path,
    test_path: Path,
    manifest_path: Path,
    run_id: str = "",
    resume: bool = False,
) -> Path:
    """Write the run's Flower App (one ``pyproject.toml``) under ``run_dir``; return it.

    The ServerApp and ClientApps are fedrisk's installed ones
    (``fedrisk.server.app:app``, ``fedrisk.client.app:app``); the bundle carries only
    their ``run_config``: the settings, the run directory, the held-out file and the
    manifest, all coordinator-side paths. No bank's data path is in it.

    ``run_id`` is fedrisk's run id (empty: Flower's run id serves); ``resume`` makes the
    ServerApp continue from the checkpoint in ``run_dir`` (see `fedrisk.deploy.resume`).

    Raises
    ------
    OSError
        If the file cannot be written.
    """
    import tomli_w

    run_config = build_run_config(
        settings,
        run_dir=str(run_dir),
        data_dir="",
        test_path=str(test_path.resolve()),
        institutions=[inst.name for inst in settings.consortium.institutions],
        manifest=str(manifest_path.resolve()),
        state_dir="",
        run_id=run_id,
        resume=resume,
    )
    project = {
        "build-system": {"requires": ["setuptools>=69"], "build-backend": "setuptools.build_meta"},
        "project": {"name": APP_NAME, "version": "1.0.0", "dependencies": []},
        "tool": {
            "flwr": {
                "app": {
                    "publisher": "fedrisk",
                    "components": {
                        "serverapp": "fedrisk.server.app:app",
                        "clientapp": "fedrisk.client.app:app",
                    },
                    "config": run_config,
                }
            }
        },
    }
    app = run_dir / APP_DIR
    app.mkdir(parents=True, exist_ok=True)
    (app / "pyproject.toml").write_text(tomli_w.dumps(project), encoding="utf-8")
    return app


def save_config(settings: FedriskConfig, path: Path) -> None:
    """Write the resolved settings as YAML (the run directory's ``config.yaml``)."""
    OmegaConf.save(OmegaConf.create(json.loads(settings_to_json(settings))), path)
