"""The bank's own policy: what its node allows, kept at the bank and loaded by the node.

A coordinator runs rounds; it does not decide how private a bank's customers are. The
policy fixes the privacy mechanism a bank requires and its least noise, its budget over
all runs and datasets, the randomness of its noise, whether secure aggregation is
required (and how strong), which extra releases the node makes, the bank's own schema
and the secret seed of its validation split. ``fedrisk consortium join`` writes one
(`write_policy`); ``fedrisk node`` hands its path to the SuperNode (node config key
``policy``); simulations build one per simulated bank from the run's configuration
(`simulated_policy`), or read ``simulation.policy_dir/<bank>.yaml``, so the same checks
run everywhere (`fedrisk.client.policy_rules`).
"""

from __future__ import annotations

import functools
import secrets
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from fedrisk.conf.privacy import NoiseSource, PrivacyMode
from fedrisk.conf.root import FedriskConfig
from fedrisk.data.schema import TableSchema
from fedrisk.data.schema_file import read_schema
from fedrisk.secure.files import write_new_file

POLICY_FILE = "policy.yaml"
#: The population every ledger belongs to unless the bank's policy names a new one.
DEFAULT_POPULATION = "default"
#: The least share of a secret's holders whose shares unmask it (Bonawitz et al.'s
#: active-adversary bound: a threshold strictly above 2/3).
ACTIVE_THRESHOLD_FRACTION = 2.0 / 3.0


class PolicyError(ValueError):
    """A policy file is missing, malformed or invalid; the message names the file and field."""


class RequiredMechanism(str, Enum):
    """The record-level mechanism a bank requires of every run it trains in."""

    dpsgd = "dpsgd"
    none = "none"


@dataclass
class PrivacyRules:
    """What the bank requires of the privacy mechanism.

    Parameters
    ----------
    mechanism : RequiredMechanism (default: dpsgd)
        ``dpsgd``: every run must train with record-level DP-SGD at this node;
        ``none``: the bank accepts runs without DP (simulations, public data).
    min_noise_multiplier : float (default: 0.5)
        The least DP-SGD noise multiplier the node trains with, whatever is calibrated
        or configured.
    max_epsilon_per_run : float | None (default: None)
        The most ε one run may spend; the node plans its noise for at most this and
        refuses a round that would pass it.
    epsilon_budget, delta : float (default: 8.0, 1e-5)
        The bank's budget over all its runs and datasets of one population.
    population : str (default: "default")
        Ledgers of one population compose: a changed or reordered table does not get a
        fresh budget. Name a new population only for genuinely new customers.
    allow_seeded_noise : bool (default: False)
        Simulations only: a policy file that allows seeded noise is refused.
    """

    mechanism: RequiredMechanism = RequiredMechanism.dpsgd
    min_noise_multiplier: float = 0.5
    max_epsilon_per_run: float | None = None
    epsilon_budget: float = 8.0
    delta: float = 1e-5
    population: str = DEFAULT_POPULATION
    allow_seeded_noise: bool = False

    def __post_init__(self) -> None:
        self.mechanism = RequiredMechanism(self.mechanism)
        if not self.min_noise_multiplier >= 0:
            raise ValueError(
                "`privacy.min_noise_multiplier` must be at least 0; "
                f"got {self.min_noise_multiplier}"
            )
        if self.max_epsilon_per_run is not None and not self.max_epsilon_per_run > 0:
            raise ValueError(
                f"`privacy.max_epsilon_per_run` must be positive; got {self.max_epsilon_per_run}"
            )
        if not self.epsilon_budget > 0:
            raise ValueError(
                f"`privacy.epsilon_budget` must be positive; got {self.epsilon_budget}"
            )
        if not 0.0 < self.delta < 1.0:
            raise ValueError(f"`privacy.delta` must be in (0, 1); got {self.delta}")
        if not self.population or not self.population.replace("-", "").replace("_", "").isalnum():
            raise ValueError(
                f"`privacy.population` must be letters, digits, '-' or '_'; got {self.population!r}"
            )


