"""Who a node is, and its validated data, for one message."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, MetricRecord

from fedrisk.client.node_data import NodeData, load_node_data
from fedrisk.conf.root import FedriskConfig, settings_from_run_config
from fedrisk.models.tabular import build_model
from fedrisk.strategies import WEIGHT_KEY, messages


@dataclass(frozen=True)
class NodeSetup:
    """What a node knows about itself for one message."""

    settings: FedriskConfig
    institution: str
    data: NodeData


def node_setup(context: Context) -> NodeSetup:
    """Identify this node's institution and load its validated data.

    Raises
    ------
    ValueError
        If the node config names neither an institution nor a partition.
    fedrisk.data.errors.DataValidationError
        If the institution's table fails validation.
    """
    settings = settings_from_run_config(context.run_config)
    node_config = context.node_config
    if messages.NODE_INSTITUTION in node_config:
        institution = str(node_config[messages.NODE_INSTITUTION])
        path = Path(str(node_config[messages.NODE_DATA_PATH]))
    elif messages.PARTITION_ID in node_config:
        names = messages.institutions_of(context.run_config)
        institution = names[int(node_config[messages.PARTITION_ID])]
        path = Path(str(context.run_config[messages.DATA_DIR])) / institution / "train.parquet"
    else:
        raise ValueError(
            f"node config must set `institution` and `data-path`; got keys {sorted(node_config)}"
        )
    if settings.task.schema is None:
        raise ValueError("`task.schema` must be resolved before the run starts; got None")
    data = load_node_data(
        path,
        settings.task.schema,
        institution=institution,
        min_rows=settings.task.train.batch_size,
        seed=settings.seed,
    )
    return NodeSetup(settings=settings, institution=institution, data=data)


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
