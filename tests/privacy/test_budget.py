"""Budgets, δ against the dataset size, and the validate-then-commit round gate."""

import math

import pytest

from fedrisk.privacy.accountant import AccountantKind, epsilon_spent
from fedrisk.privacy.budget import (
    Budget,
    BudgetDecision,
    PrivacyBudgetExceeded,
    PrivacyConfigError,
    check_delta,
    gate_round,
    require_within_budget,
)
from fedrisk.privacy.mechanism import PoissonGaussian

DELTA = 1e-5
ROUND = PoissonGaussian(noise_multiplier=1.0, sample_rate=0.032, steps=32, max_grad_norm=1.0)


def spent(history, accountant=AccountantKind.rdp) -> float:
    return epsilon_spent(history, delta=DELTA, accountant=accountant)


# --- Budget -----------------------------------------------------------------------------


def test_budget_holds_its_values():
    budget = Budget(epsilon=4.0, delta=DELTA)

    assert (budget.epsilon, budget.delta) == (4.0, DELTA)


@pytest.mark.parametrize("epsilon", [0.0, -1.0, math.inf, math.nan, True, "4"])
def test_budget_epsilon_must_be_positive_and_finite(epsilon):
    with pytest.raises(ValueError, match="`epsilon` must be positive and finite; got"):
        Budget(epsilon=epsilon, delta=DELTA)


@pytest.mark.parametrize("delta", [0.0, 1.0, -1e-5, 1.5, math.nan])
def test_budget_delta_must_be_in_unit_interval(delta):
    with pytest.raises(ValueError, match=r"`delta` must be in \(0, 1\); got"):
        Budget(epsilon=4.0, delta=delta)


def test_budget_is_frozen():
    budget = Budget(epsilon=4.0, delta=DELTA)

    with pytest.raises(AttributeError):
        budget.epsilon = 8.0  # type: ignore[misc]


# --- check_delta ------------------------------------------------------------------------


def test_delta_at_or_below_one_over_n_is_accepted():
    check_delta(1e-4, n_records=10_000, institution="bank_a")
    check_delta(1e-6, n_records=10_000, institution="bank_a")


def test_delta_above_one_over_n_is_refused_with_the_fix():
    with pytest.raises(PrivacyConfigError) as caught:
        check_delta(1e-3, n_records=10_000, institution="bank_a")

    message = str(caught.value)
    assert message.startswith("δ=0.001 exceeds 1/n=0.0001 for institution bank_a with 10000 ")
    assert "choose δ ≤ 0.0001" in message
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("delta", [0.0, 1.0, -0.1])
def test_delta_outside_unit_interval_is_a_config_error(delta):
    with pytest.raises(PrivacyConfigError, match=r"`delta` must be in \(0, 1\)"):
        check_delta(delta, n_records=100, institution="bank_a")


@pytest.mark.parametrize("n_records", [0, -5, 2.5, True])
def test_n_records_must_be_a_positive_integer(n_records):
    with pytest.raises(ValueError, match="`n_records` must be a positive integer; got"):
        check_delta(1e-5, n_records=n_records, institution="bank_a")


# --- PrivacyBudgetExceeded --------------------------------------------------------------


def test_budget_exceeded_carries_the_figures_and_reads_in_one_line():
    budget = Budget(epsilon=4.0, delta=DELTA)

    err = PrivacyBudgetExceeded(institution="bank_a", spent=3.91, projected=4.12, budget=budget)

    assert str(err) == "bank_a: this round would take ε from 3.91 to 4.12, over its budget 4.00"
    assert (err.institution, err.spent, err.projected, err.budget) == (
        "bank_a",
        3.91,
        4.12,
        budget,
    )
    assert err.cost == pytest.approx(0.21)


def test_budget_exceeded_prints_enough_digits_to_show_the_overrun():
    err = PrivacyBudgetExceeded(
        institution="bank_b", spent=3.9, projected=4.0003, budget=Budget(epsilon=4.0, delta=DELTA)
    )

    assert (
        str(err) == "bank_b: this round would take ε from 3.9000 to 4.0003, over its budget 4.0000"
    )


# --- gate_round -------------------------------------------------------------------------


@pytest.mark.parametrize("accountant", list(AccountantKind))
def test_round_within_budget_is_allowed(accountant):
    history = [ROUND] * 3
    budget = Budget(epsilon=10.0, delta=DELTA)

    decision = gate_round(
        history, ROUND, budget=budget, accountant=accountant, institution="bank_a"
    )

    assert decision.allowed
    assert decision.spent == spent(history, accountant)
    assert decision.projected == spent([*history, ROUND], accountant)
    assert decision.cost == pytest.approx(decision.projected - decision.spent)
    assert decision.budget is budget


