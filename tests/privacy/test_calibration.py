"""Calibration plans the whole run: it ends at the target ε, composed after the prior spend."""

import pytest
from opacus.accountants.utils import get_noise_multiplier

from fedrisk.privacy.accountant import AccountantKind, epsilon_spent
from fedrisk.privacy.calibration import (
    MAX_NOISE_MULTIPLIER,
    MIN_NOISE_MULTIPLIER,
    PrivacyPlanError,
    calibrate_noise,
)
from fedrisk.privacy.mechanism import PoissonGaussian

DELTA = 1e-5
Q = 0.02
ROUNDS, STEPS_PER_ROUND = 10, 25
STEPS = ROUNDS * STEPS_PER_ROUND


def mech(sigma: float, q: float, steps: int) -> PoissonGaussian:
    return PoissonGaussian(noise_multiplier=sigma, sample_rate=q, steps=steps, max_grad_norm=1.0)


# Opacus RDP warns when ε's optimal order is its largest (σ in the tens and above).
LARGE_SIGMA_WARNING = pytest.mark.filterwarnings("ignore:Optimal order is the largest alpha")

# An earlier run on the same dataset: ε ≈ 2.95 (RDP) / 2.47 (PRV) at δ=1e-5.
PRIOR = [mech(1.0, 0.032, 32)] * 5


def run_spend(sigma: float, accountant: AccountantKind, prior=()) -> float:
    """ε after the planned run, executed round by round as the ledger records it."""
    rounds = [mech(sigma, Q, STEPS_PER_ROUND)] * ROUNDS
    return epsilon_spent([*prior, *rounds], delta=DELTA, accountant=accountant)


@pytest.mark.parametrize("target", [1.0, 2.0, 4.0, 8.0])
@pytest.mark.parametrize("accountant", list(AccountantKind))
def test_planned_run_ends_within_tolerance_below_target(accountant, target):
    sigma = calibrate_noise(
        target_epsilon=target, delta=DELTA, sample_rate=Q, steps=STEPS, accountant=accountant
    )

    spent = run_spend(sigma, accountant)

    assert 0.99 * target <= spent <= target  # the contract: tolerance=0.01 (acceptance: 5 %)


@pytest.mark.parametrize(
    ("accountant", "target"), [(AccountantKind.rdp, 8.0), (AccountantKind.prv, 4.0)]
)
def test_calibration_composes_with_the_prior_spend(accountant, target):
    sigma = calibrate_noise(
        target_epsilon=target,
        delta=DELTA,
        sample_rate=Q,
        steps=STEPS,
        accountant=accountant,
        prior=PRIOR,
    )

    spent = run_spend(sigma, accountant, prior=PRIOR)

    assert 0.99 * target <= spent <= target
    # The prior is really composed: the same noise without it would end well below target.
    assert run_spend(sigma, accountant) < 0.99 * target


def test_less_budget_left_means_more_noise():
    kwargs = {
        "target_epsilon": 6.0,
        "delta": DELTA,
        "sample_rate": Q,
        "steps": STEPS,
        "accountant": AccountantKind.rdp,
    }

    assert calibrate_noise(**kwargs, prior=PRIOR) > calibrate_noise(**kwargs)


@LARGE_SIGMA_WARNING
def test_target_barely_above_the_prior_spend_needs_much_noise():
    accountant = AccountantKind.rdp
    already = epsilon_spent(PRIOR, delta=DELTA, accountant=accountant)
    target = already * 1.005  # inside the tolerance window already

    sigma = calibrate_noise(
        target_epsilon=target,
        delta=DELTA,
        sample_rate=Q,
        steps=STEPS,
        accountant=accountant,
        prior=PRIOR,
    )

    assert sigma > 5.0
    assert 0.99 * target <= run_spend(sigma, accountant, prior=PRIOR) <= target


