"""Evaluation of the global model: centrally on a held-out set, and federated."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from flwr.app import ArrayRecord, Message

from fedrisk.data.encoding import TableEncoder
from fedrisk.data.loading import load_table
from fedrisk.data.schema import TableSchema
from fedrisk.models.metrics import risk_metrics
from fedrisk.models.spec import ModelSpec
from fedrisk.models.tabular import build_model, predict_proba
from fedrisk.strategies import WEIGHT_KEY, messages


@dataclass(frozen=True)
class HeldOutSet:
    """The coordinator's held-out rows, encoded once."""

    x: np.ndarray
    y: np.ndarray

    @classmethod
    def load(cls, path: str | Path, schema: TableSchema) -> HeldOutSet:
        """Load and validate the held-out table.

        Raises
        ------
        fedrisk.data.errors.DataValidationError
            If the table fails validation.
        """
        table = load_table(path, schema, min_rows=1)
        encoder = TableEncoder(schema)
        return cls(x=encoder.encode(table), y=encoder.labels(table))


class CentralEvaluator:
    """Scores ArrayRecords of a fixed architecture on the held-out set.

    Parameters
    ----------
    spec : ModelSpec
        The global model's architecture.
    held_out : HeldOutSet
        Rows to evaluate on.
    threshold : float
        Decision threshold for accuracy and recall.
    """

    def __init__(self, spec: ModelSpec, held_out: HeldOutSet, *, threshold: float) -> None:
        self._model = build_model(spec, held_out.x.shape[1], seed=0)
        self._held_out = held_out
        self._threshold = threshold

    def model_for(self, arrays: ArrayRecord) -> torch.nn.Module:
        """Load ``arrays`` into the evaluator's model and return it."""
        self._model.load_state_dict(arrays.to_torch_state_dict())
        return self._model

    def __call__(self, arrays: ArrayRecord) -> dict[str, float]:
        """Risk metrics of ``arrays`` on the held-out set."""
        scores = predict_proba(self.model_for(arrays), self._held_out.x)
        return risk_metrics(self._held_out.y, scores, threshold=self._threshold)


def federated_metrics(
    replies: Iterable[Message], *, name_of: Callable[[Message], str]
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Per-institution evaluation metrics and their example-weighted means.

    ``name_of`` maps a reply to its institution by the coordinator's roster (the
    node id), never by what the reply claims.

    A metric an institution could not compute (e.g. AUC on a one-class validation
    set) is left out of that institution's entry and of the mean's weights.
    """
    per_bank: dict[str, dict[str, float]] = {}
    for reply in replies:
        if reply.has_error():
            continue
        record = messages.metrics_of(reply.content)
        per_bank[name_of(reply)] = {k: messages.number(record, k) for k in record}
    sums: dict[str, float] = {}
    weights: dict[str, float] = {}
    for metrics in per_bank.values():
        n = metrics.get(WEIGHT_KEY, 0.0)
        for key, value in metrics.items():
            if key == WEIGHT_KEY or not math.isfinite(value):
                continue
            sums[key] = sums.get(key, 0.0) + n * value
            weights[key] = weights.get(key, 0.0) + n
    mean = {k: sums[k] / weights[k] for k in sorted(sums) if weights[k] > 0}
    return mean, dict(sorted(per_bank.items()))