@dataclass
class SecAggRules:
    """What the bank requires of secure aggregation.

    Parameters
    ----------
    required : bool (default: True)
        Train only in runs whose updates are securely aggregated.
    min_threshold_fraction : float (default: 2/3)
        A secret's threshold must exceed this share of its holders.
    consistency_check : bool (default: True)
        Require the consistency round (survivors sign the survivor set first).
    """

    required: bool = True
    min_threshold_fraction: float = ACTIVE_THRESHOLD_FRACTION
    consistency_check: bool = True

    def __post_init__(self) -> None:
        if not 0.5 <= self.min_threshold_fraction < 1.0:
            raise ValueError(
                "`secagg.min_threshold_fraction` must be in [0.5, 1); "
                f"got {self.min_threshold_fraction}"
            )


@dataclass
class ReleaseRules:
    """Which releases besides the (private) update the node makes.

    Parameters
    ----------
    evaluation : bool (default: True)
        Validation metrics of a global model; only of models this node was sent to
        train from in the run, and of the run's final model once.
    min_evaluation_rows : int (default: 100)
        The fewest validation rows any metric is computed over.
    explanations : bool (default: False)
        Explanations of the final model (sums over at least ``min_explanation_rows``).
    min_explanation_rows : int (default: 200)
        The fewest rows an explanation sums over.
    risk_counts : bool (default: True)
        The end-of-run risk metrics and fairness counts of the final model.
    train_loss : bool (default: False)
        The local training loss, in the clear, with every update.
    """

    evaluation: bool = True
    min_evaluation_rows: int = 100
    explanations: bool = False
    min_explanation_rows: int = 200
    risk_counts: bool = True
    train_loss: bool = False

    def __post_init__(self) -> None:
        for name in ("min_evaluation_rows", "min_explanation_rows"):
            if getattr(self, name) < 1:
                raise ValueError(f"`releases.{name}` must be at least 1; got {getattr(self, name)}")


@dataclass
class NodePolicy:
    """A bank's policy, enforced by its node before anything trains or leaves.

    Parameters
    ----------
    institution : str
        The bank this policy belongs to.
    validation_seed : int
        Secret seed of the bank's validation split (the coordinator never chooses it).
    schema : str | None (default: None)
        The bank's own schema file (relative to the policy file); a run's schema must
        hold the same columns (in any order). ``None``: the run's schema is taken as is
        (simulations only).
    privacy, secagg, releases
        The rules above.
    simulated : bool (default: False)
        Built by a simulation: seeded noise may be allowed.
    """

    institution: str
    validation_seed: int
    schema: str | None = None
    privacy: PrivacyRules = field(default_factory=PrivacyRules)
    secagg: SecAggRules = field(default_factory=SecAggRules)
    releases: ReleaseRules = field(default_factory=ReleaseRules)
    simulated: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.privacy, dict):
            self.privacy = PrivacyRules(**self.privacy)
        if isinstance(self.secagg, dict):
            self.secagg = SecAggRules(**self.secagg)
        if isinstance(self.releases, dict):
            self.releases = ReleaseRules(**self.releases)
        if not self.institution:
            raise ValueError("`institution` must name the bank; got ''")
        if self.privacy.allow_seeded_noise and not self.simulated:
            raise ValueError(
                "`privacy.allow_seeded_noise` must be false outside simulation (seeded DP "
                "noise can be subtracted by anyone who knows the seed); got true"
            )


@dataclass(frozen=True)
class LoadedPolicy:
    """A validated policy and the bank's own schema it names (if any)."""

    policy: NodePolicy
    schema: TableSchema | None


