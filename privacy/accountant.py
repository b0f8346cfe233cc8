"""Cumulative ε of an institution's history of Poisson-sampled Gaussian releases.

Two families of accountants live here, deliberately from different libraries:

* `epsilon_spent` — what fedrisk reports and records in the ledger — uses Opacus's own
  accountants (`opacus.accountants.RDPAccountant` / `PRVAccountant`), the code that
  DP-SGD users already trust.
* `independent_epsilon` — the auditor's oracle — uses Google's ``dp_accounting`` only
  (RDP or privacy-loss distributions) and never calls Opacus.

Both are pure functions of the history: nothing is cached and no accountant object
outlives a call, so the same history always gives the same ε.

Notes
-----
Composition is commutative, so a history is first reduced to its canonical form: one
``(noise_multiplier, sample_rate, steps)`` triple per distinct ``(σ, q)`` pair, steps
summed, sorted. That is Opacus's history format with consecutive (and non-consecutive)
identical mechanisms merged. It makes ε independent of the order and the splitting of
the history (bit-for-bit, not merely to rounding), and it is much faster: Opacus's PRV
accountant discretises and FFT-composes each entry separately (≈0.1-0.5 s per distinct
mechanism). The clipping norm does not enter ε.

Measured agreement (opacus 1.6.0, dp-accounting 0.6.0, δ=1e-5, see
``tests/privacy/test_accountant.py``):

* q=0.01, σ=1.1, 6000 steps: Opacus RDP 4.2466, dp_accounting RDP 4.2466; Opacus PRV
  3.9100, dp_accounting PLD 3.8998 (0.26 % apart).
* q=0.032, σ=1.0, 32 steps a round: one round 2.0086 (RDP), 20 rounds composed 5.7793
  (RDP) — the figures in DESIGN.md. PRV gives 1.554 and 5.226.
* Opacus RDP vs dp_accounting RDP: within 1 % for ε between ≈ 0.2 and 20; they use
  different orders and RDP→(ε, δ) conversions: 0.4-0.6 % apart near ε = 15, 0.8 % at
  ε = 18. Outside that range they part, and both remain valid upper bounds. Above
  ε ≈ 25 dp_accounting drops fractional orders whose series fail to converge (it logs a
  warning) and is 1-12 % higher. Opacus's orders stop at 63, so its ε cannot fall below
  ≈ 0.10 at δ=1e-5 (it warns "Optimal order is the largest alpha"): where the true ε is
  below ≈ 0.2, Opacus reports more, up to several times more.
* Opacus PRV vs dp_accounting PLD: within 1 % for ε ≳ 1.5 (0.03-0.7 % measured).
  Opacus returns the upper end of its error interval (estimate + ``eps_error`` = 0.01),
  so PRV sits ≈ 0.01 above PLD in absolute terms; below ε ≈ 1 compare with an absolute
  allowance of 0.011 rather than 1 %.

Runtime (2-core machine, δ=1e-5, q=0.01): ten rounds of the same 1000-step mechanism
merge into one entry: Opacus RDP 0.014 s, PRV 0.38 s; dp_accounting RDP 0.03 s, PLD 0.46 s.
Ten *distinct* 1000-step mechanisms: Opacus RDP 0.14 s, PRV 4.8 s; dp_accounting RDP
0.25 s, PLD 4.4 s (CPU) — PRV and PLD cost ≈ 0.4-0.5 s per distinct (σ, q).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from enum import Enum
from importlib import metadata
from typing import Protocol

import dp_accounting
import numpy as np
from opacus.accountants import PRVAccountant, RDPAccountant
from opacus.accountants.accountant import IAccountant

from fedrisk.privacy.mechanism import PoissonGaussian

#: ``(noise_multiplier, sample_rate, steps)``: one entry of Opacus's accountant history.
HistoryEntry = tuple[float, float, int]

#: PLD discretisation of the privacy-loss values. 1e-4 is within 0.01 % of 1e-5 at
#: ε ≈ 4 (3.89977 vs 3.89975) at a tenth of the cost (0.4 s vs 4 s per mechanism);
#: 1e-3 is 0.07 % looser, 1e-2 7 % looser. Coarser is pessimistic (larger ε), never
#: optimistic.
PLD_VALUE_DISCRETIZATION = 1e-4


class AccountantKind(str, Enum):
    """The accountant fedrisk reports ε with (Opacus)."""

    rdp = "rdp"
    prv = "prv"


class IndependentMethod(str, Enum):
    """The auditor's independent accountant (Google ``dp_accounting``)."""

    rdp = "rdp"
    pld = "pld"


