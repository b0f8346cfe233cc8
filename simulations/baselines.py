"""What federation is compared against: pooled data, each bank alone, and the oracle.

The pooled model is what the consortium would get if it could share rows; each
local-only model is what a bank gets on its own. Both train on exactly the rows
(and validation split) the institutions train on in the federation, for the same
number of passes over their data (rounds × local epochs), and are scored on the
same held-out set as the global model.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from fedrisk.client.node_data import NodeData, institution_seed, load_node_data
from fedrisk.client.trainer import train_local
from fedrisk.conf.root import FedriskConfig
from fedrisk.models.metrics import risk_metrics
from fedrisk.models.tabular import build_model, predict_proba
from fedrisk.server.evaluation import HeldOutSet
from fedrisk.simulations.consortium import TRAIN_FILE, BuiltConsortium


@dataclass(frozen=True)
class Baselines:
    """Held-out metrics of the comparison models."""

    pooled: dict[str, float]
    local_only: dict[str, dict[str, float]]
    oracle_auc: float | None


def run_baselines(settings: FedriskConfig, built: BuiltConsortium) -> Baselines:
    """Train the pooled and local-only models and score the oracle.

    Parameters
    ----------
    settings : FedriskConfig
        The run's configuration (with ``task.schema`` resolved).
    built : BuiltConsortium
        The consortium's files.

    Returns
    -------
    Baselines
        Held-out metrics of every comparison model.
    """
    held_out = HeldOutSet.load(built.test_path, built.schema)
    nodes = {
        name: load_node_data(
            built.data_dir / name / TRAIN_FILE,
            built.schema,
            institution=name,
            min_rows=settings.task.train.batch_size,
            seed=settings.seed,
        )
        for name in built.institutions
    }
    local_only = {
        name: _fit_and_score(settings, [node], held_out, label=name) for name, node in nodes.items()
    }
    pooled = _fit_and_score(settings, list(nodes.values()), held_out, label="pooled")
    oracle = None
    if built.oracle_scores is not None:
        oracle = risk_metrics(held_out.y, built.oracle_scores)["auc"]
    return Baselines(pooled=pooled, local_only=local_only, oracle_auc=oracle)


def _fit_and_score(
    settings: FedriskConfig, nodes: list[NodeData], held_out: HeldOutSet, *, label: str
) -> dict[str, float]:
    x = np.concatenate([n.x_train for n in nodes])
    y = np.concatenate([n.y_train for n in nodes])
    model = build_model(settings.task.model, x.shape[1], seed=settings.seed)
    spec = replace(settings.task.train, epochs=settings.task.train.epochs * settings.rounds)
    train_local(model, x, y, spec, seed=institution_seed(settings.seed, label))
    task = settings.task
    return risk_metrics(
        held_out.y,
        predict_proba(model, held_out.x),
        threshold=task.threshold,
        fpr=task.false_alarm_rate,
        cost_ratio=task.cost_ratio,
    )