def test_round_over_budget_is_refused_and_nothing_is_committed():
    history = [ROUND] * 19
    budget = Budget(epsilon=5.7, delta=DELTA)  # 19 rounds ≈ 5.62, 20 rounds ≈ 5.78
    before = list(history)

    decision = gate_round(
        history, ROUND, budget=budget, accountant=AccountantKind.rdp, institution="bank_a"
    )

    assert not decision.allowed
    assert decision.spent <= 5.7 < decision.projected
    assert history == before
    again = gate_round(
        history, ROUND, budget=budget, accountant=AccountantKind.rdp, institution="bank_a"
    )
    assert again == decision


def test_projection_exactly_at_the_budget_is_allowed():
    history = [ROUND] * 4
    budget = Budget(epsilon=spent([*history, ROUND]), delta=DELTA)

    decision = gate_round(
        history, ROUND, budget=budget, accountant=AccountantKind.rdp, institution="bank_a"
    )

    assert decision.allowed
    assert decision.projected == budget.epsilon


def test_first_round_is_gated_from_nothing_spent():
    decision = gate_round(
        [],
        ROUND,
        budget=Budget(epsilon=1.0, delta=DELTA),
        accountant=AccountantKind.rdp,
        institution="bank_a",
    )

    assert decision.spent == 0.0
    assert not decision.allowed  # one round costs ≈ 2.01


def test_gate_uses_the_budget_delta():
    loose = gate_round(
        [ROUND],
        ROUND,
        budget=Budget(epsilon=10.0, delta=1e-3),
        accountant=AccountantKind.rdp,
        institution="bank_a",
    )
    strict = gate_round(
        [ROUND],
        ROUND,
        budget=Budget(epsilon=10.0, delta=1e-8),
        accountant=AccountantKind.rdp,
        institution="bank_a",
    )

    assert loose.projected < strict.projected


def test_gate_rejects_a_planned_round_of_the_wrong_type():
    with pytest.raises(TypeError, match="must be a PoissonGaussian"):
        gate_round(
            [],
            (1.0, 0.032, 32),  # type: ignore[arg-type]
            budget=Budget(epsilon=1.0, delta=DELTA),
            accountant=AccountantKind.rdp,
            institution="bank_a",
        )


# --- require_within_budget --------------------------------------------------------------


def test_require_within_budget_raises_with_the_projection():
    history = [ROUND] * 19
    budget = Budget(epsilon=5.7, delta=DELTA)

    with pytest.raises(PrivacyBudgetExceeded) as caught:
        require_within_budget(
            history, ROUND, budget=budget, accountant=AccountantKind.rdp, institution="bank_a"
        )

    err = caught.value
    assert err.institution == "bank_a" and err.budget is budget
    assert err.spent == spent(history)
    assert err.projected == spent([*history, ROUND])
    assert err.cost == pytest.approx(err.projected - err.spent)
    assert str(err) == (
        f"bank_a: this round would take ε from {err.spent:.2f} to {err.projected:.2f}, "
        "over its budget 5.70"
    )


def test_require_within_budget_returns_the_allowed_decision():
    decision = require_within_budget(
        [],
        ROUND,
        budget=Budget(epsilon=4.0, delta=DELTA),
        accountant=AccountantKind.rdp,
        institution="bank_a",
    )

    assert decision.allowed


# --- BudgetDecision ---------------------------------------------------------------------


def test_decision_must_agree_with_its_figures():
    budget = Budget(epsilon=4.0, delta=DELTA)

    with pytest.raises(ValueError, match="`allowed` must be projected ≤ budget"):
        BudgetDecision(allowed=True, spent=3.9, projected=4.1, budget=budget)
    with pytest.raises(ValueError, match="`allowed` must be projected ≤ budget"):
        BudgetDecision(allowed=False, spent=3.9, projected=4.0, budget=budget)


@pytest.mark.parametrize("field", ["spent", "projected"])
@pytest.mark.parametrize("value", [-0.1, math.inf, math.nan])
def test_decision_figures_must_be_finite_and_non_negative(field, value):
    figures = {"spent": 1.0, "projected": 2.0, field: value}

    with pytest.raises(ValueError, match=f"`{field}` must be non-negative and finite"):
        BudgetDecision(allowed=False, budget=Budget(epsilon=1.0, delta=DELTA), **figures)
