"""The round gate refuses exactly the first round that would overspend, and nothing else.

The oracle is independent of `gate_round` and of `epsilon_spent`'s merging: it composes
each round's RDP curve (`opacus.accountants.analysis.rdp.compute_rdp`) by summing, in
round order, and converts each prefix to ε with Opacus's conversion. It agrees with
`epsilon_spent` to rounding, so comparisons allow 1e-12 relative slack at the boundary.
"""

from functools import cache

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from opacus.accountants import RDPAccountant
from opacus.accountants.analysis import rdp as rdp_analysis

from fedrisk.privacy.accountant import AccountantKind, epsilon_spent
from fedrisk.privacy.budget import Budget, gate_round
from fedrisk.privacy.mechanism import PoissonGaussian

DELTA = 1e-5
SLACK = 1e-12
# A consortium's realistic per-round plans; few distinct (σ, q) keep Opacus RDP fast.
PLANS = [(1.0, 0.032), (1.1, 0.01), (1.5, 0.005)]


@cache
def _rdp_per_step(sigma: float, q: float) -> tuple[float, ...]:
    orders = RDPAccountant.DEFAULT_ALPHAS
    return tuple(rdp_analysis.compute_rdp(q=q, noise_multiplier=sigma, steps=1, orders=orders))


def oracle_prefix_epsilons(schedule: list[PoissonGaussian]) -> list[float]:
    total = np.zeros(len(RDPAccountant.DEFAULT_ALPHAS))
    out = []
    for m in schedule:
        total = total + m.steps * np.asarray(_rdp_per_step(m.noise_multiplier, m.sample_rate))
        eps, _ = rdp_analysis.get_privacy_spent(
            orders=RDPAccountant.DEFAULT_ALPHAS, rdp=total, delta=DELTA
        )
        out.append(float(eps))
    return out


rounds = st.builds(
    lambda plan, steps: PoissonGaussian(
        noise_multiplier=plan[0], sample_rate=plan[1], steps=steps, max_grad_norm=1.0
    ),
    st.sampled_from(PLANS),
    st.integers(min_value=1, max_value=120),
)
schedules = st.lists(rounds, min_size=1, max_size=5)


@st.composite
def schedule_and_budget(draw: st.DrawFn) -> tuple[list[PoissonGaussian], Budget, int | None]:
    schedule = draw(schedules)
    prefix = oracle_prefix_epsilons(schedule)
    # Budgets around the schedule's spend: some runs finish, most stop part-way, and some
    # budgets sit exactly on a prefix's ε (equality is allowed).
    exact: int | None = None
    if draw(st.booleans()):
        exact = draw(st.integers(min_value=0, max_value=len(schedule) - 1))
        epsilon = epsilon_spent(schedule[: exact + 1], delta=DELTA, accountant=AccountantKind.rdp)
    else:
        epsilon = draw(st.floats(min_value=0.05, max_value=1.3)) * prefix[-1]
    return schedule, Budget(epsilon=epsilon, delta=DELTA), exact


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schedule_and_budget())
def test_gate_refuses_exactly_the_first_round_that_would_overspend(case):
    schedule, budget, exact = case
    prefix = oracle_prefix_epsilons(schedule)

    history: list[PoissonGaussian] = []
    refused_at = None
    for i, planned in enumerate(schedule):
        decision = gate_round(
            history,
            planned,
            budget=budget,
            accountant=AccountantKind.rdp,
            institution="bank_a",
        )
        if not decision.allowed:
            refused_at = i
            break
        history.append(planned)  # commit only after the gate allowed the release
        spent_now = epsilon_spent(history, delta=DELTA, accountant=AccountantKind.rdp)
        assert spent_now <= budget.epsilon  # never over budget, not even by rounding

    event("refused part-way" if refused_at is not None else "ran to the end")
    # Every round let through fits (so the first overspending round was not let through)...
    ran = len(history)
    assert all(eps <= budget.epsilon * (1 + SLACK) for eps in prefix[:ran])
    # ...and the refused round does overspend (so no round was refused too early).
    if refused_at is not None:
        assert refused_at == ran
        assert prefix[refused_at] > budget.epsilon * (1 - SLACK)
    else:
        assert ran == len(schedule)
    if exact is not None:  # the round that lands exactly on the budget runs
        assert ran >= exact + 1
    # Together: the refusal falls exactly on the first prefix whose ε exceeds the budget.
    first_over = next((i for i, eps in enumerate(prefix) if eps > budget.epsilon), None)
    if first_over is not None and not _tie(prefix[first_over], budget.epsilon):
        assert refused_at == first_over


def _tie(a: float, b: float) -> bool:
    return abs(a - b) <= SLACK * b


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schedules, st.floats(min_value=0.5, max_value=8.0))
def test_spent_never_exceeds_budget_even_if_gating_continues(schedule, budget_epsilon):
    # A node that keeps asking after a refusal (e.g. a smaller later round) stays within.
    budget = Budget(epsilon=budget_epsilon, delta=DELTA)
    history: list[PoissonGaussian] = []

    for planned in schedule:
        decision = gate_round(
            history,
            planned,
            budget=budget,
            accountant=AccountantKind.rdp,
            institution="bank_a",
        )
        assert decision.allowed == (decision.projected <= budget.epsilon)
        if decision.allowed:
            history.append(planned)

    assert epsilon_spent(history, delta=DELTA, accountant=AccountantKind.rdp) <= budget.epsilon
