"""Record-level DP training of one round, with the ledger entry held until the reply exists.

The ledger entry records the SHA-256 of what the institution sends; under secure
aggregation that is the masked message, which exists only after masking, so the entry is
written through `TrainedUpdate.record` once the reply is built.

A round the ledger already holds (the coordinator crashed before aggregating it and the
resumed run asks again) is answered with the kept release. Under secure aggregation its
new masked message has a new digest, so `TrainedUpdate.record` then returns a signed
`fedrisk.privacy.resend.ResendStatement` for the reply to carry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, RecordDict

from fedrisk.client import private_round, released_updates
from fedrisk.client.dp_trainer import train_private
from fedrisk.client.node_data import institution_seed
from fedrisk.client.node_setup import NodeSetup, node_record, row_metrics
from fedrisk.models.tabular import get_weights
from fedrisk.privacy.calibration import PrivacyPlanError
from fedrisk.privacy.ledger import LedgerEntry
from fedrisk.privacy.resend import ResendStatement
from fedrisk.strategies import messages


@dataclass
class TrainedUpdate:
    """A trained update before it is sent: weights, figures, and the ledger step.

    ``record`` takes the digest of the message that carries the update and returns
    what the reply must carry besides (a resend statement under `RESENT`), or None.
    """

    arrays: ArrayRecord
    n_examples: int
    loss: float
    metrics: dict[str, float] = field(default_factory=dict)
    record: Callable[[str], ConfigRecord | None] | None = None


def train_private_update(
    context: Context,
    setup: NodeSetup,
    model: torch.nn.Module,
    *,
    server_round: int,
    mu: float,
) -> TrainedUpdate | RecordDict:
    """One DP-SGD round: gate on the budget and train; the ledger entry waits for the digest."""
    settings = setup.settings
    try:
        node = private_round.node_privacy(
            context, settings, setup.data, institution=setup.institution, policy=setup.policy
        )
    except PrivacyPlanError as err:
        return refusal_content(setup, private_round.refusal_record(str(err)))
    received = messages.update_digest(ArrayRecord(model.state_dict()))
    released = [
        e for e in node.ledger.entries if e.run_id == node.run_id and e.round == server_round
    ]
    if released:
        return _release_again(setup, node, released[-1], server_round, received)
    decision, planned = private_round.gate(node, settings, setup.data)
    if not decision.allowed:
        return refusal_content(setup, private_round.budget_refusal(node, decision))
    capped = private_round.run_cap_refusal(node, settings, planned)
    if capped is not None:
        return refusal_content(setup, capped)
    trained = train_private(
        model,
        setup.data.x_train,
        setup.data.y_train,
        settings.task.train,
        private_round.dp_settings(settings.privacy, node.noise_multiplier),
        seed=institution_seed(settings.seed, setup.institution, server_round),
        proximal_mu=mu,
        global_weights=get_weights(model) if mu > 0 else None,
    )
    if trained.mechanism != planned:
        raise RuntimeError(f"{setup.institution}: trained {trained.mechanism}, gated {planned}")
    epsilon = decision.projected

    arrays = ArrayRecord(model.state_dict())

    def record(digest: str) -> None:
        released_updates.keep(  # before the ledger entry: an entry always has its copy
            released_updates.released_dir(node.ledger.path, setup.institution),
            released_updates.ReleasedUpdate(
                run_id=node.run_id,
                round=server_round,
                arrays=arrays,
                n_examples=trained.result.n_examples,
                loss=trained.result.loss,
                received_sha256=received,
                sent_sha256=digest,
            ),
        )
        private_round.record_round(
            node,
            settings,
            server_round=server_round,
            mechanism=trained.mechanism,
            epsilon=epsilon,
            update_sha256=digest,
        )

    return TrainedUpdate(
        arrays=arrays,
        n_examples=trained.result.n_examples,
        loss=trained.result.loss,
        metrics={
            messages.EPSILON: epsilon,
            messages.EPSILON_BUDGET: node.budget.epsilon,
            messages.DELTA: node.budget.delta,
            messages.NOISE_MULTIPLIER: node.noise_multiplier,
        },
        record=record,
    )


def _release_again(
    setup: NodeSetup,
    node: private_round.NodePrivacy,
    entry: LedgerEntry,
    server_round: int,
    received: str,
) -> TrainedUpdate | RecordDict:
    """Answer a round the ledger already holds with the update released then.

    The kept copy must be the one whose sending the entry signed and have been trained
    from the same global model; otherwise the node refuses (training again would spend
    privacy twice). Sent as it was, it needs no statement; masked anew (secure
    aggregation under the resumed run's keys), the reply carries a signed
    `ResendStatement` naming the entry.
    """
    kept = released_updates.find(
        released_updates.released_dir(node.ledger.path, setup.institution),
        run_id=node.run_id,
        server_round=server_round,
    )
    if kept is None or kept.sent_sha256 != entry.update_sha256 or kept.received_sha256 != received:
        return refusal_content(
            setup,
            private_round.refusal_record(
                f"{setup.institution}: round {server_round} of run {node.run_id} was already "
                f"released (ledger entry {entry.seq}) from another model or without a kept "
                "copy; training it again would spend its privacy twice"
            ),
        )

    def record(digest: str) -> ConfigRecord | None:
        if digest == entry.update_sha256:
            return None
        statement = ResendStatement(
            run_id=entry.run_id,
            round=entry.round,
            institution=setup.institution,
            ledger_seq=entry.seq,
            ledger_sha256=entry.update_sha256,
            sent_sha256=digest,
        ).signed(node.signing_key)
        return ConfigRecord(dict(statement.to_json().items()))

    return TrainedUpdate(
        arrays=kept.arrays,
        n_examples=kept.n_examples,
        loss=kept.loss,
        metrics={
            messages.EPSILON: entry.epsilon,
            messages.EPSILON_BUDGET: node.budget.epsilon,
            messages.DELTA: node.budget.delta,
            messages.NOISE_MULTIPLIER: node.noise_multiplier,
        },
        record=record,
    )


def refusal_content(setup: NodeSetup, refusal: ConfigRecord) -> RecordDict:
    """Build a reply that declines to train (no row count under secure aggregation)."""
    metrics = row_metrics(setup)
    return RecordDict(
        {
            messages.NODE: node_record(setup),
            messages.REFUSAL: refusal,
            messages.METRICS: metrics,
        }
    )