def load_policy(path: Path) -> LoadedPolicy:
    """Read and validate a policy file and the schema file it names.

    Raises
    ------
    PolicyError
        Naming the file and the field, if either file is missing or invalid.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise PolicyError(
            f"{path}: the node's policy cannot be read ({err.strerror}); write one with "
            "`fedrisk consortium join`"
        ) from None
    return _parsed(data, path)


@functools.lru_cache(maxsize=16)
def _parsed(data: bytes, path: Path) -> LoadedPolicy:
    try:
        raw = OmegaConf.create(data.decode("utf-8"))
        merged = OmegaConf.merge(OmegaConf.structured(NodePolicy), raw)
        policy = OmegaConf.to_object(merged)
    except (OmegaConfBaseException, UnicodeDecodeError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise PolicyError(f"{path}: {reason}") from None
    except (ValueError, TypeError) as err:
        raise PolicyError(f"{path}: {err}") from None
    if not isinstance(policy, NodePolicy):
        raise PolicyError(f"{path}: must be a mapping of policy fields")
    if policy.simulated:
        raise PolicyError(f"{path}: `simulated` must be false in a policy file; got true")
    schema = None
    if policy.schema is not None:
        schema_path = (path.parent / policy.schema).resolve()
        try:
            schema = read_schema(schema_path)
        except (OSError, ValueError) as err:
            raise PolicyError(f"{path}: `schema` {schema_path}: {err}") from None
    return LoadedPolicy(policy=policy, schema=schema)


def write_policy(
    folder: Path,
    *,
    institution: str,
    schema_file: str | None = None,
    epsilon_budget: float = 8.0,
    delta: float = 1e-5,
) -> Path:
    """Write a bank's policy with the defaults above and a fresh secret validation seed.

    The file (mode 0600: the seed is secret) is the bank's to edit; the node reads it
    at every message.

    Raises
    ------
    FileExistsError
        If the folder already holds a policy.
    """
    policy = NodePolicy(
        institution=institution,
        validation_seed=secrets.randbits(63),
        schema=schema_file,
        privacy=PrivacyRules(epsilon_budget=epsilon_budget, delta=delta),
    )
    text = OmegaConf.to_yaml(OmegaConf.structured(policy))
    header = (
        f"# {institution}'s policy: the node refuses any run that asks for less.\n"
        "# Kept at the bank; the coordinator never sees it. See README, 'Trust model'.\n"
    )
    path = Path(folder) / POLICY_FILE
    write_new_file(path, (header + text).encode("utf-8"), private=True)
    return path


def simulated_policy(settings: FedriskConfig, institution: str) -> NodePolicy:
    """Build the policy a simulated bank holds: exactly what the run's configuration asks.

    Simulations exercise every check with it; they may use seeded noise (and say so in
    the ledger), and the validation split follows the run's seed so results reproduce.
    """
    privacy, secagg = settings.privacy, settings.secagg
    dpsgd = privacy.mode is PrivacyMode.dpsgd
    epsilon_budget, delta = _budget_of(settings, institution)
    return NodePolicy(
        institution=institution,
        validation_seed=settings.seed,
        privacy=PrivacyRules(
            mechanism=RequiredMechanism.dpsgd if dpsgd else RequiredMechanism.none,
            min_noise_multiplier=0.0,
            epsilon_budget=epsilon_budget,
            delta=delta,
            allow_seeded_noise=privacy.noise_source is NoiseSource.seeded,
        ),
        secagg=SecAggRules(
            required=secagg.enabled,
            min_threshold_fraction=0.5,
            consistency_check=secagg.consistency_check,
        ),
        releases=ReleaseRules(
            evaluation=True,
            min_evaluation_rows=1,
            explanations=settings.explain.enabled is not False,
            min_explanation_rows=1,
            risk_counts=True,
            train_loss=True,
        ),
        simulated=True,
    )


def _budget_of(settings: FedriskConfig, institution: str) -> tuple[float, float]:
    for entry in settings.consortium.institutions:
        if entry.name == institution:
            return (
                entry.epsilon_budget or settings.privacy.epsilon_budget,
                entry.delta or settings.privacy.delta,
            )
    return settings.privacy.epsilon_budget, settings.privacy.delta
