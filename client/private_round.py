"""Record-level DP at the institution: plan, gate, train, and sign the ledger.

The ledger on the node's disk is the source of truth for what the institution has
spent: it is replayed at every message, across rounds and across runs on the same
dataset. The noise multiplier is calibrated once per run (at the roll call, before
round 1) for the whole planned run and cached in the node's ``Context.state``.
Before each round the node projects the round's cost; if it would exceed the budget
it does not train and replies with a refusal that says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flwr.app import ConfigRecord, Context

from fedrisk.client.dp_trainer import (
    DPSettings,
    planned_mechanism,
    steps_per_round,
)
from fedrisk.client.node_data import NodeData
from fedrisk.client.node_keys import SIGNING_KEY_FILE, locations
from fedrisk.client.node_setup import run_id_of
from fedrisk.client.policy import NodePolicy
from fedrisk.client.policy_rules import RULE_RUN_EPSILON
from fedrisk.conf.privacy import PrivacyConfig
from fedrisk.conf.root import FedriskConfig
from fedrisk.privacy.accountant import accountant_version, epsilon_spent
from fedrisk.privacy.budget import (
    Budget,
    BudgetDecision,
    PrivacyConfigError,
    check_delta,
    gate_round,
)
from fedrisk.privacy.calibration import calibrate_noise
from fedrisk.privacy.ledger import LedgerWriter, history, ledger_path
from fedrisk.privacy.ledger_format import population_fingerprint
from fedrisk.privacy.manifest import ConsortiumManifest
from fedrisk.privacy.mechanism import PoissonGaussian
from fedrisk.secure.signing import load_private_key
from fedrisk.strategies import messages

_PLAN_RECORD = "fedrisk-dp-plan"


@dataclass(frozen=True)
class NodePrivacy:
    """An institution's privacy position at the start of a message."""

    institution: str
    budget: Budget
    ledger: LedgerWriter
    run_id: str
    noise_multiplier: float
    signing_key: Ed25519PrivateKey
    policy: NodePolicy
    table_sha256: str

    @property
    def spent_before(self) -> list[PoissonGaussian]:
        """Every mechanism the ledger holds (all runs on this dataset)."""
        return history(self.ledger.entries)


def ledger_file(state_dir: Path, *, institution: str, policy: NodePolicy) -> Path:
    """Return the ledger of the population the bank's policy names.

    One ledger per institution and population: a reordered schema or a changed table
    composes with what was spent before (only the bank's policy opens a new one).
    """
    identity = population_fingerprint(institution, policy.privacy.population)
    return ledger_path(state_dir, institution=institution, dataset_fingerprint=identity)


def node_privacy(
    context: Context,
    settings: FedriskConfig,
    data: NodeData,
    *,
    institution: str,
    policy: NodePolicy,
) -> NodePrivacy:
    """Open the institution's key, budget and ledger, and its noise plan for this run.

    The budget is the lower of the manifest's and the bank's policy; the noise is at
    least the policy's least, and enough for the run alone to stay within the
    policy's ε per run.

    Raises
    ------
    fedrisk.privacy.budget.PrivacyConfigError
        If δ exceeds 1 / (training rows).
    fedrisk.privacy.calibration.PrivacyPlanError
        If the target cannot be met (e.g. already spent).
    fedrisk.privacy.ledger.LedgerTampered
        If the institution's own ledger does not verify.
    """
    state_dir, manifest_path = locations(context, institution)
    manifest = ConsortiumManifest.load(manifest_path)
    record = next(r for r in manifest.institutions if r.name == institution)
    rules = policy.privacy
    budget = Budget(
        epsilon=min(record.budget_epsilon, rules.epsilon_budget),
        delta=min(record.budget_delta, rules.delta),
    )
    check_delta(budget.delta, n_records=data.n_train, institution=institution)
    key = load_private_key(state_dir / SIGNING_KEY_FILE)
    ledger = LedgerWriter(
        ledger_file(state_dir, institution=institution, policy=policy),
        signing_key=key,
        institution=institution,
        dataset_fingerprint=population_fingerprint(institution, rules.population),
    )
    accountant = settings.privacy.accountant.value
    if ledger.entries and ledger.entries[-1].accountant != accountant:
        raise PrivacyConfigError(
            f"{institution}'s ledger accounts with {ledger.entries[-1].accountant}; "
            f"`privacy.accountant` must stay {ledger.entries[-1].accountant} for this dataset; "
            f"got {accountant}"
        )
    run_id = run_id_of(context)
    noise = _cached_plan(context, run_id)
    if noise is None:
        prior = [e.mechanism_obj for e in ledger.entries if e.run_id != run_id]
        noise = plan_noise(settings, data.n_train, budget, prior=prior)
        if settings.privacy.noise_multiplier is None:
            noise = max(noise, rules.min_noise_multiplier)
            if rules.max_epsilon_per_run is not None:
                alone = Budget(epsilon=rules.max_epsilon_per_run, delta=budget.delta)
                noise = max(noise, plan_noise(settings, data.n_train, alone, prior=[]))
        context.state[_PLAN_RECORD] = ConfigRecord({"run-id": run_id, "noise-multiplier": noise})
    return NodePrivacy(
        institution=institution,
        budget=budget,
        ledger=ledger,
        run_id=run_id,
        noise_multiplier=noise,
        signing_key=key,
        policy=policy,
        table_sha256=data.fingerprint,
    )