class EpsilonBackend(Protocol):
    """A pluggable accountant: ε of a canonical history at a given δ."""

    def __call__(self, history: Sequence[HistoryEntry], *, delta: float) -> float:
        """Return ε of the composition of ``history`` at ``delta``."""
        ...


def canonical_history(history: Sequence[PoissonGaussian]) -> tuple[HistoryEntry, ...]:
    """Reduce a history to one entry per distinct ``(σ, q)``, steps summed, sorted.

    Parameters
    ----------
    history : Sequence[PoissonGaussian]
        The mechanisms released, in any order.

    Returns
    -------
    tuple[HistoryEntry, ...]
        ``(noise_multiplier, sample_rate, steps)`` triples sorted by ``(σ, q)``.

    Raises
    ------
    TypeError
        If an element is not a `PoissonGaussian`.
    """
    steps: dict[tuple[float, float], int] = {}
    for i, mechanism in enumerate(history):
        if not isinstance(mechanism, PoissonGaussian):
            raise TypeError(
                f"`history[{i}]` must be a PoissonGaussian; got {type(mechanism).__name__}"
            )
        key = (float(mechanism.noise_multiplier), float(mechanism.sample_rate))
        steps[key] = steps.get(key, 0) + mechanism.steps
    return tuple((sigma, q, n) for (sigma, q), n in sorted(steps.items()))


def _opacus(factory: Callable[[], IAccountant]) -> EpsilonBackend:
    def epsilon(history: Sequence[HistoryEntry], *, delta: float) -> float:
        accountant = factory()
        accountant.history = list(history)
        # PRV evaluates log(1 - q), which is -inf by design when q = 1.
        with np.errstate(divide="ignore"):
            return float(accountant.get_epsilon(delta=delta))

    return epsilon


def _dp_event(history: Sequence[HistoryEntry]) -> dp_accounting.DpEvent:
    return dp_accounting.ComposedDpEvent(
        [
            dp_accounting.SelfComposedDpEvent(
                dp_accounting.PoissonSampledDpEvent(
                    sampling_probability=q, event=dp_accounting.GaussianDpEvent(sigma)
                ),
                count=steps,
            )
            for sigma, q, steps in history
        ]
    )


def _google_rdp(history: Sequence[HistoryEntry], *, delta: float) -> float:
    accountant = dp_accounting.rdp.RdpAccountant(
        neighboring_relation=dp_accounting.NeighboringRelation.ADD_OR_REMOVE_ONE
    )
    accountant.compose(_dp_event(history))
    return float(accountant.get_epsilon(delta))


def _google_pld(history: Sequence[HistoryEntry], *, delta: float) -> float:
    accountant = dp_accounting.pld.PLDAccountant(
        neighboring_relation=dp_accounting.NeighboringRelation.ADD_OR_REMOVE_ONE,
        value_discretization_interval=PLD_VALUE_DISCRETIZATION,
    )
    accountant.compose(_dp_event(history))
    return float(accountant.get_epsilon(delta))


_OPACUS: dict[AccountantKind, EpsilonBackend] = {
    AccountantKind.rdp: _opacus(RDPAccountant),
    AccountantKind.prv: _opacus(PRVAccountant),
}
_INDEPENDENT: dict[IndependentMethod, EpsilonBackend] = {
    IndependentMethod.rdp: _google_rdp,
    IndependentMethod.pld: _google_pld,
}


