"""Answer the end-of-run risk query (``query.risk``) on this institution's own rows.

The node scores the final global model on its validation rows and replies with the
risk metrics (at the task's threshold, false-alarm rate and cost ratio) and, for each
protected attribute of the schema, four decision counts per group. Counts, not rows:
the coordinator adds them up for the consortium-wide fairness figures. Under secure
aggregation the node keeps its row count to itself: no ``n``, and its own fairness gaps
instead of counts.

The bank's policy decides first (`fedrisk.client.released_models`): only if
``releases.risk_counts`` is true, over at least ``releases.min_evaluation_rows``
validation rows, and only of the run's final model, once per run; a group with fewer
than ``releases.min_evaluation_rows`` rows is left out of the counts and gaps (a small
group's counts come close to describing its customers one by one).
"""

from __future__ import annotations

import numpy as np
import torch
from flwr.app import Context, Message, MetricRecord, RecordDict

from fedrisk.client import released_models
from fedrisk.client.node_setup import local_model, node_record, node_setup, run_id_of
from fedrisk.client.policy_rules import RULE_RISK, PolicyRefusal
from fedrisk.client.trainer import evaluate_model
from fedrisk.models.group_counts import COUNT_FIELDS, GroupCounts, group_counts, report_from_counts
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
    """Reply with the final model's risk metrics and fairness counts, or a refusal."""
    torch.set_num_threads(1)
    setup = node_setup(context)
    arrays = messages.arrays_of(msg.content)
    releases = setup.policy.releases
    try:
        if not releases.risk_counts:
            raise PolicyRefusal(RULE_RISK, "the bank releases no risk metrics or fairness counts")
        released_models.check_rows(
            RULE_RISK, len(setup.data.y_val), least=releases.min_evaluation_rows, what="validation"
        )
        released_models.check_final(
            context,
            released_models.FinalRelease.risk,
            run_id=run_id_of(context),
            digest=messages.update_digest(arrays),
        )
    except PolicyRefusal as err:
        refused = RecordDict(
            {
                messages.REFUSAL: released_models.refusal_record(setup.institution, err),
                messages.NODE: node_record(setup),
            }
        )
        return Message(content=refused, reply_to=msg)
    task = setup.settings.task
    data = setup.data
    model = local_model(setup, arrays)
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
            name: large_groups(
                group_counts(data.y_val, proba, values, threshold=task.threshold),
                least=releases.min_evaluation_rows,
            )
            for name, values in data.groups_val.items()
        }
        if masked:
            reports = {name: report_from_counts(part) for name, part in counts.items()}
            gaps = {n: {k: float(r[k]) for k in GAP_KEYS} for n, r in reports.items()}  # type: ignore[literal-required]
            content[FAIRNESS_GAPS] = MetricRecord(dict(gaps_record(gaps)))
        else:
            content[FAIRNESS] = counts_record(counts)
    return Message(content=content, reply_to=msg)


def large_groups(counts: GroupCounts, *, least: int) -> GroupCounts:
    """Return ``counts`` without the groups of fewer than ``least`` rows."""
    keep = np.flatnonzero(np.asarray(counts.count) >= least)
    return GroupCounts(
        groups=tuple(counts.groups[i] for i in keep),
        **{f: tuple(int(getattr(counts, f)[i]) for i in keep) for f in COUNT_FIELDS},
    )