def plan_noise(
    settings: FedriskConfig, n_train: int, budget: Budget, *, prior: list[PoissonGaussian]
) -> float:
    """Noise multiplier for the whole planned run (or the configured fixed one).

    The plan is ``rounds`` rounds of ``epochs × ⌊1/q⌋`` steps at ``q = batch / n``,
    composed after everything ``prior`` already spent, to end at the target ε
    (``privacy.target_epsilon``, or the budget when unset, whichever is lower).
    """
    privacy = settings.privacy
    if privacy.noise_multiplier is not None:
        return privacy.noise_multiplier
    target = min(privacy.target_epsilon or budget.epsilon, budget.epsilon)
    spec = settings.task.train
    return calibrate_noise(
        target_epsilon=target,
        delta=budget.delta,
        sample_rate=min(1.0, spec.batch_size / n_train),
        steps=settings.rounds * steps_per_round(spec, n_train),
        accountant=privacy.accountant,
        prior=prior,
        max_grad_norm=privacy.max_grad_norm,
    )


def dp_settings(privacy: PrivacyConfig, noise_multiplier: float) -> DPSettings:
    """Trainer settings from the privacy config and the planned noise."""
    return DPSettings(
        noise_multiplier=noise_multiplier,
        max_grad_norm=privacy.max_grad_norm,
        noise_source=privacy.noise_source,
        grad_sample_mode=privacy.grad_sample_mode,
    )


def gate(
    node: NodePrivacy, settings: FedriskConfig, data: NodeData
) -> tuple[BudgetDecision, PoissonGaussian]:
    """Project this round's cost against the budget before any training."""
    planned = planned_mechanism(
        settings.task.train, data.n_train, dp_settings(settings.privacy, node.noise_multiplier)
    )
    decision = gate_round(
        node.spent_before,
        planned,
        budget=node.budget,
        accountant=settings.privacy.accountant,
        institution=node.institution,
    )
    return decision, planned


def run_cap_refusal(
    node: NodePrivacy, settings: FedriskConfig, planned: PoissonGaussian
) -> ConfigRecord | None:
    """Refuse a round that would take this run alone past the policy's ε per run."""
    cap = node.policy.privacy.max_epsilon_per_run
    if cap is None:
        return None
    this_run = [e.mechanism_obj for e in node.ledger.entries if e.run_id == node.run_id]
    projected = epsilon_spent(
        [*this_run, planned], delta=node.budget.delta, accountant=settings.privacy.accountant
    )
    if projected <= cap:
        return None
    return ConfigRecord(
        {
            messages.REFUSAL_REASON: (
                f"{node.institution}: this round would take run {node.run_id}'s ε to "
                f"{projected:.4f}, over the bank's policy of {cap:g} per run"
            ),
            messages.REFUSAL_RULE: RULE_RUN_EPSILON,
            "projected": projected,
        }
    )


def refusal_record(reason: str, **figures: float) -> ConfigRecord:
    """Build the typed refusal a node sends instead of an update."""
    return ConfigRecord({messages.REFUSAL_REASON: reason, **figures})


def budget_refusal(node: NodePrivacy, decision: BudgetDecision) -> ConfigRecord:
    """Build the refusal for a round whose projected cost exceeds the budget."""
    return refusal_record(
        f"{node.institution}: this round would take ε from {decision.spent:.4f} to "
        f"{decision.projected:.4f}, over its budget {node.budget.epsilon:g}",
        spent=decision.spent,
        projected=decision.projected,
        budget_epsilon=node.budget.epsilon,
    )


def record_round(
    node: NodePrivacy,
    settings: FedriskConfig,
    *,
    server_round: int,
    mechanism: PoissonGaussian,
    epsilon: float,
    update_sha256: str,
) -> None:
    """Append the round's signed ledger entry.

    ``epsilon`` is the gate's projection for exactly this mechanism after the ledger's
    history (``BudgetDecision.projected``): the cumulative ε, computed once per round.
    """
    accountant = settings.privacy.accountant
    node.ledger.append(
        run_id=node.run_id,
        round=server_round,
        mechanism=mechanism,
        delta=node.budget.delta,
        accountant=accountant.value,
        epsilon=epsilon,
        budget_epsilon=node.budget.epsilon,
        budget_delta=node.budget.delta,
        update_sha256=update_sha256,
        extras={
            "accountant_library": accountant_version(accountant),
            "randomness": settings.privacy.noise_source.value,
            "population": node.policy.privacy.population,
            "table_sha256": node.table_sha256,
        },
    )


def _cached_plan(context: Context, run_id: str) -> float | None:
    record = context.state.config_records.get(_PLAN_RECORD)
    if record is None or record.get("run-id") != run_id:
        return None
    return messages.number(record, "noise-multiplier")
