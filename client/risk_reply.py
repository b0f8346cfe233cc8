"""Answer the end-of-run risk query (``query.risk``) on this institution's own rows.

The node scores the final global model on its validation rows and replies with the
risk metrics (at the task's threshold, false-alarm rate and cost ratio) and, for each
protected attribute of the schema, four decision counts per group. Counts, not rows:
the coordinator adds them up for the consortium-wide fairness figures. Under secure
aggregation the node keeps its row count to itself: no ``n``, and its own fairness gaps
instead of counts.
"""

from __future__ import annotations

import torch
from flwr.app import Context, Message, MetricRecord, RecordDict

from fedrisk.client.node_setup import local_model, node_record, node_setup
from fedrisk.client.trainer import evaluate_model
from fedrisk.models.group_counts import group_counts, report_from_counts
from fedrisk.models.tabular import predict_proba
from fedrisk.strategies import messages
from fedrisk.strategies.risk_wire import (
    FAIRNESS,
    FAIRNESS_GAPS,
    GAP_KEYS,
    counts_record,
    gaps_record,
)


def risk(msg: Message, context: Context) -> Message:
    """Reply with the final model's risk metrics and fairness counts on the validation rows."""
    torch.set_num_threads(1)
    setup = node_setup(context)
    task = setup.settings.task
    data = setup.data
    model = local_model(setup, messages.arrays_of(msg.content))
    scores = evaluate_model(
        model,
        data.x_val,
        data.y_val,
        threshold=task.threshold,
        fpr=task.false_alarm_rate,
        cost_ratio=task.cost_ratio,
    )
    finite: dict[str, int | float | list[int] | list[float]] = {
        k: float(v)
        for k, v in scores.items()
        if v == v  # NaN: one-class rows
    }
    masked = setup.settings.secagg.enabled
    if masked:
        finite.pop("n", None)
    content = RecordDict(
        {messages.METRICS: MetricRecord(finite), messages.NODE: node_record(setup)}
    )
    if data.groups_val:
        proba = predict_proba(model, data.x_val)
        counts = {
            name: group_counts(data.y_val, proba, values, threshold=task.threshold)
            for name, values in data.groups_val.items()
        }
        if masked:
            reports = {name: report_from_counts(part) for name, part in counts.items()}
            gaps = {n: {k: float(r[k]) for k in GAP_KEYS} for n, r in reports.items()}  # type: ignore[literal-required]
            content[FAIRNESS_GAPS] = MetricRecord(dict(gaps_record(gaps)))
        else:
            content[FAIRNESS] = counts_record(counts)
    return Message(content=content, reply_to=msg)
