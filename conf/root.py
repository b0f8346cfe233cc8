"""The whole run's configuration: the root schema, its registration, and its loader.

Library code takes these plain dataclasses, never a ``DictConfig``. Three places build
them, all through :func:`load_settings`: the CLI after Hydra has composed the config,
and the ServerApp and ClientApp from Flower's ``run_config``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import Enum

from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from fedrisk.conf.consortium import ConsortiumConfig
from fedrisk.conf.explain import ExplainConfig
from fedrisk.conf.faults import FaultsConfig
from fedrisk.conf.privacy import ClippingSide, PrivacyConfig, PrivacyMode
from fedrisk.conf.secagg import SecAggConfig
from fedrisk.conf.strategy import StrategyConfig, StrategyName
from fedrisk.conf.task import TaskConfig
from fedrisk.conf.validation import ValidationConfig

SCHEMA_NAME = "fedrisk_schema"
RUN_CONFIG_KEY = "fedrisk-config"


class ConfigError(ValueError):
    """A configuration value is unknown or invalid; the message is one readable line."""


@dataclass
class SimulationConfig:
    """How Flower's simulation engine runs the consortium on this machine.

    Parameters
    ----------
    cpus_per_client : float (default: 1.0)
        CPUs Ray reserves for each ClientApp; 1 lets a 2-core machine train two
        institutions at once.
    baselines : bool (default: True)
        Also train the pooled and local-only comparison models.
    verbose : bool (default: False)
        Show Flower's and Ray's own log lines.
    policy_dir : str | None (default: None)
        A folder of bank policies (``<bank>.yaml``, as ``fedrisk consortium join``
        writes them) that the simulated nodes enforce instead of the policy built from
        this configuration (see :mod:`fedrisk.client.policy`).
    """

    cpus_per_client: float = field(default=1.0, metadata={"help": "CPUs per ClientApp"})
    baselines: bool = field(default=True, metadata={"help": "train pooled/local baselines"})
    verbose: bool = field(default=False, metadata={"help": "show Flower and Ray logs"})
    policy_dir: str | None = field(default=None, metadata={"help": "banks' policy files"})

    def __post_init__(self) -> None:
        if not self.cpus_per_client > 0:
            raise ValueError(
                f"`simulation.cpus_per_client` must be positive; got {self.cpus_per_client}"
            )


@dataclass
class FedriskConfig:
    """Root schema of ``config.yaml``.

    Parameters
    ----------
    rounds : int (default: 10)
        Federated rounds.
    seed : int (default: 42)
        Seed for data generation, initialisation, sampling and local training.
    round_timeout : float (default: 600.0)
        Seconds the server waits for replies in each training and evaluation message
        round (secure aggregation's extra stages have ``secagg.timeouts``); a bank that
        has not answered by then is a dropout for that round.
    roll_call_timeout : float (default: 600.0)
        Seconds the server waits for the roll call and for the ledgers at the end.
    consortium, task, strategy, privacy, secagg
        The config groups.
    simulation : SimulationConfig
        Simulation-engine settings (ignored by deployments).
    faults : FaultsConfig
        Failures injected into simulated institutions (ignored by deployments).
    validation : ValidationConfig
        What the coordinator checks in every update besides shapes, dtypes, finite
        values and the run/round binding.
    resume : str (default: "")
        A run directory to continue from its last checkpoint (``fedrisk simulate
        resume=RUN_DIR``; the run's own configuration is used).
    explain : ExplainConfig
        Explanations of the final global model (see :mod:`fedrisk.conf.explain`).
    """

    rounds: int = field(default=10, metadata={"help": "federated rounds"})
    seed: int = field(default=42, metadata={"help": "seed for everything random"})
    round_timeout: float = field(default=600.0, metadata={"help": "seconds per message round"})
    roll_call_timeout: float = field(
        default=600.0, metadata={"help": "seconds for the roll call and ledger collection"}
    )
    consortium: ConsortiumConfig = MISSING
    task: TaskConfig = MISSING
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    secagg: SecAggConfig = field(default_factory=SecAggConfig)
    simulation: SimulationConfig = field(default_factory=SimulationConfig)
    faults: FaultsConfig = field(default_factory=FaultsConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    resume: str = field(default="", metadata={"help": "run directory to resume"})
    explain: ExplainConfig = field(default_factory=ExplainConfig)

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise ValueError(f"`rounds` must be at least 1; got {self.rounds}")
        if not self.round_timeout > 0:
            raise ValueError(f"`round_timeout` must be positive; got {self.round_timeout}")
        if not self.roll_call_timeout > 0:
            raise ValueError(f"`roll_call_timeout` must be positive; got {self.roll_call_timeout}")
        self._check_across_groups()

    def _check_across_groups(self) -> None:
        """Rules that tie one config group to another, checked before anything runs."""
        consortium = self.consortium
        if consortium is not MISSING and isinstance(consortium, ConsortiumConfig):
            count = (
                consortium.generate.count
                if consortium.generate is not None
                else len(consortium.institutions)
            )
            if self.secagg.enabled:
                self.secagg.checked_for(count)
                self.faults.check_with_secagg()
            names = {i.name for i in consortium.institutions}
            if names:
                self.faults.check_institutions(names)
            if self.strategy.min_train_nodes > count:
                raise ValueError(
                    f"`strategy.min_train_nodes` must be at most the {count} institutions of "
                    f"consortium {consortium.name}; got {self.strategy.min_train_nodes}"
                )
        task = self.task
        if (
            self.privacy.mode is PrivacyMode.dpsgd
            and isinstance(task, TaskConfig)
            and task.train.pos_weight is None
        ):
            raise ValueError(
                "`task.train.pos_weight` must be a fixed number with privacy=dpsgd (a class "
                "weight computed from a bank's own labels is a release DP-SGD does not "
                "account for; e.g. task.train.pos_weight=19 for a 5% positive rate); got null"
            )
        if self.privacy.mode is PrivacyMode.central:
            if self.strategy.fraction_train != 1.0:
                raise ValueError(
                    "`strategy.fraction_train` must be 1.0 with privacy=central (Flower's "
                    "accountant assumes no sampling amplification); got "
                    f"{self.strategy.fraction_train}"
                )
            if self.strategy.name is StrategyName.fedadam:
                raise ValueError(
                    "`strategy` must be fedavg or fedprox with privacy=central (Flower's "
                    "accounted DP-FedAvg); got fedadam"
                )
            if self.secagg.enabled:
                self._check_central_with_secagg()

    def _check_central_with_secagg(self) -> None:
        if self.privacy.central_clipping_side is not ClippingSide.client:
            raise ValueError(
                "`privacy.central_clipping_side` must be client with secagg=secaggplus (the "
                "coordinator never sees one institution's update, so it cannot clip it); "
                f"got {self.privacy.central_clipping_side.value}"
            )
        if self.secagg.clip < self.privacy.central_clipping_norm:
            raise ValueError(
                "`secagg.clip` must be at least `privacy.central_clipping_norm` (a clipped "
                f"update's coordinates reach it); got {self.secagg.clip} < "
                f"{self.privacy.central_clipping_norm}"
            )


def register_configs() -> None:
    """Register the root schema with Hydra's ConfigStore (called by the entry point)."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name=SCHEMA_NAME, node=FedriskConfig)


def load_settings(mapping: Mapping[str, object]) -> FedriskConfig:
    """Validate a plain mapping against the schema and build the dataclasses.

    Parameters
    ----------
    mapping : Mapping[str, object]
        The composed configuration (without Hydra's own ``hydra`` key).

    Returns
    -------
    FedriskConfig
        The validated configuration.

    Raises
    ------
    ConfigError
        On an unknown key, a value of the wrong type or a value outside its range,
        with one line naming the key, the value and what is allowed.
    """
    try:
        merged = OmegaConf.merge(OmegaConf.structured(FedriskConfig), dict(mapping))
        settings = OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        raise ConfigError(_one_line(err)) from None
    except (ValueError, TypeError) as err:
        raise ConfigError(str(err)) from None
    if not isinstance(settings, FedriskConfig):
        raise ConfigError(f"configuration must be a mapping; got {type(settings).__name__}")
    return settings


def settings_to_json(settings: FedriskConfig) -> str:
    """Encode the configuration for Flower's ``run_config`` (enums as their values)."""
    return json.dumps(asdict(settings), default=_enum_value, sort_keys=True)


def settings_from_run_config(run_config: Mapping[str, object]) -> FedriskConfig:
    """Rebuild the configuration a ServerApp or ClientApp was started with.

    The result is cached per configuration string and shared: do not mutate it.

    Raises
    ------
    ConfigError
        If the run config lacks the fedrisk key or holds an invalid configuration.
    """
    raw = run_config.get(RUN_CONFIG_KEY)
    if not isinstance(raw, str):
        raise ConfigError(
            f"run config must carry the fedrisk configuration under `{RUN_CONFIG_KEY}`; "
            f"got keys {sorted(run_config)}"
        )
    return _settings_from_json(raw)


@functools.lru_cache(maxsize=16)
def _settings_from_json(raw: str) -> FedriskConfig:
    """Parse and validate once per configuration string and process.

    Validation through OmegaConf costs ~45 ms; a ClientApp sees the same string in
    every message of a run, so parsing it each time dominated a round's overhead
    (measured with ``benchmarks/round_time.py``). Callers treat the result as
    read-only (``dataclasses.replace`` to derive variants).
    """
    return load_settings(json.loads(raw))


def _enum_value(value: object) -> object:
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"cannot encode {type(value).__name__} in a run config")


def _one_line(err: OmegaConfBaseException) -> str:
    """Condense OmegaConf's multi-line message into ``key `a.b`: reason``."""
    reason = str(err).splitlines()[0].strip() if str(err) else type(err).__name__
    key = getattr(err, "full_key", None)
    return f"config key `{key}`: {reason}" if key else reason