def _check_delta(delta: float) -> None:
    if not (isinstance(delta, int | float) and math.isfinite(delta) and 0.0 < delta < 1.0):
        raise ValueError(f"`delta` must be in (0, 1); got {delta!r}")


def epsilon_spent(
    history: Sequence[PoissonGaussian], *, delta: float, accountant: AccountantKind
) -> float:
    """Return the cumulative ε of every mechanism in ``history`` with Opacus's accountant.

    Parameters
    ----------
    history : Sequence[PoissonGaussian]
        Every release on the dataset so far (all rounds, all runs). Each is ``steps``
        compositions of the Poisson-subsampled Gaussian mechanism.
    delta : float
        The δ at which ε is stated; in (0, 1).
    accountant : AccountantKind
        ``rdp`` (Opacus `RDPAccountant`) or ``prv`` (Opacus `PRVAccountant`, default
        ``eps_error=0.01``; the upper end of its error interval is returned).

    Returns
    -------
    float
        ε of the composition; 0.0 for an empty history. Deterministic: independent of
        the order and splitting of ``history`` (see module Notes).

    Raises
    ------
    ValueError
        If ``delta`` is not in (0, 1) or ``accountant`` is not a known kind.
    TypeError
        If an element of ``history`` is not a `PoissonGaussian`.
    """
    _check_delta(delta)
    backend = _OPACUS[AccountantKind(accountant)]
    entries = canonical_history(history)
    return backend(entries, delta=delta) if entries else 0.0


def independent_epsilon(
    history: Sequence[PoissonGaussian], *, delta: float, method: IndependentMethod
) -> float:
    """Return the cumulative ε of ``history`` with Google's ``dp_accounting`` only.

    The auditor's cross-check of `epsilon_spent`: each mechanism is
    ``SelfComposedDpEvent(PoissonSampledDpEvent(q, GaussianDpEvent(σ)), steps)``, all
    composed with ``ComposedDpEvent``, under add/remove-one neighbouring.

    Parameters
    ----------
    history : Sequence[PoissonGaussian]
        Every release on the dataset so far.
    delta : float
        The δ at which ε is stated; in (0, 1).
    method : IndependentMethod
        ``rdp`` (`dp_accounting.rdp.RdpAccountant`, default orders) to check Opacus RDP;
        ``pld`` (`dp_accounting.pld.PLDAccountant`, value discretisation
        `PLD_VALUE_DISCRETIZATION`) to check Opacus PRV.

    Returns
    -------
    float
        ε of the composition; 0.0 for an empty history.

    Raises
    ------
    ValueError
        If ``delta`` is not in (0, 1) or ``method`` is not a known method.
    TypeError
        If an element of ``history`` is not a `PoissonGaussian`.

    Notes
    -----
    Expect agreement with `epsilon_spent` within 1 % in the DP-SGD regime (module Notes).
    PLD is slow for very small σ (σ ≤ 0.1: tens of seconds), where ε is in the hundreds.
    """
    _check_delta(delta)
    backend = _INDEPENDENT[IndependentMethod(method)]
    entries = canonical_history(history)
    return backend(entries, delta=delta) if entries else 0.0


def accountant_version(accountant: AccountantKind) -> str:
    """Name the library, version and accountant behind `epsilon_spent`, for the ledger.

    Raises
    ------
    ValueError
        If ``accountant`` is not a known kind.
    """
    return f"opacus {metadata.version('opacus')} {AccountantKind(accountant).value}"


def independent_version(method: IndependentMethod) -> str:
    """Name the library, version and method behind `independent_epsilon`, for reports.

    Raises
    ------
    ValueError
        If ``method`` is not a known method.
    """
    method = IndependentMethod(method)
    detail = f" (value_discretization_interval={PLD_VALUE_DISCRETIZATION:g})"
    suffix = detail if method is IndependentMethod.pld else ""
    return f"dp-accounting {metadata.version('dp-accounting')} {method.value}{suffix}"
