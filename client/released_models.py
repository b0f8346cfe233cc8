"""Which global models a node releases figures of in a run: the release rules of its policy.

Validation metrics, explanations and risk counts are computed on the bank's own rows and
are not covered by DP-SGD: scored on a model the coordinator crafted, accuracy and recall
count the rows matching a predicate of its choice, and an explanation over one row is
that row. A node therefore releases figures only of

- a model it was sent to train from in this run (the digest of every received global
  model is noted by the training handler, `note_trained_from`): federated evaluation,
  round by round, of the model the round started from;
- the run's *final* model, once per release: the final evaluation (an evaluate message
  whose config carries ``final-model: true``), the explanation and the risk report. The
  first of them fixes the run's final model (its digest); each later one must concern
  the same model, and each kind is answered once per run.

The coordinator still chooses which model is final (a node cannot check an aggregate it
took part in only masked), so the bound is: as many evaluations as rounds the bank was
sent a model to train from (each costs it a DP-SGD step of its budget), plus one final
model per run, each of whose releases is made once, over at least the policy's least
rows (``releases.min_evaluation_rows``, ``releases.min_explanation_rows``).

The notes live in the node's ``Context.state`` (one ConfigRecord per fedrisk run id),
which Flower keeps for the lifetime of one Flower run at the node.
"""

from __future__ import annotations

from enum import Enum

from flwr.app import ConfigRecord, Context

from fedrisk.client.policy import NodePolicy
from fedrisk.client.policy_rules import (
    RULE_EVALUATION,
    RULE_EXPLANATIONS,
    RULE_RISK,
    PolicyRefusal,
)
from fedrisk.strategies import messages

#: Prefix of the ``Context.state`` record of one run's released models.
_STATE_PREFIX = "fedrisk-released-models:"
_TRAINED_FROM = "trained-from"
_FINAL = "final"
_DONE = "released"


class FinalRelease(str, Enum):
    """A release made once per run, of the run's final model only."""

    evaluation = "evaluation"
    explanation = "explanation"
    risk = "risk"


_RULES = {
    FinalRelease.evaluation: RULE_EVALUATION,
    FinalRelease.explanation: RULE_EXPLANATIONS,
    FinalRelease.risk: RULE_RISK,
}


def note_trained_from(context: Context, *, run_id: str, digest: str) -> None:
    """Note that this node was sent the global model ``digest`` to train from."""
    record = _record(context, run_id)
    trained = _strings(record, _TRAINED_FROM)
    if digest not in trained:
        record[_TRAINED_FROM] = [*trained, digest]


def check_evaluation(
    context: Context,
    policy: NodePolicy,
    *,
    run_id: str,
    digest: str,
    rows: int,
    final: bool,
) -> None:
    """Allow one evaluation, or refuse it naming ``releases.evaluation``.

    A final evaluation is noted as made (see `check_final`).

    Raises
    ------
    fedrisk.client.policy_rules.PolicyRefusal
        If the policy releases no evaluation metrics, the validation set has fewer rows
        than ``releases.min_evaluation_rows``, or the model is neither one this node was
        sent to train from in the run nor (once) the run's final model.
    """
    releases = policy.releases
    if not releases.evaluation:
        raise PolicyRefusal(RULE_EVALUATION, "the bank releases no evaluation metrics")
    check_rows(RULE_EVALUATION, rows, least=releases.min_evaluation_rows, what="validation")
    if final:
        check_final(context, FinalRelease.evaluation, run_id=run_id, digest=digest)
    elif digest not in _strings(_record(context, run_id), _TRAINED_FROM):
        raise PolicyRefusal(
            RULE_EVALUATION,
            "the node evaluates only models it was sent to train from in this run, and the "
            f"run's final model once; got model {digest[:12]}…",
        )


def check_rows(rule: str, rows: int, *, least: int, what: str) -> None:
    """Refuse a release computed over fewer than ``least`` rows.

    Raises
    ------
    fedrisk.client.policy_rules.PolicyRefusal
        Naming ``rule``; the count itself is not said (it is the bank's to keep).
    """
    if rows < least:
        raise PolicyRefusal(
            rule,
            f"the bank releases figures over at least {least} {what} rows; this one would "
            "cover fewer",
        )


def check_final(context: Context, release: FinalRelease, *, run_id: str, digest: str) -> None:
    """Allow ``release`` of the model ``digest`` once per run, of the run's final model only.

    The first final release of a run fixes its final model; the release is noted as made.

    Raises
    ------
    fedrisk.client.policy_rules.PolicyRefusal
        If another model is the run's final model, or ``release`` was already made.
    """
    record = _record(context, run_id)
    final = record.get(_FINAL)
    if isinstance(final, str) and final != digest:
        raise PolicyRefusal(
            _RULES[release],
            f"the node releases figures of one final model per run ({final[:12]}…); got "
            f"model {digest[:12]}…",
        )
    done = _strings(record, _DONE)
    if release.value in done:
        raise PolicyRefusal(
            _RULES[release], f"the node makes the final {release.value} once per run; it has"
        )
    record[_FINAL] = digest
    record[_DONE] = [*done, release.value]


def refusal_record(institution: str, err: PolicyRefusal) -> ConfigRecord:
    """Build the refusal record a reply carries instead of a release (rule named)."""
    return ConfigRecord(
        {messages.REFUSAL_REASON: f"{institution}: {err}", messages.REFUSAL_RULE: err.rule}
    )


def _record(context: Context, run_id: str) -> ConfigRecord:
    key = _STATE_PREFIX + run_id
    if key not in context.state.config_records:
        context.state[key] = ConfigRecord()
    return context.state.config_records[key]


def _strings(record: ConfigRecord, key: str) -> list[str]:
    value = record.get(key)
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []
