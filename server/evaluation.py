"""Evaluation of the global model: centrally on a held-out set, and federated."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
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
    """The coordinator's held-out rows, encoded once.

    Attributes
    ----------
    x, y : numpy.ndarray
        Encoded features and labels.
    groups : dict[str, numpy.ndarray]
        Each protected attribute's values (as strings), for the global fairness figures.
    """

    x: np.ndarray
    y: np.ndarray
    groups: dict[str, np.ndarray] = field(default_factory=dict)

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
        return cls(
            x=encoder.encode(table),
            y=encoder.labels(table),
            groups={name: table[name].to_numpy(dtype=str) for name in schema.protected_columns},
        )


class CentralEvaluator:
    """Scores ArrayRecords of a fixed architecture on the held-out set.

    Parameters
    ----------
    spec : ModelSpec
        The global model's architecture.
    held_out : HeldOutSet
        Rows to evaluate on.
    threshold : float
        Decision threshold for accuracy, recall and expected cost.
    fpr : float (default: 0.01)
        False-alarm budget of ``recall_at_fpr`` (``task.false_alarm_rate``).
    cost_ratio : float (default: 1.0)
        Cost of a missed positive over a false alarm (``task.cost_ratio``).
    """

    def __init__(
        self,
        spec: ModelSpec,
        held_out: HeldOutSet,
        *,
        threshold: float,
        fpr: float = 0.01,
        cost_ratio: float = 1.0,
    ) -> None:
        self._model = build_model(spec, held_out.x.shape[1], seed=0)
        self._held_out = held_out
        self._threshold = threshold
        self._fpr = fpr
        self._cost_ratio = cost_ratio

    @property
    def held_out(self) -> HeldOutSet:
        """The rows the evaluator scores on."""
        return self._held_out

    def scores(self, arrays: ArrayRecord) -> np.ndarray:
        """Predicted probabilities of ``arrays`` on the held-out rows."""
        return predict_proba(self.model_for(arrays), self._held_out.x)

    def model_for(self, arrays: ArrayRecord) -> torch.nn.Module:
        """Load ``arrays`` into the evaluator's model and return it."""
        self._model.load_state_dict(arrays.to_torch_state_dict())
        return self._model

    def __call__(self, arrays: ArrayRecord) -> dict[str, float]:
        """Risk metrics of ``arrays`` on the held-out set."""
        return risk_metrics(
            self._held_out.y,
            self.scores(arrays),
            threshold=self._threshold,
            fpr=self._fpr,
            cost_ratio=self._cost_ratio,
        )


@dataclass(frozen=True)
class FederatedEvaluation:
    """What the institutions answered to one federated evaluation.

    Attributes
    ----------
    mean : dict[str, float]
        Example-weighted means of the metrics (equal weights under secure aggregation).
    per_bank : dict[str, dict[str, float]]
        Each answering institution's metrics, by institution.
    refusals : dict[str, str]
        Institutions whose policy refused the evaluation, with the reason (and rule).
    failures : dict[str, str]
        Institutions whose reply was an error or did not read, with a one-line reason.
    """

    mean: dict[str, float] = field(default_factory=dict)
    per_bank: dict[str, dict[str, float]] = field(default_factory=dict)
    refusals: dict[str, str] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)

    def record(self) -> dict[str, object]:
        """Return the evaluation as ``metrics.jsonl`` keeps it (empty parts left out)."""
        out: dict[str, object] = {"federated": self.mean, "institutions": self.per_bank}
        if self.refusals:
            out["evaluation_refusals"] = self.refusals
        if self.failures:
            out["evaluation_failures"] = self.failures
        return out


def federated_metrics(
    replies: Iterable[Message], *, name_of: Callable[[Message], str]
) -> FederatedEvaluation:
    """Per-institution evaluation metrics, their example-weighted means, refusals and errors.

    ``name_of`` maps a reply to its institution by the coordinator's roster (the
    node id), never by what the reply claims.

    A metric an institution could not compute (e.g. AUC on a one-class validation
    set) is left out of that institution's entry and of the mean's weights. A bank's
    policy may refuse to evaluate a model (``releases.evaluation``); its refusal is
    recorded, as is an error reply or one whose metrics do not read.
    """
    per_bank: dict[str, dict[str, float]] = {}
    refusals: dict[str, str] = {}
    failures: dict[str, str] = {}
    for reply in replies:
        name = name_of(reply)
        if reply.has_error():
            failures[name] = f"error: {messages.error_summary(reply.error.reason)}"
            continue
        try:
            if messages.REFUSAL in reply.content.config_records:
                refusal = messages.config_of(reply.content, messages.REFUSAL)
                refusals[name] = messages.text(refusal, messages.REFUSAL_REASON)
                continue
            record = messages.metrics_of(reply.content)
            per_bank[name] = {k: messages.number(record, k) for k in record}
        except messages.MalformedMessage as err:
            failures[name] = f"malformed reply: {err}"
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
    return FederatedEvaluation(
        mean=mean,
        per_bank=dict(sorted(per_bank.items())),
        refusals=dict(sorted(refusals.items())),
        failures=dict(sorted(failures.items())),
    )
