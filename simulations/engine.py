"""The one place that starts Flower's simulation engine.

flwr 1.41 deprecates ``flwr.simulation.run_simulation`` in favour of ``flwr run``;
keeping the call here makes switching a one-module change.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping

from fedrisk.client.app import make_client_app
from fedrisk.server.app import make_server_app


def simulation_backend(*, n_institutions: int, cpus_per_client: float) -> dict[str, object]:
    """Ray backend settings: one CPU per ClientApp by default, every core in use."""
    cores = os.cpu_count() or 1
    return {
        "client_resources": {"num_cpus": cpus_per_client, "num_gpus": 0.0},
        "init_args": {
            "num_cpus": cores,
            "include_dashboard": False,
            "log_to_driver": False,
            "logging_level": logging.ERROR,
        },
    }


def run_consortium(
    run_config: Mapping[str, str], *, n_institutions: int, cpus_per_client: float, verbose: bool
) -> None:
    """Run one simulated federation with Flower's simulation engine (Ray backend).

    Parameters
    ----------
    run_config : Mapping[str, str]
        The run config the ServerApp and ClientApps read (see
        :func:`fedrisk.strategies.messages.build_run_config`).
    n_institutions : int
        Virtual SuperNodes to start, one per institution.
    cpus_per_client : float
        CPUs Ray reserves for each ClientApp.
    verbose : bool
        Keep Flower's own INFO log lines.
    """
    from flwr.simulation import run_simulation

    flwr_logger = logging.getLogger("flwr")
    if not verbose:
        # Flower warns on every call that run_simulation is deprecated (see above), and
        # its INFO lines would bury the progress bar; errors still reach the terminal.
        flwr_logger.setLevel(logging.ERROR)
        flwr_logger.propagate = False
        warnings.filterwarnings("ignore", category=FutureWarning, module="ray")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    run_simulation(
        server_app=make_server_app(run_config),
        client_app=make_client_app(run_config),
        num_supernodes=n_institutions,
        backend_config=simulation_backend(  # type: ignore[arg-type]
            n_institutions=n_institutions, cpus_per_client=cpus_per_client
        ),
        verbose_logging=verbose,
    )