def test_noise_is_the_smallest_within_tolerance():
    sigma = calibrate_noise(
        target_epsilon=2.0, delta=DELTA, sample_rate=Q, steps=STEPS, accountant=AccountantKind.rdp
    )

    # 1 % less noise than calibrated (which spends ≥ 99 % of the target) overspends.
    assert run_spend(0.99 * sigma, AccountantKind.rdp) > 2.0


@LARGE_SIGMA_WARNING  # Opacus's own search doubles σ up to 20 first
def test_agrees_with_opacus_get_noise_multiplier_without_prior():
    ours = calibrate_noise(
        target_epsilon=4.0, delta=DELTA, sample_rate=Q, steps=STEPS, accountant=AccountantKind.rdp
    )
    opacus = get_noise_multiplier(
        target_epsilon=4.0, target_delta=DELTA, sample_rate=Q, steps=STEPS, accountant="rdp"
    )

    assert ours == pytest.approx(opacus, rel=0.01)


def test_tighter_tolerance_is_honoured():
    sigma = calibrate_noise(
        target_epsilon=3.0,
        delta=DELTA,
        sample_rate=Q,
        steps=STEPS,
        accountant=AccountantKind.rdp,
        tolerance=1e-4,
    )

    assert 3.0 * (1 - 1e-4) <= run_spend(sigma, AccountantKind.rdp) <= 3.0


# --- impossible plans ---------------------------------------------------------------------


@pytest.mark.parametrize("accountant", list(AccountantKind))
def test_prior_spend_at_or_over_target_is_refused(accountant):
    with pytest.raises(PrivacyPlanError, match=r"already spent ε=\S+ of its target 2"):
        calibrate_noise(
            target_epsilon=2.0,
            delta=DELTA,
            sample_rate=Q,
            steps=STEPS,
            accountant=accountant,
            prior=PRIOR,
        )


@LARGE_SIGMA_WARNING
@pytest.mark.parametrize("accountant", list(AccountantKind))
def test_target_unreachable_even_with_maximal_noise_is_refused(accountant):
    # Opacus RDP bottoms out at ε ≈ 0.1 and PRV at its eps_error 0.01 for this plan.
    with pytest.raises(PrivacyPlanError, match=r"unreachable: even noise_multiplier=1000"):
        calibrate_noise(
            target_epsilon=0.005,
            delta=DELTA,
            sample_rate=0.01,
            steps=1000,
            accountant=accountant,
        )


def test_target_looser_than_minimal_noise_is_refused():
    with pytest.raises(PrivacyPlanError, match="lower `target_epsilon` or plan more steps"):
        calibrate_noise(
            target_epsilon=1e4,
            delta=DELTA,
            sample_rate=0.001,
            steps=10,
            accountant=AccountantKind.rdp,
        )


def test_plan_error_is_a_value_error():
    assert issubclass(PrivacyPlanError, ValueError)
    assert MIN_NOISE_MULTIPLIER < 1.0 < MAX_NOISE_MULTIPLIER


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"target_epsilon": 0.0}, "`target_epsilon` must be positive"),
        ({"target_epsilon": float("inf")}, "`target_epsilon` must be positive"),
        ({"tolerance": 0.0}, r"`tolerance` must be in \(0, 1\)"),
        ({"tolerance": 1.0}, r"`tolerance` must be in \(0, 1\)"),
        ({"delta": 0.0}, r"`delta` must be in \(0, 1\)"),
        ({"sample_rate": 0.0}, r"`sample_rate` must be in \(0, 1\]"),
        ({"steps": 0}, "`steps` must be a positive integer"),
        ({"max_grad_norm": -1.0}, "`max_grad_norm` must be positive"),
        ({"accountant": "moments"}, "moments"),
    ],
)
def test_invalid_parameters_are_rejected(overrides, message):
    kwargs = {
        "target_epsilon": 2.0,
        "delta": DELTA,
        "sample_rate": Q,
        "steps": STEPS,
        "accountant": AccountantKind.rdp,
    }
    kwargs.update(overrides)

    with pytest.raises(ValueError, match=message) as caught:
        calibrate_noise(**kwargs)

    assert not isinstance(caught.value, PrivacyPlanError)
