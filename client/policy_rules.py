"""The node's checks of a run against its bank's policy, before anything trains or leaves.

Every handler runs `check_run` first (through `fedrisk.client.node_setup`); a run that
asks for less than the policy gets a `PolicyRefusal` naming the rule, and the node
answers with a typed refusal instead of training or releasing anything.
"""

from __future__ import annotations

import math
from dataclasses import asdict

from fedrisk.client.policy import LoadedPolicy, NodePolicy, RequiredMechanism
from fedrisk.conf.privacy import NoiseSource, PrivacyMode
from fedrisk.conf.root import FedriskConfig
from fedrisk.data.schema import TableSchema

#: Rule names a refusal carries (also the policy fields they come from).
RULE_MECHANISM = "privacy.mechanism"
RULE_RANDOMNESS = "privacy.allow_seeded_noise"
RULE_NOISE = "privacy.min_noise_multiplier"
RULE_RUN_EPSILON = "privacy.max_epsilon_per_run"
RULE_CLASS_WEIGHT = "privacy.class_weight"
RULE_SECAGG = "secagg.required"
RULE_THRESHOLD = "secagg.min_threshold_fraction"
RULE_CONSISTENCY = "secagg.consistency_check"
RULE_SCHEMA = "schema"
RULE_EVALUATION = "releases.evaluation"
RULE_EXPLANATIONS = "releases.explanations"
RULE_RISK = "releases.risk_counts"
RULE_INSTITUTION = "institution"


class PolicyRefusal(RuntimeError):
    """A run asks for less than the bank's policy allows.

    Attributes
    ----------
    rule : str
        The policy rule broken (e.g. ``privacy.mechanism``).
    reason : str
        What the run asked for and what the policy requires (no data values).
    """

    def __init__(self, rule: str, reason: str) -> None:
        super().__init__(f"policy rule `{rule}`: {reason}")
        self.rule = rule
        self.reason = reason


def check_run(
    settings: FedriskConfig, loaded: LoadedPolicy, *, institution: str, institutions: int
) -> None:
    """Check a run's configuration against the bank's policy.

    Parameters
    ----------
    settings : FedriskConfig
        The configuration the coordinator sent.
    loaded : LoadedPolicy
        The bank's policy and its own schema.
    institution : str
        The institution this node is.
    institutions : int
        How many institutions the run names (for the secure-aggregation threshold).

    Raises
    ------
    PolicyRefusal
        Naming the first rule the run breaks.
    """
    policy = loaded.policy
    if policy.institution != institution:
        raise PolicyRefusal(
            RULE_INSTITUTION,
            f"the node's policy belongs to {policy.institution!r}; got a node for {institution!r}",
        )
    _check_privacy(settings, policy)
    _check_secagg(settings, policy, institutions)
    if loaded.schema is not None and settings.task.schema is not None:
        check_schema(settings.task.schema, loaded.schema)


def _check_privacy(settings: FedriskConfig, policy: NodePolicy) -> None:
    privacy, rules = settings.privacy, policy.privacy
    if rules.mechanism is RequiredMechanism.dpsgd and privacy.mode is not PrivacyMode.dpsgd:
        raise PolicyRefusal(
            RULE_MECHANISM,
            f"the bank requires record-level DP-SGD at its node; the run asks for "
            f"privacy={privacy.mode.value}",
        )
    if privacy.mode is not PrivacyMode.dpsgd:
        return
    if privacy.noise_source is NoiseSource.seeded and not rules.allow_seeded_noise:
        raise PolicyRefusal(
            RULE_RANDOMNESS,
            "DP noise must come from the operating system's entropy; the run asks for "
            "privacy.noise_source=seeded",
        )
    fixed = privacy.noise_multiplier
    if fixed is not None and fixed < rules.min_noise_multiplier:
        raise PolicyRefusal(
            RULE_NOISE,
            f"the noise multiplier must be at least {rules.min_noise_multiplier:g}; the run "
            f"fixes {fixed:g}",
        )
    if settings.task.train.pos_weight is None:
        raise PolicyRefusal(
            RULE_CLASS_WEIGHT,
            "under DP-SGD the class weight must be fixed by the configuration; the run "
            "asks for `task.train.pos_weight: null` (computed from the bank's own labels, "
            "a release the accountant does not cover)",
        )


def check_noise(noise_multiplier: float, policy: NodePolicy) -> None:
    """Refuse a planned noise multiplier below the policy's least.

    Raises
    ------
    PolicyRefusal
        If ``noise_multiplier`` is below ``privacy.min_noise_multiplier``.
    """
    least = policy.privacy.min_noise_multiplier
    if noise_multiplier < least:
        raise PolicyRefusal(
            RULE_NOISE,
            f"the noise multiplier must be at least {least:g}; the run's plan gives "
            f"{noise_multiplier:.4g}",
        )


def _check_secagg(settings: FedriskConfig, policy: NodePolicy, institutions: int) -> None:
    secagg, rules = settings.secagg, policy.secagg
    if not rules.required:
        return
    if not secagg.enabled:
        raise PolicyRefusal(
            RULE_SECAGG,
            "the bank sends only securely aggregated updates; the run asks for "
            f"secagg={secagg.mode.value}",
        )
    if rules.consistency_check and not secagg.consistency_check:
        raise PolicyRefusal(
            RULE_CONSISTENCY,
            "the bank requires the consistency round; the run asks for "
            "secagg.consistency_check=false",
        )
    shares = institutions if not secagg.degree else min(institutions, secagg.degree + 1)
    least = math.floor(rules.min_threshold_fraction * shares) + 1
    if secagg.threshold and secagg.threshold < least:
        raise PolicyRefusal(
            RULE_THRESHOLD,
            f"the threshold must be at least {least} of the {shares} holders of a secret "
            f"(more than {rules.min_threshold_fraction:.3g} of them); the run asks for "
            f"{secagg.threshold}",
        )


def threshold_floor(policy: NodePolicy) -> float | None:
    """Return the share of a secret's holders the bank's threshold must exceed, if any.

    The node enforces it at every secure-aggregation stage against the round it is
    shown (`fedrisk.client.secagg_node`), not only against the run's configuration.
    """
    return policy.secagg.min_threshold_fraction if policy.secagg.required else None


def check_schema(asked: TableSchema, own: TableSchema) -> None:
    """Refuse a run whose schema is not the bank's own (column order may differ).

    Raises
    ------
    PolicyRefusal
        Naming the first difference (a column added, removed or redefined).
    """
    mine = {spec.name: asdict(spec) for spec in own.features}
    theirs = {spec.name: asdict(spec) for spec in asked.features}
    for name in sorted(set(mine) | set(theirs)):
        if mine.get(name) != theirs.get(name):
            what = "adds" if name not in mine else "drops" if name not in theirs else "redefines"
            raise PolicyRefusal(
                RULE_SCHEMA,
                f"the run's schema {what} feature {name!r}; the bank's own schema file decides "
                "which columns leave its table",
            )
    for attribute in ("label", "time"):
        if getattr(asked, attribute) != getattr(own, attribute):
            raise PolicyRefusal(
                RULE_SCHEMA,
                f"the run's schema names {attribute} {getattr(asked, attribute)!r}; the "
                f"bank's own schema names {getattr(own, attribute)!r}",
            )
    if set(asked.protected_columns) != set(own.protected_columns):
        raise PolicyRefusal(
            RULE_SCHEMA,
            f"the run's schema names protected columns {sorted(asked.protected_columns)}; "
            f"the bank's own schema names {sorted(own.protected_columns)}",
        )
