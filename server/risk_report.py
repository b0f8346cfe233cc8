"""The final global model's risk report: per bank, global, fairness and calibration.

After the last round the coordinator sends the final model to every institution
(``query.risk``, see :mod:`fedrisk.strategies.risk_wire`). Each bank answers with the
model's risk metrics on its own validation rows and its fairness counts; the
coordinator adds the counts up (``pooled_banks``) and computes the same figures on its
held-out set (``global``). The held-out scores also give the calibration curve, drawn
to ``calibration.png``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from flwr.app import ArrayRecord, Message, RecordDict
from flwr.serverapp import Grid

from fedrisk.conf.task import TaskConfig
from fedrisk.models.calibration_metrics import calibration_curve
from fedrisk.models.group_counts import GroupCounts, group_counts, merge_counts, report_from_counts
from fedrisk.server.bank_query import ask_every_bank
from fedrisk.server.evaluation import CentralEvaluator
from fedrisk.server.plots import plot_calibration
from fedrisk.strategies import messages
from fedrisk.strategies.risk_wire import (
    FAIRNESS,
    FAIRNESS_GAPS,
    RISK_MESSAGE_TYPE,
    counts_of,
    gaps_of,
)

CALIBRATION_FILE = "calibration.png"


def final_risk_report(
    grid: Grid,
    task: TaskConfig,
    node_of: Mapping[str, int],
    arrays: ArrayRecord,
    evaluator: CentralEvaluator,
    run_dir: Path,
    *,
    timeout: float,
) -> dict[str, object]:
    """Ask every institution for its risk figures of ``arrays`` and build the report.

    Parameters
    ----------
    grid : Grid
        The run's grid.
    task : TaskConfig
        Threshold, false-alarm rate, cost ratio and schema (protected attributes).
    node_of : Mapping[str, int]
        Node id of every institution in the run.
    arrays : ArrayRecord
        The final global model.
    evaluator : CentralEvaluator
        The coordinator's held-out evaluator.
    run_dir : Path
        Where ``calibration.png`` goes.
    timeout : float
        Seconds to wait for the replies.

    Returns
    -------
    dict[str, object]
        The summary fields ``risk_metrics`` (the settings), ``per_bank`` (metrics per
        institution; an entry ``error`` when a bank did not answer, ``refused`` with the
        reason when its policy refused), ``calibration``
        (the held-out curve and its PNG) and ``fairness`` (``None`` without protected
        attributes; else per attribute ``global``, ``pooled_banks`` and ``per_bank``;
        under secure aggregation ``per_bank`` holds each bank's own two gaps and
        ``pooled_banks`` is ``None``, since counts would reveal row counts). Banks leave
        out groups smaller than their policy's least rows, so pooled counts cover the
        groups each bank reported.
    """
    attributes = task.schema.protected_columns if task.schema is not None else []
    answers, failures = ask_every_bank(
        grid,
        node_of,
        RecordDict({messages.ARRAYS: arrays}),
        RISK_MESSAGE_TYPE,
        lambda reply, _: _read(reply, attributes),
        timeout=timeout,
    )
    per_bank: dict[str, dict[str, object]] = {
        name: {"error": reason} for name, reason in failures.items()
    }
    counts: dict[str, dict[str, GroupCounts]] = {}
    gaps: dict[str, dict[str, dict[str, float]]] = {}
    for name, (metrics, bank_counts, bank_gaps) in answers.items():
        per_bank[name] = metrics
        if bank_counts:
            counts[name] = bank_counts
        if bank_gaps:
            gaps[name] = bank_gaps
    held_out = evaluator.held_out
    scores = evaluator.scores(arrays)
    curve = calibration_curve(held_out.y, scores)
    plot_calibration(curve, run_dir / CALIBRATION_FILE)
    fairness = None
    if attributes:
        fairness = {
            "threshold": task.threshold,
            "attributes": {
                attribute: _attribute_report(
                    attribute,
                    counts,
                    gaps,
                    held_out.groups.get(attribute),
                    held_out.y,
                    scores,
                    task,
                )
                for attribute in attributes
            },
        }
    return {
        "risk_metrics": {
            "threshold": task.threshold,
            "false_alarm_rate": task.false_alarm_rate,
            "cost_ratio": task.cost_ratio,
        },
        "per_bank": dict(sorted(per_bank.items())),
        "calibration": {
            "file": CALIBRATION_FILE,
            "mean_predicted": curve.mean_predicted.tolist(),
            "observed_rate": curve.observed_rate.tolist(),
            "count": curve.count.tolist(),
        },
        "fairness": fairness,
    }


def _read(
    reply: Message, attributes: list[str]
) -> tuple[dict[str, object], dict[str, GroupCounts], dict[str, dict[str, float]]]:
    """Return a bank's metrics and its fairness counts or (secure aggregation) gaps."""
    if reply.has_error():
        raise messages.MalformedMessage(
            f"the node could not answer: {messages.error_summary(reply.error.reason)}"
        )
    if messages.REFUSAL in reply.content.config_records:  # the bank's policy said no
        refusal = messages.config_of(reply.content, messages.REFUSAL)
        return {"refused": messages.text(refusal, messages.REFUSAL_REASON)}, {}, {}
    record = messages.metrics_of(reply.content)
    metrics: dict[str, object] = {k: messages.number(record, k) for k in sorted(record)}
    if not attributes:
        return metrics, {}, {}
    if FAIRNESS_GAPS in reply.content.metric_records:
        flat = reply.content.metric_records[FAIRNESS_GAPS]
        return metrics, {}, gaps_of({k: messages.number(flat, k) for k in flat}, attributes)
    return metrics, counts_of(messages.config_of(reply.content, FAIRNESS), attributes), {}


def _attribute_report(
    attribute: str,
    counts: dict[str, dict[str, GroupCounts]],
    gaps: dict[str, dict[str, dict[str, float]]],
    held_out_groups: np.ndarray | None,
    y: np.ndarray,
    scores: np.ndarray,
    task: TaskConfig,
) -> dict[str, object]:
    banks = {name: parts[attribute] for name, parts in sorted(counts.items())}
    # A bank leaves out groups smaller than its policy's least rows; one may send none.
    reported = [part for part in banks.values() if part.groups]
    per_bank: dict[str, object] = {name: report_from_counts(part) for name, part in banks.items()}
    per_bank.update({name: values[attribute] for name, values in gaps.items()})
    out: dict[str, object] = {
        "per_bank": dict(sorted(per_bank.items())),
        # Under secure aggregation banks send their gaps, not counts: nothing to pool.
        "pooled_banks": report_from_counts(merge_counts(reported)) if reported else None,
        "global": None,
    }
    if held_out_groups is not None:
        out["global"] = report_from_counts(
            group_counts(y, scores, held_out_groups, threshold=task.threshold)
        )
    return out
