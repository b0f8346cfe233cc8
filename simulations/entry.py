"""``fedrisk simulate``: compose the Hydra config, build the consortium, run, compare.

Hydra owns the command line (overrides, ``--multirun``, ``hydra.run.dir=…``) and the
run directory. Expected failures (a bad override, an invalid value, bad data) end
the process with one readable line and exit code 2, never a traceback.
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig, OmegaConf

from fedrisk.conf.root import ConfigError, FedriskConfig, load_settings, register_configs
from fedrisk.data.errors import DataValidationError
from fedrisk.privacy.ledger import LedgerTampered
from fedrisk.server.roll_call import RollCallError
from fedrisk.simulations.resume import resume_dir, resumed_config
from fedrisk.strategies.messages import build_run_config

if TYPE_CHECKING:
    from fedrisk.simulations.consortium import BuiltConsortium

#: Called with the resolved settings and the written data, before the federation starts
#: (e.g. to insert audit canaries into one institution's file).
DataHook = Callable[[FedriskConfig, "BuiltConsortium"], None]

CONFIG_MODULE = "fedrisk.conf"
CONFIG_NAME = "config"
EXIT_USAGE = 2


class SimulationError(RuntimeError):
    """A simulation could not run; the message is one readable line."""


#: Failures the user can fix: one line on stderr and :data:`EXIT_USAGE`, no traceback.
_EXPECTED = (ConfigError, DataValidationError, RollCallError, SimulationError, LedgerTampered)


def _refuse(err: Exception) -> int:
    """Print ``err`` as the command's one-line error; return :data:`EXIT_USAGE`."""
    print(f"fedrisk simulate: {err}", file=sys.stderr)
    return EXIT_USAGE


def simulate(argv: Sequence[str], *, data_hook: DataHook | None = None) -> int:
    """Run ``fedrisk simulate`` with Hydra overrides; return the exit code.

    ``data_hook``, if given, is passed on to :func:`run_simulation_job`.
    """
    import hydra

    register_configs()
    multirun = any(a in ("-m", "--multirun") for a in argv)
    resume = None if multirun else resume_dir(argv)
    if resume is not None:
        return _resume(resume, argv, data_hook=data_hook)
    if not multirun and not any(a.startswith("-") for a in argv):
        try:
            check_overrides(argv)
        except ConfigError as err:
            return _refuse(err)

    @hydra.main(config_path=f"pkg://{CONFIG_MODULE}", config_name=CONFIG_NAME, version_base="1.3")
    def _job(cfg: DictConfig) -> None:
        from hydra.core.hydra_config import HydraConfig

        run_dir = Path(HydraConfig.get().runtime.output_dir)
        try:
            run_simulation_job(cfg, run_dir, data_hook=data_hook)
        except _EXPECTED as err:
            sys.exit(_refuse(err))

    saved = sys.argv
    sys.argv = ["fedrisk simulate", *argv]
    try:
        _job()
    finally:
        sys.argv = saved
    return 0


def _resume(run_dir: Path, argv: Sequence[str], *, data_hook: DataHook | None) -> int:
    """``fedrisk simulate resume=RUN_DIR``: continue the run from its checkpoint."""
    try:
        cfg, run_id = resumed_config(run_dir, argv)
        run_simulation_job(cfg, run_dir, data_hook=data_hook, run_id=run_id)
    except _EXPECTED as err:
        return _refuse(err)
    return 0


