"""Explain the final global model on this institution's own rows (``query.explain``).

The node computes each configured method on its validation rows (a seeded sample of at
most ``explain.max_rows``) and replies with one per-feature sum per method and its row
count; under secure aggregation it sends per-feature means instead and no row count
(the coordinator averages banks with equal weight, as for federated validation). Rows
never leave the node. A node whose configuration does not allow explanations (see
:mod:`fedrisk.conf.explain`) refuses, saying why.

The bank's policy decides first (`fedrisk.client.released_models`): explanations only if
``releases.explanations`` is true, over at least ``releases.min_explanation_rows`` rows
(whatever ``explain.max_rows`` asks: an explanation of one row of a linear model is that
row), and only of the run's final model, once per run. Anything else is refused with the
rule named.
"""

from __future__ import annotations

import numpy as np
import torch
from flwr.app import ConfigRecord, Context, Message, RecordDict

from fedrisk.client import released_models
from fedrisk.client.node_data import institution_seed
from fedrisk.client.node_setup import NodeSetup, local_model, node_record, node_setup, run_id_of
from fedrisk.client.policy_rules import RULE_EXPLANATIONS, PolicyRefusal
from fedrisk.conf.explain import schema_groups, under_privacy
from fedrisk.models.explain import (
    ExplainMethod,
    ImportanceSums,
    ig_importance,
    permutation_importance,
)
from fedrisk.strategies import messages

#: Salt of the seed behind the row sample and the permutations.
_EXPLAIN_SALT = 0xE7


class ExplainRefused(ValueError):
    """A node will not explain the model; the message says why."""


def explain(msg: Message, context: Context) -> Message:
    """Reply with per-feature importance sums of the received model, or a refusal."""
    torch.set_num_threads(1)
    setup = node_setup(context)
    try:
        record = explanation_record(setup, msg.content)
        released_models.check_final(
            context,
            released_models.FinalRelease.explanation,
            run_id=run_id_of(context),
            digest=messages.update_digest(messages.arrays_of(msg.content)),
        )
    except PolicyRefusal as err:
        content = RecordDict(
            {
                messages.REFUSAL: released_models.refusal_record(setup.institution, err),
                messages.NODE: node_record(setup),
            }
        )
    except (ExplainRefused, messages.MalformedMessage) as err:
        content = RecordDict(
            {
                messages.REFUSAL: ConfigRecord({messages.REFUSAL_REASON: str(err)}),
                messages.NODE: node_record(setup),
            }
        )
    else:
        content = RecordDict({messages.EXPLANATION: record, messages.NODE: node_record(setup)})
    return Message(content=content, reply_to=msg)


def explanation_record(setup: NodeSetup, request: RecordDict) -> ConfigRecord:
    """Compute the configured explanations of the request's model on this node's rows.

    Raises
    ------
    fedrisk.client.policy_rules.PolicyRefusal
        If the bank's policy releases no explanations, or the rows explained would be
        fewer than its ``releases.min_explanation_rows``.
    ExplainRefused
        If the configuration does not allow explanations here, or the model or data are
        not tabular.
    fedrisk.strategies.messages.MalformedMessage
        If the request lacks the model or a baseline of the right length.
    """
    settings = setup.settings
    config = settings.explain
    if not config.active(private=under_privacy(settings.privacy, settings.secagg)):
        raise ExplainRefused(
            "explanations are off for this run (a privacy mechanism is on and "
            "`explain.enabled` is not true)"
            if config.enabled is None
            else "explanations are off (`explain.enabled` is false)"
        )
    releases = setup.policy.releases
    if not releases.explanations:
        raise PolicyRefusal(RULE_EXPLANATIONS, "the bank releases no explanations")
    released_models.check_rows(
        RULE_EXPLANATIONS,
        min(len(setup.data.y_val), config.max_rows),
        least=releases.min_explanation_rows,
        what="explained",
    )
    schema = settings.task.schema
    x, y = setup.data.x_val, setup.data.y_val
    if schema is None or x.ndim != 2:
        raise ExplainRefused("explanations support tabular models only")
    groups = schema_groups(schema)
    if sum(len(g.columns) for g in groups) != x.shape[1]:
        raise ExplainRefused("the schema's features do not match the encoded columns")
    if len(y) == 0:
        raise ExplainRefused(f"{setup.institution} has no validation rows to explain on")
    baseline = _baseline(request, x.shape[1])
    seed = institution_seed(settings.seed, setup.institution, _EXPLAIN_SALT)
    if len(y) > config.max_rows:
        keep = np.sort(np.random.default_rng(seed).choice(len(y), config.max_rows, replace=False))
        x, y = x[keep], y[keep]
    model = local_model(setup, messages.arrays_of(request))
    secure = settings.secagg.enabled
    record = ConfigRecord(
        {
            messages.EXPLAIN_FEATURES: [g.name for g in groups],
            messages.EXPLAIN_ROWS: 1 if secure else len(y),
        }
    )
    for method in config.methods:
        if method is ExplainMethod.permutation:
            sums = permutation_importance(model, x, y, groups, seed=seed, repeats=config.repeats)
        else:
            sums = ig_importance(model, x, baseline, groups, steps=config.ig_steps)
        record[method.value] = _as_sent(sums, secure=secure)
    return record


def _as_sent(sums: ImportanceSums, *, secure: bool) -> list[float]:
    """Return sums over rows, or (secure aggregation: no row count) means."""
    return [float(v) for v in (sums.mean() if secure else sums.sums)]


def _baseline(request: RecordDict, width: int) -> np.ndarray:
    config = messages.config_of(request)
    raw = config.get(messages.EXPLAIN_BASELINE)
    if not isinstance(raw, list) or len(raw) != width:
        raise messages.MalformedMessage(
            f"`{messages.EXPLAIN_BASELINE}` must be a list of {width} numbers; got {raw!r:.60}"
        )
    return np.asarray(raw, dtype=np.float64)
