"""ε of a history: golden values, same-library recomputation, and the independent oracle.

Provenance of the golden values: computed with opacus 1.6.0 and dp-accounting 0.6.0
(the versions pinned in pyproject) on 2026-11-25; the DESIGN.md figures were measured
the same way. A library upgrade that moves a pinned value fails `test_regression_pins`
with the versions in its message: re-measure, check the cross-library tests still pass,
and update the pins and DESIGN.md together.
"""

import random
import re

import pytest
from opacus.accountants import PRVAccountant, RDPAccountant

from fedrisk.privacy.accountant import (
    AccountantKind,
    IndependentMethod,
    accountant_version,
    canonical_history,
    epsilon_spent,
    independent_epsilon,
    independent_version,
)
from fedrisk.privacy.mechanism import PoissonGaussian

DELTA = 1e-5


def mech(sigma: float, q: float, steps: int, clip: float = 1.0) -> PoissonGaussian:
    return PoissonGaussian(noise_multiplier=sigma, sample_rate=q, steps=steps, max_grad_norm=clip)


# DESIGN.md "Privacy model": q=0.01, σ=1.1, 6000 steps, δ=1e-5.
DESIGN = [mech(1.1, 0.01, 6000)]
# The federated run: q=0.032, σ=1.0, 32 steps a round, δ=1e-5.
ONE_ROUND = [mech(1.0, 0.032, 32)]
TWENTY_ROUNDS = ONE_ROUND * 20
# Two runs on the same dataset with different plans (and clipping norms).
TWO_RUNS = [mech(1.0, 0.032, 32)] * 5 + [mech(1.3, 0.02, 50, clip=0.5)] * 3
THREE_MECHANISMS = [mech(0.9, 0.05, 20), mech(1.5, 0.01, 400), mech(2.0, 0.1, 10)]


# --- golden values --------------------------------------------------------------------


def test_design_md_golden_values_rdp():
    assert epsilon_spent(DESIGN, delta=DELTA, accountant=AccountantKind.rdp) == pytest.approx(
        4.247, abs=5e-4
    )
    assert independent_epsilon(DESIGN, delta=DELTA, method=IndependentMethod.rdp) == pytest.approx(
        4.247, abs=5e-4
    )


def test_design_md_golden_values_prv_and_pld_agree_within_one_percent():
    prv = epsilon_spent(DESIGN, delta=DELTA, accountant=AccountantKind.prv)
    pld = independent_epsilon(DESIGN, delta=DELTA, method=IndependentMethod.pld)

    assert prv == pytest.approx(3.910, abs=5e-4)
    assert pld == pytest.approx(3.900, abs=5e-4)
    assert prv == pytest.approx(pld, rel=0.01)


def test_per_round_epsilon_understates_the_composed_total():
    # DESIGN.md: "after 20 rounds at q=0.032, σ=1.0, 32 steps a round that understates ε
    # by 2.9× (5.78 vs 2.01)" — RDP at δ=1e-5. A fresh accountant each round reports the
    # single round's 2.01 every time; the ledger's composed history reports 5.78.
    one = epsilon_spent(ONE_ROUND, delta=DELTA, accountant=AccountantKind.rdp)
    total = epsilon_spent(TWENTY_ROUNDS, delta=DELTA, accountant=AccountantKind.rdp)

    assert one == pytest.approx(2.01, abs=5e-3)
    assert total == pytest.approx(5.78, abs=5e-3)
    assert total / one == pytest.approx(2.9, abs=0.05)
    assert independent_epsilon(
        TWENTY_ROUNDS, delta=DELTA, method=IndependentMethod.rdp
    ) == pytest.approx(total, rel=0.01)


# Exact outputs of `epsilon_spent` (opacus 1.6.0): RDP pinned to 1e-9 relative; PRV to
# 1e-7, since its FFT convolution and root search move in the ninth digit with the
# numpy/scipy build (measured: 3.909969767835678 -> 3.909969777251815 on numpy 2.4.6,
# scipy 1.17.1), far inside its own eps_error of 0.01.
PINS = [
    ("design", DESIGN, AccountantKind.rdp, 4.246594675698365),
    ("design", DESIGN, AccountantKind.prv, 3.909969767835678),
    ("one_round", ONE_ROUND, AccountantKind.rdp, 2.00864711465676),
    ("one_round", ONE_ROUND, AccountantKind.prv, 1.5539748134921052),
    ("twenty_rounds", TWENTY_ROUNDS, AccountantKind.rdp, 5.779269130864085),
    ("twenty_rounds", TWENTY_ROUNDS, AccountantKind.prv, 5.226496165338799),
    ("two_runs", TWO_RUNS, AccountantKind.rdp, 3.306447027134502),
    ("two_runs", TWO_RUNS, AccountantKind.prv, 2.8793343168834538),
    ("three_mechanisms", THREE_MECHANISMS, AccountantKind.rdp, 3.2862021517379945),
    ("three_mechanisms", THREE_MECHANISMS, AccountantKind.prv, 2.688120694633684),
]