def check_overrides(overrides: Sequence[str]) -> FedriskConfig:
    """Compose and validate the configuration without running anything.

    Raises
    ------
    ConfigError
        With one line naming the key or group, the value and what is allowed.
    """
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    register_configs()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
            cfg = compose(config_name=CONFIG_NAME, overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError(_hydra_one_line(err)) from None
    finally:
        GlobalHydra.instance().clear()
    return load_settings(OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]


def run_simulation_job(
    cfg: DictConfig, run_dir: Path, *, data_hook: DataHook | None = None, run_id: str = ""
) -> dict:
    """One simulated run: data, federation, baselines, records, comparison table.

    ``data_hook(settings, built)`` runs after the institutions' files are written and
    before anything reads them; it may rewrite them in place. ``run_id`` is fedrisk's
    run id (a fresh one when empty); with ``resume`` set in ``cfg`` the server continues
    from the checkpoint in ``run_dir``.
    """
    import torch
    from rich.console import Console

    from fedrisk.conf.privacy import PrivacyMode
    from fedrisk.simulations.baselines import run_baselines
    from fedrisk.simulations.consortium import (
        build_consortium,
        institution_profiles,
        resolve_schema,
        table_institutions,
    )
    from fedrisk.simulations.engine import run_consortium
    from fedrisk.simulations.provision import provision
    from fedrisk.simulations.report import merge_summary, print_comparison

    settings = resolve_schema(load_settings(OmegaConf.to_container(cfg, resolve=True)))  # type: ignore[arg-type]
    run_dir.mkdir(parents=True, exist_ok=True)
    if settings.resume:
        (run_dir / "summary.json").unlink(missing_ok=True)
    else:
        OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    run_id = run_id or secrets.token_hex(8)
    console = Console(stderr=False)
    started = time.perf_counter()
    built = build_consortium(settings, run_dir / "data")
    if data_hook is not None:
        data_hook(settings, built)
    console.print(
        f"[bold]fedrisk[/bold] simulating consortium [cyan]{settings.consortium.name}[/cyan]: "
        f"{len(built.institutions)} institutions, task {settings.task.name}, strategy "
        f"{settings.strategy.name.value}, privacy {settings.privacy.mode.value}, "
        f"secure aggregation {settings.secagg.mode.value}, "
        f"{settings.rounds} rounds, seed {settings.seed} → {run_dir}"
    )
    # Every simulated bank gets its own signing key and the run a manifest, whatever the
    # privacy mode: nodes prove their institution in the roll call as in deployment.
    profiles = institution_profiles(settings.consortium, seed=settings.seed)
    if {p.name for p in profiles} != set(built.institutions):
        profiles = table_institutions(built)  # banks split from a real table
    provisioned = provision(settings, profiles, run_dir=run_dir)
    run_config = build_run_config(
        settings,
        run_dir=str(run_dir),
        data_dir=str(built.data_dir),
        test_path=str(built.test_path),
        institutions=built.institutions,
        manifest=str(provisioned.manifest_path),
        state_dir=str(provisioned.state_dir),
        run_id=run_id,
        resume=bool(settings.resume),
    )
    run_consortium(
        run_config,
        n_institutions=len(built.institutions),
        cpus_per_client=settings.simulation.cpus_per_client,
        verbose=settings.simulation.verbose,
    )
    if not (run_dir / "summary.json").exists():
        raise SimulationError(f"the federation ended without a summary; see the log in {run_dir}")
    federated_seconds = time.perf_counter() - started
    baselines = None
    if settings.simulation.baselines:
        torch.set_num_threads(os.cpu_count() or 1)
        console.print("training the pooled and local-only comparison models …")
        baselines = run_baselines(settings, built)
    summary = merge_summary(
        run_dir,
        baselines,
        {
            "consortium": settings.consortium.name,
            "task": settings.task.name,
            "seeded": True,
            "randomness": (
                settings.privacy.noise_source.value
                if settings.privacy.mode in (PrivacyMode.dpsgd, PrivacyMode.central)
                else "seeded"
            ),
            "seconds": {"federation": federated_seconds, "total": time.perf_counter() - started},
        },
    )
    print_comparison(summary, console)
    console.print(f"run directory: {run_dir}")
    return summary


def _hydra_one_line(err: BaseException) -> str:
    """Condense Hydra's multi-line message and its cause into one line."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    head = lines[0] if lines else type(err).__name__
    if len(lines) > 1 and lines[1].startswith("Available options"):
        options = []
        for line in lines[2:]:
            if line.startswith("Config search path"):
                break
            options.append(line)
        return f"{head}; available: {', '.join(options)}"
    cause = err.__cause__
    if cause is not None and str(cause).strip():
        reason = str(cause).strip().splitlines()[0]
        if "is not in struct" in reason:
            reason = "no such key in the schema (see `fedrisk simulate --cfg job`)"
        return f"{head.rstrip('.')}: {reason}"
    return head
