"""Who a node is, and its validated data, for one message."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, MetricRecord

from fedrisk.client.node_data import NodeData, load_node_data
from fedrisk.client.policy import (
    POLICY_FILE,
    LoadedPolicy,
    NodePolicy,
    PolicyError,
    load_policy,
    simulated_policy,
)
from fedrisk.client.policy_rules import check_run
from fedrisk.conf.root import FedriskConfig, settings_from_run_config
from fedrisk.data.schema import TableSchema
from fedrisk.data.schema_file import read_schema
from fedrisk.models.tabular import build_model
from fedrisk.strategies import WEIGHT_KEY, messages


@dataclass(frozen=True)
class NodeSetup:
    """What a node knows about itself for one message."""

    settings: FedriskConfig
    institution: str
    data: NodeData
    policy: NodePolicy


@dataclass(frozen=True)
class NodeIdentity:
    """Which institution a node is, where its table lies, and the policy it enforces."""

    settings: FedriskConfig
    institution: str
    path: Path
    policy: LoadedPolicy


def node_identity(context: Context) -> NodeIdentity:
    """Identify this node's institution and load its bank's policy (nothing else).

    Deployment: the node config names the institution, its table and its policy
    file. Simulation: the partition id picks the institution; its policy is
    ``simulation.policy_dir/<bank>.yaml`` if set, else built from the run's
    configuration (`fedrisk.client.policy.simulated_policy`).

    Raises
    ------
    ValueError
        If the node config names neither an institution nor a partition.
    fedrisk.client.policy.PolicyError
        If a deployed node has no policy, or the policy file is invalid.
    """
    settings = settings_from_run_config(context.run_config)
    node_config = context.node_config
    if messages.NODE_INSTITUTION in node_config:
        institution = str(node_config[messages.NODE_INSTITUTION])
        path = Path(str(node_config[messages.NODE_DATA_PATH]))
        if messages.NODE_POLICY not in node_config:
            raise PolicyError(
                f"{institution}'s node config must name its policy file (`policy`); write "
                f"one with `fedrisk consortium join` ({POLICY_FILE} in the bank's folder)"
            )
        policy = load_policy(Path(str(node_config[messages.NODE_POLICY])))
        if policy.schema is None and messages.NODE_SCHEMA in node_config:
            own = own_schema(Path(str(node_config[messages.NODE_SCHEMA])))
            policy = LoadedPolicy(policy=policy.policy, schema=own)
    elif messages.PARTITION_ID in node_config:
        names = messages.institutions_of(context.run_config)
        institution = names[int(node_config[messages.PARTITION_ID])]
        path = Path(str(context.run_config[messages.DATA_DIR])) / institution / "train.parquet"
        folder = settings.simulation.policy_dir
        policy = (
            load_policy(Path(folder) / f"{institution}.yaml")
            if folder
            else LoadedPolicy(simulated_policy(settings, institution), schema=None)
        )
    else:
        raise ValueError(
            f"node config must set `institution` and `data-path`; got keys {sorted(node_config)}"
        )
    return NodeIdentity(settings=settings, institution=institution, path=path, policy=policy)


def own_schema(path: Path) -> TableSchema:
    """Read the bank's own schema file, once per distinct content.

    Raises
    ------
    fedrisk.client.policy.PolicyError
        If the file cannot be read or is not a valid schema.
    """
    try:
        return _schema_of(path.read_bytes(), path)
    except (OSError, ValueError) as err:
        raise PolicyError(f"the node's schema file {path}: {err}") from None


@functools.lru_cache(maxsize=8)
def _schema_of(data: bytes, path: Path) -> TableSchema:
    del data  # the cache key: a changed file is read again
    return read_schema(path)


def checked_identity(context: Context) -> NodeIdentity:
    """Identify the node and check the run against its bank's policy.

    Raises
    ------
    fedrisk.client.policy_rules.PolicyRefusal
        Naming the rule the run breaks.
    """
    identity = node_identity(context)
    check_run(
        identity.settings,
        identity.policy,
        institution=identity.institution,
        institutions=len(_institutions(context)),
    )
    return identity


def _institutions(context: Context) -> list[str]:
    try:
        return messages.institutions_of(context.run_config)
    except ValueError:
        return []


def node_setup(context: Context) -> NodeSetup:
    """Identify this node's institution, check its policy and load its validated data.

    The validation split follows the policy's secret seed, never the coordinator's.

    Raises
    ------
    ValueError
        If the node config names neither an institution nor a partition.
    fedrisk.client.policy_rules.PolicyRefusal
        If the run asks for less than the bank's policy.
    fedrisk.data.errors.DataValidationError
        If the institution's table fails validation.
    """
    identity = checked_identity(context)
    settings = identity.settings
    if settings.task.schema is None:
        raise ValueError("`task.schema` must be resolved before the run starts; got None")
    data = load_node_data(
        identity.path,
        settings.task.schema,
        institution=identity.institution,
        min_rows=settings.task.train.batch_size,
        seed=identity.policy.policy.validation_seed,
    )
    return NodeSetup(
        settings=settings,
        institution=identity.institution,
        data=data,
        policy=identity.policy.policy,
    )


def local_model(setup: NodeSetup, arrays: ArrayRecord) -> torch.nn.Module:
    """Build the task model with the received weights."""
    model = build_model(setup.settings.task.model, setup.data.x_train.shape[1], seed=0)
    model.load_state_dict(arrays.to_torch_state_dict())
    return model


def node_record(setup: NodeSetup) -> ConfigRecord:
    """Build the record that names this institution in every reply."""
    return ConfigRecord({messages.INSTITUTION: setup.institution})


def row_metrics(setup: NodeSetup) -> MetricRecord:
    """Build the metrics that carry the training-row count.

    Empty under secure aggregation: there the count travels only masked.
    """
    if setup.settings.secagg.enabled:
        return MetricRecord()
    return MetricRecord({WEIGHT_KEY: setup.data.n_train})


def run_id_of(context: Context) -> str:
    """Return fedrisk's run id (stable across a resume), else Flower's run id."""
    return messages.run_id_of(context.run_config) or str(context.run_id)