@pytest.mark.parametrize(
    ("history", "accountant", "pinned"),
    [p[1:] for p in PINS],
    ids=[f"{p[0]}-{p[2].value}" for p in PINS],
)
def test_regression_pins(history, accountant, pinned):
    got = epsilon_spent(history, delta=DELTA, accountant=accountant)

    tolerance = 1e-9 if accountant is AccountantKind.rdp else 1e-7
    assert got == pytest.approx(pinned, rel=tolerance), (
        f"{accountant_version(accountant)} moved a pinned ε ({pinned!r} -> {got!r}); "
        "re-measure, re-check the cross-library tests, update the pins and DESIGN.md"
    )


# --- (a) same-library recomputation -----------------------------------------------------


@pytest.mark.parametrize("accountant", list(AccountantKind))
def test_merged_split_and_shuffled_histories_give_identical_epsilon(accountant):
    merged = [mech(1.0, 0.032, 32 * 5), mech(1.3, 0.02, 150)]
    split = [mech(1.3, 0.02, 50), *[mech(1.0, 0.032, 32)] * 5, mech(1.3, 0.02, 100)]
    shuffled = list(split)
    random.Random(7).shuffle(shuffled)

    values = {
        epsilon_spent(h, delta=DELTA, accountant=accountant) for h in (merged, split, shuffled)
    }

    assert len(values) == 1


def test_canonical_history_is_opacus_format_merged_and_sorted():
    assert canonical_history(TWO_RUNS) == ((1.0, 0.032, 160), (1.3, 0.02, 150))
    assert canonical_history([]) == ()


def test_rdp_equals_opacus_accountant_stepped_one_step_at_a_time():
    # What a long-lived Opacus PrivacyEngine would report after stepping every round.
    engine = RDPAccountant()
    for m in TWO_RUNS:
        for _ in range(m.steps):
            engine.step(noise_multiplier=m.noise_multiplier, sample_rate=m.sample_rate)

    got = epsilon_spent(TWO_RUNS, delta=DELTA, accountant=AccountantKind.rdp)

    assert got == pytest.approx(engine.get_epsilon(delta=DELTA), rel=1e-9)


def test_prv_equals_opacus_accountant_with_unmerged_history():
    history = ONE_ROUND * 3
    engine = PRVAccountant()
    engine.history = [(1.0, 0.032, 32)] * 3  # one entry per round, as Opacus would not merge

    got = epsilon_spent(history, delta=DELTA, accountant=AccountantKind.prv)

    assert got == pytest.approx(engine.get_epsilon(delta=DELTA), rel=1e-9)


@pytest.mark.parametrize("accountant", list(AccountantKind))
def test_epsilon_is_deterministic_and_leaves_no_state(accountant):
    first = epsilon_spent(ONE_ROUND, delta=DELTA, accountant=accountant)
    epsilon_spent([mech(2.0, 0.01, 10)], delta=DELTA, accountant=accountant)

    assert epsilon_spent(ONE_ROUND, delta=DELTA, accountant=accountant) == first


# --- (a) against dp_accounting ----------------------------------------------------------

# (q, σ, steps per round, rounds) over the DP-SGD regime, ε from ≈0.3 to ≈18.
RDP_GRID = [
    (0.01, 1.1, 6000, 1),
    (0.032, 1.0, 32, 20),
    (0.004, 0.8, 250, 10),
    (0.02, 0.7, 500, 4),  # ε ≈ 14.2: the two libraries are 0.42 % apart
    (0.05, 0.9, 100, 10),  # ε ≈ 14.8: 0.60 % apart
    (0.1, 1.0, 50, 10),  # ε ≈ 18.0: 0.77 % apart
    (0.25, 2.0, 20, 5),
    (0.001, 2.0, 1000, 1),
    (0.02, 1.5, 100, 3),
]
PRV_GRID = [
    (0.004, 0.8, 250, 10),  # ε ≈ 1.8
    (0.25, 2.0, 20, 5),  # ε ≈ 6.5
    (0.05, 0.9, 100, 10),  # ε ≈ 13.6
]


@pytest.mark.parametrize(("q", "sigma", "steps", "rounds"), RDP_GRID)
def test_opacus_rdp_agrees_with_dp_accounting_rdp(q, sigma, steps, rounds):
    history = [mech(sigma, q, steps)] * rounds

    ours = epsilon_spent(history, delta=DELTA, accountant=AccountantKind.rdp)
    oracle = independent_epsilon(history, delta=DELTA, method=IndependentMethod.rdp)

    assert ours == pytest.approx(oracle, rel=0.01)


