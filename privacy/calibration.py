"""Plan a run's noise: the smallest noise multiplier that ends the run at the target ε.

Calibration happens once, before round 1, for the whole planned run, and composes with
everything the institution has already spent on the dataset (the ledger's history): the
planned run ends with cumulative ε at most the target and within ``tolerance`` of it.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Sequence

from fedrisk.privacy.accountant import AccountantKind, epsilon_spent
from fedrisk.privacy.mechanism import PoissonGaussian

#: No plan needs more noise than this; a target unreachable below it is refused.
MAX_NOISE_MULTIPLIER = 1e3
#: Nor less: below it accountants get slow (PRV, ε in the hundreds) and DP-SGD degenerates.
MIN_NOISE_MULTIPLIER = 0.25
#: Assumed d log(ε - ε_prior) / d log σ before two evaluations give a secant: between the
#: σ^-1 of many composed noisy steps and the steeper fall of ε at small σ.
_INITIAL_SLOPE = -1.5
#: Typical ratio of the noise PRV calibration finds to RDP's (a starting guess only).
_PRV_OVER_RDP_NOISE = 0.95
#: Evaluations of ε before giving up on the tolerance (far more than ever needed).
_MAX_EVALUATIONS = 60


class PrivacyPlanError(ValueError):
    """The requested privacy plan cannot be met; the message says what to change."""


def calibrate_noise(
    *,
    target_epsilon: float,
    delta: float,
    sample_rate: float,
    steps: int,
    accountant: AccountantKind,
    prior: Sequence[PoissonGaussian] = (),
    max_grad_norm: float = 1.0,
    tolerance: float = 0.01,
) -> float:
    """Return the smallest noise multiplier that ends the planned run at ``target_epsilon``.

    Like `opacus.accountants.utils.get_noise_multiplier`, but the planned mechanism
    (``steps`` steps at ``sample_rate``) is composed after ``prior``, the history already
    spent, and the answer is the noise for which the *cumulative* ε of ``prior`` plus the
    plan lies in ``[(1 - tolerance) · target_epsilon, target_epsilon]``.

    Parameters
    ----------
    target_epsilon : float
        Cumulative ε the institution may have spent when the run ends; positive.
    delta : float
        The δ at which ε is stated; in (0, 1).
    sample_rate : float
        Poisson sampling rate of the planned run, in (0, 1].
    steps : int
        Total noisy steps of the planned run (rounds × steps per round); at least 1.
    accountant : AccountantKind
        The Opacus accountant ε is measured with (`epsilon_spent`).
    prior : Sequence[PoissonGaussian] (default: ())
        Mechanisms already released on the same dataset.
    max_grad_norm : float (default: 1.0)
        Clipping norm recorded in the planned mechanism (does not affect ε).
    tolerance : float (default: 0.01)
        Relative slack below the target that is accepted; in (0, 1).

    Returns
    -------
    float
        The noise multiplier, in [`MIN_NOISE_MULTIPLIER`, `MAX_NOISE_MULTIPLIER`].

    Raises
    ------
    ValueError
        If a parameter is out of range.
    PrivacyPlanError
        If ``prior`` alone already spends the target; if even `MAX_NOISE_MULTIPLIER`
        overspends it; or if the target is so loose that `MIN_NOISE_MULTIPLIER` meets it
        with room to spare.

    Notes
    -----
    ε decreases in the noise multiplier σ towards ε(prior), roughly as a power of σ, so
    the search takes secant steps in (log σ, log(ε - ε(prior))) towards the middle of
    the tolerance window, safeguarded inside a bracket once one is found. For PRV it
    starts from the RDP answer, which is cheap and close (RDP asks for a few % more
    noise). It needs 4-9 ε evaluations (≈0.1 s with RDP, 0.5-3 s with PRV). The σ
    returned was evaluated and is never above the target. Should a non-monotone
    accountant (PRV discretisation) leave no σ in the tolerance window, the smallest σ
    evaluated within the target is returned.
    """
    if not (math.isfinite(target_epsilon) and target_epsilon > 0):
        raise ValueError(f"`target_epsilon` must be positive and finite; got {target_epsilon}")
    if not 0.0 < tolerance < 1.0:
        raise ValueError(f"`tolerance` must be in (0, 1); got {tolerance}")
    kind = AccountantKind(accountant)
    prior = tuple(prior)

    def planned(sigma: float) -> PoissonGaussian:
        return PoissonGaussian(
            noise_multiplier=sigma,
            sample_rate=sample_rate,
            steps=steps,
            max_grad_norm=max_grad_norm,
        )

    planned(1.0)  # validates sample_rate, steps and max_grad_norm before any accounting
    already = epsilon_spent(prior, delta=delta, accountant=kind)
    if already >= target_epsilon:
        raise PrivacyPlanError(
            f"the institution has already spent ε={already:.4g} of its target "
            f"{target_epsilon:g} (δ={delta:g}) on this dataset; raise `target_epsilon` "
            "or use fresh data"
        )

    def epsilon(sigma: float, kind: AccountantKind = kind) -> float:
        return epsilon_spent([*prior, planned(sigma)], delta=delta, accountant=kind)

    start, slope = 1.0, _INITIAL_SLOPE
    if kind is not AccountantKind.rdp:
        # Warm start from the cheap RDP answer: RDP is looser and asks for a little more
        # noise than PRV (measured: PRV's σ is 0.94-0.96 × RDP's for targets 1-8), so
        # the slow PRV evaluations start next to the answer.
        rdp_prior = epsilon_spent(prior, delta=delta, accountant=AccountantKind.rdp)
        if rdp_prior < target_epsilon:
            with contextlib.suppress(PrivacyPlanError):
                rdp_sigma, slope = _search(
                    functools.partial(epsilon, kind=AccountantKind.rdp),
                    target=target_epsilon,
                    tolerance=0.05,
                    steps=steps,
                    offset=rdp_prior,
                )
                start = _PRV_OVER_RDP_NOISE * rdp_sigma
    sigma, _ = _search(
        epsilon,
        target=target_epsilon,
        tolerance=tolerance,
        steps=steps,
        start=start,
        slope=slope,
        offset=already,
    )
    return sigma


def _search(
    epsilon: Callable[[float], float],
    *,
    target: float,
    tolerance: float,
    steps: int,
    start: float = 1.0,
    slope: float = _INITIAL_SLOPE,
    offset: float = 0.0,
) -> tuple[float, float]:
    """Find σ with ε(σ) in [(1 - tolerance)·target, target]; ε is decreasing in σ.

    The search models ``log(ε(σ) - offset)`` as locally linear in ``log σ``; ``offset``
    is the ε already spent, which ε(σ) approaches as σ grows; ``slope`` is the assumed
    d log(ε - offset) / d log σ until two points give a secant. Returns σ and the last
    slope used.
    """
    floor = (1.0 - tolerance) * target
    # Aim at the middle of the window (or halfway from the prior spend, if that is inside).
    aim = math.log(max((1.0 - tolerance / 2) * target - offset, (target - offset) / 2))
    low: tuple[float, float] | None = None  # nearest (log σ, log(ε - offset)) with ε > target
    high: tuple[float, float] | None = None  # nearest (log σ, log(ε - offset)) with ε ≤ target
    best: float | None = None  # the smallest σ evaluated with ε ≤ target
    points: list[tuple[float, float]] = []
    sigma = start
    for _ in range(_MAX_EVALUATIONS):
        eps = epsilon(sigma)
        point = (math.log(sigma), math.log(max(eps - offset, 1e-300)))
        points.append(point)
        if eps <= target:
            if eps >= floor:
                return sigma, slope
            high, best = point, sigma
            if sigma <= MIN_NOISE_MULTIPLIER:
                raise PrivacyPlanError(
                    f"`target_epsilon`={target:g} is looser than this plan needs: even "
                    f"noise_multiplier={MIN_NOISE_MULTIPLIER:g} spends only ε={eps:.4g} "
                    f"over {steps} steps; lower `target_epsilon` or plan more steps"
                )
        else:
            low = point
            if sigma >= MAX_NOISE_MULTIPLIER:
                raise PrivacyPlanError(
                    f"`target_epsilon`={target:g} is unreachable: even "
                    f"noise_multiplier={MAX_NOISE_MULTIPLIER:g} spends ε={eps:.4g} in total "
                    f"over {steps} planned steps; raise `target_epsilon`, plan fewer steps "
                    "or a lower sample rate, or lower the prior spend (fresh data)"
                )
        slope = _slope(points, slope)
        log_sigma = point[0] + (aim - point[1]) / slope
        if low is None or high is None:
            # Open bracket: move at least ×1.005 and at most ×2 away from the last point
            # (further steps would reach ε far from the target, where PRV is slow).
            last = points[-1][0]
            step = math.copysign(
                min(max(abs(log_sigma - last), math.log(1.005)), math.log(2.0)),
                points[-1][1] - aim,
            )
            log_sigma = last + step
        else:
            # Closed bracket: stay at least 10 % of its width inside, so it always shrinks.
            width = high[0] - low[0]
            log_sigma = min(max(log_sigma, low[0] + 0.1 * width), high[0] - 0.1 * width)
        sigma = min(max(math.exp(log_sigma), MIN_NOISE_MULTIPLIER), MAX_NOISE_MULTIPLIER)
    if best is None:  # pragma: no cover - the bracket always closes long before this
        raise PrivacyPlanError(f"could not calibrate noise for `target_epsilon`={target:g}")
    return best, slope


def _slope(points: list[tuple[float, float]], previous: float) -> float:
    """Secant slope of the last two (log σ, log(ε - offset)) points, else ``previous``."""
    if len(points) >= 2:
        (ls0, le0), (ls1, le1) = points[-2], points[-1]
        if ls1 != ls0 and (le1 - le0) / (ls1 - ls0) < 0:
            return (le1 - le0) / (ls1 - ls0)
    return previous