@pytest.mark.parametrize(("q", "sigma", "steps", "rounds"), PRV_GRID)
def test_opacus_prv_agrees_with_dp_accounting_pld(q, sigma, steps, rounds):
    history = [mech(sigma, q, steps)] * rounds

    ours = epsilon_spent(history, delta=DELTA, accountant=AccountantKind.prv)
    oracle = independent_epsilon(history, delta=DELTA, method=IndependentMethod.pld)

    assert ours == pytest.approx(oracle, rel=0.01)


@pytest.mark.parametrize(
    ("accountant", "method"),
    [(AccountantKind.rdp, IndependentMethod.rdp), (AccountantKind.prv, IndependentMethod.pld)],
)
def test_heterogeneous_history_agrees_across_libraries(accountant, method):
    ours = epsilon_spent(TWO_RUNS, delta=DELTA, accountant=accountant)
    oracle = independent_epsilon(TWO_RUNS, delta=DELTA, method=method)

    assert ours == pytest.approx(oracle, rel=0.01)


def test_independent_oracle_never_calls_opacus(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("the independent oracle called Opacus")

    monkeypatch.setattr(RDPAccountant, "get_epsilon", boom)
    monkeypatch.setattr(PRVAccountant, "get_epsilon", boom)
    monkeypatch.setattr("opacus.accountants.analysis.rdp.compute_rdp", boom)

    cheap = [mech(2.0, 0.01, 10)]
    assert independent_epsilon(cheap, delta=DELTA, method=IndependentMethod.rdp) > 0
    assert independent_epsilon(cheap, delta=DELTA, method=IndependentMethod.pld) > 0


# --- edges and errors -------------------------------------------------------------------


@pytest.mark.parametrize("accountant", list(AccountantKind))
def test_empty_history_spends_nothing(accountant):
    assert epsilon_spent([], delta=DELTA, accountant=accountant) == 0.0


@pytest.mark.parametrize("method", list(IndependentMethod))
def test_empty_history_spends_nothing_independently(method):
    assert independent_epsilon([], delta=DELTA, method=method) == 0.0


@pytest.mark.parametrize("delta", [0.0, 1.0, -1e-5, 2.0, float("nan"), float("inf")])
def test_delta_outside_unit_interval_is_rejected(delta):
    with pytest.raises(ValueError, match=r"`delta` must be in \(0, 1\); got"):
        epsilon_spent(ONE_ROUND, delta=delta, accountant=AccountantKind.rdp)
    with pytest.raises(ValueError, match=r"`delta` must be in \(0, 1\); got"):
        independent_epsilon(ONE_ROUND, delta=delta, method=IndependentMethod.rdp)


def test_unknown_accountant_is_rejected_and_strings_are_accepted():
    with pytest.raises(ValueError, match="gdp"):
        epsilon_spent(ONE_ROUND, delta=DELTA, accountant="gdp")  # type: ignore[arg-type]

    assert epsilon_spent(ONE_ROUND, delta=DELTA, accountant="rdp") == epsilon_spent(  # type: ignore[arg-type]
        ONE_ROUND, delta=DELTA, accountant=AccountantKind.rdp
    )


def test_history_of_wrong_type_is_a_type_error():
    with pytest.raises(TypeError, match=r"`history\[0\]` must be a PoissonGaussian; got tuple"):
        epsilon_spent([(1.0, 0.01, 10)], delta=DELTA, accountant=AccountantKind.rdp)  # type: ignore[list-item]


def test_full_batch_sampling_is_accounted():
    history = [mech(1.0, 1.0, 10)]

    rdp = epsilon_spent(history, delta=DELTA, accountant=AccountantKind.rdp)
    prv = epsilon_spent(history, delta=DELTA, accountant=AccountantKind.prv)

    # q = 1 is the plain Gaussian mechanism; Opacus PRV evaluates log(1 - q) = -inf.
    assert rdp == pytest.approx(19.05, abs=0.01)
    assert rdp == pytest.approx(
        independent_epsilon(history, delta=DELTA, method=IndependentMethod.rdp), rel=0.01
    )
    assert prv == pytest.approx(17.87, abs=0.01)  # PLD (measured): 17.86


def test_versions_name_library_version_and_accountant():
    assert re.fullmatch(r"opacus 1\.6\.\d+ rdp", accountant_version(AccountantKind.rdp))
    assert re.fullmatch(r"opacus 1\.6\.\d+ prv", accountant_version(AccountantKind.prv))
    assert re.fullmatch(r"dp-accounting \d+\.\d+\.\d+ rdp", independent_version("rdp"))
    assert independent_version(IndependentMethod.pld).endswith(
        "pld (value_discretization_interval=0.0001)"
    )


def test_enum_members_are_their_values():
    assert [k.name for k in AccountantKind] == [k.value for k in AccountantKind]
    assert [m.name for m in IndependentMethod] == [m.value for m in IndependentMethod]
