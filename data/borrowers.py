"""The synthetic borrower population: segments and their correlated credit files.

Every borrower belongs to a latent segment (prime, near-prime, subprime) and has a latent
credit quality within it. Both drive every feature, so features are correlated the way
real credit files are: subprime borrowers earn less, carry more debt and utilisation, have
more delinquencies and inquiries and thinner files, and are charged much higher rates.
The segments' credit files differ only moderately (pricing differs a lot), so a bank's
default rate follows its segment mix yet stays plausible for any mix.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fedrisk.data.schema import FeatureKind, FeatureSpec, TableSchema

SEGMENTS = ("prime", "near_prime", "subprime")
"""Latent borrower segments, in the order of ``BankProfile.segment_mix``."""

AGE_BANDS = ("18-25", "26-35", "36-45", "46-55", "56-65", "66+")
HOME_OWNERSHIP = ("rent", "mortgage", "own")
PURPOSES = (
    "debt_consolidation",
    "credit_card",
    "home_improvement",
    "small_business",
    "car",
    "other",
)
REGIONS = ("north", "south", "east", "west", "central")
TERMS = ("36", "60")

# Per-segment parameters, indexed (prime, near_prime, subprime).
_AGE_MEAN = np.array([44.0, 42.0, 40.0])
_EMPLOYMENT_LOG_MEDIAN = np.log([7.0, 6.5, 6.0])
_INCOME_LOG_MEDIAN = np.log([71_000.0, 65_000.0, 60_000.0])
_DTI_MEAN = np.array([18.3, 19.2, 20.2])
_UTILISATION_LOGIT = np.array([-0.52, -0.4, -0.26])
_DELINQUENCY_RATE = np.array([0.13, 0.16, 0.2])
_OLD_DELINQUENCY_SHARE = np.array([0.15, 0.2, 0.25])
_INQUIRY_RATE = np.array([0.85, 1.0, 1.15])
_HISTORY_LOGIT = np.array([0.6, 0.5, 0.4])
_OPEN_ACCOUNTS = np.array([10.0, 8.5, 7.0])
_LIMIT_TO_INCOME = np.array([0.35, 0.25, 0.16])
_LOAN_TO_INCOME = np.array([0.24, 0.22, 0.19])
_LONG_TERM_LOGIT = np.array([-0.3, 0.0, 0.3])
_RATE_BASE = np.array([8.0, 12.5, 17.5])
_HOME_PROBS = np.array([[0.33, 0.50, 0.17], [0.42, 0.45, 0.13], [0.50, 0.40, 0.10]])
_PURPOSE_PROBS = np.array(
    [
        [0.40, 0.26, 0.15, 0.04, 0.10, 0.05],
        [0.46, 0.22, 0.10, 0.06, 0.10, 0.06],
        [0.50, 0.18, 0.06, 0.09, 0.09, 0.08],
    ]
)
_PURPOSE_LOAN_FACTOR = np.array([1.0, 0.8, 1.1, 1.5, 0.9, 0.7])
_REGION_PROBS = np.array([0.22, 0.20, 0.20, 0.20, 0.18])


def credit_schema() -> TableSchema:
    """Return the schema of the synthetic credit-default tables.

    Seventeen borrower features (twelve numeric, five categorical) and the binary
    label ``default``. ``age_band`` is also the protected attribute for fairness
    reports. The ranges cover what :func:`draw_borrowers` generates.

    Amounts are annual (income) or in currency units; ``debt_to_income`` is in percent,
    ``credit_utilisation`` a ratio (above 1 when over the limit), ``interest_rate`` in
    percent a year. ``months_since_last_delinquency`` is 120 when the file shows no
    delinquency in the past ten years.

    Returns
    -------
    TableSchema
        A fresh schema; callers may modify it.
    """

    def num(
        name: str, low: float, high: float, *, log: bool = False, integer: bool = False
    ) -> FeatureSpec:
        return FeatureSpec(name=name, low=low, high=high, log=log, integer=integer)

    def cat(name: str, levels: tuple[str, ...]) -> FeatureSpec:
        return FeatureSpec(name=name, kind=FeatureKind.categorical, levels=list(levels))

    return TableSchema(
        features=[
            num("income", 5_000, 500_000, log=True),
            num("debt_to_income", 0, 60),
            num("credit_utilisation", 0, 1.1),
            num("revolving_balance", 0, 300_000, log=True),
            num("delinquencies_2y", 0, 10, integer=True),
            num("months_since_last_delinquency", 0, 120, integer=True),
            num("inquiries_6m", 0, 15, integer=True),
            num("open_accounts", 0, 50, integer=True),
            num("credit_history_years", 0, 60),
            num("employment_years", 0, 50, integer=True),
            num("loan_amount", 1_000, 100_000, log=True),
            num("interest_rate", 4, 30),
            cat("term_months", TERMS),
            cat("home_ownership", HOME_OWNERSHIP),
            cat("purpose", PURPOSES),
            cat("region", REGIONS),
            cat("age_band", AGE_BANDS),
        ],
        label="default",
        protected=["age_band"],
    )


def draw_borrowers(
    rng: np.random.Generator,
    *,
    n_rows: int,
    segment_mix: tuple[float, float, float],
    covariate_shift: float,
) -> pd.DataFrame:
    """Draw borrowers' credit files, vectorised.

    Parameters
    ----------
    rng : numpy.random.Generator
        The only source of randomness.
    n_rows : int
        Number of borrowers.
    segment_mix : tuple[float, float, float]
        Shares of prime, near-prime and subprime borrowers; non-negative, summing to 1.
    covariate_shift : float
        Moves the latent Gaussian behind every risk-bearing feature by this many
        within-segment standard deviations towards risk (income, employment and credit
        history down; debt-to-income, utilisation, delinquencies, inquiries and rate up).
        The default model is unchanged: only who borrows shifts.

    Returns
    -------
    pandas.DataFrame
        The feature columns of :func:`credit_schema`, in its order, typed as
        :func:`fedrisk.data.load_table` returns them (numeric float64, categorical str),
        with numeric values inside the schema's ranges.
    """
    n = n_rows
    segment = rng.choice(len(SEGMENTS), size=n, p=np.asarray(segment_mix))
    quality = rng.standard_normal(n)  # latent within-segment risk; positive is riskier

    def latent(rho: float, direction: float) -> np.ndarray:
        noise = rng.standard_normal(n)
        drawn: np.ndarray = (
            rho * quality + np.sqrt(1 - rho**2) * noise + direction * covariate_shift
        )
        return drawn

    age = np.clip(_AGE_MEAN[segment] + 12.0 * rng.standard_normal(n), 18.0, 85.0)
    employment = np.exp(_EMPLOYMENT_LOG_MEDIAN[segment] + 0.7 * latent(0.3, -1.0)) - 1.0
    employment = np.floor(np.clip(employment, 0.0, np.minimum(age - 18.0, 50.0)))
    career = np.clip((age - 40.0) / 15.0, -1.5, 1.5)
    income = np.exp(_INCOME_LOG_MEDIAN[segment] + 0.45 * latent(0.4, -1.0) + 0.12 * career)
    income = np.round(np.clip(income, 5_000.0, 500_000.0), -2)
    dti = np.round(_DTI_MEAN[segment] + 8.0 * latent(0.5, 1.0), 1)
    utilisation = 1.05 / (1.0 + np.exp(-(_UTILISATION_LOGIT[segment] + 0.9 * latent(0.5, 1.0))))
    utilisation = np.round(utilisation, 3)
    delinquency_rate = _DELINQUENCY_RATE[segment] * np.exp(0.6 * latent(0.5, 1.0))
    delinquencies = rng.poisson(delinquency_rate).astype(np.float64)
    recent = rng.integers(0, 24, size=n)
    older = rng.integers(24, 120, size=n)
    has_older = rng.random(n) < _OLD_DELINQUENCY_SHARE[segment]
    months_since = np.where(delinquencies > 0, recent, np.where(has_older, older, 120))
    inquiry_rate = _INQUIRY_RATE[segment] * np.exp(0.5 * latent(0.3, 1.0))
    inquiries = rng.poisson(inquiry_rate).astype(np.float64)
    history_share = 1.0 / (1.0 + np.exp(-(_HISTORY_LOGIT[segment] + 0.8 * latent(0.3, -1.0))))
    history = np.round((age - 18.0) * history_share + rng.random(n), 1)
    file_depth = np.minimum(1.0, 0.3 + history / 8.0)
    open_rate = _OPEN_ACCOUNTS[segment] * file_depth * np.exp(0.3 * rng.standard_normal(n))
    open_accounts = (rng.poisson(open_rate) + 1).astype(np.float64)
    limit = income * _LIMIT_TO_INCOME[segment] * np.exp(0.4 * rng.standard_normal(n))
    revolving = np.round(utilisation * limit)

    young = (age < 26.0)[:, None]
    home_probs = np.where(young, [0.85, 0.12, 0.03], _HOME_PROBS[segment])
    home = _categorical(rng, home_probs)
    purpose = _categorical(rng, _PURPOSE_PROBS[segment])
    region = _categorical(rng, np.broadcast_to(_REGION_PROBS, (n, len(REGIONS))))

    loan = income * _LOAN_TO_INCOME[segment] * _PURPOSE_LOAN_FACTOR[purpose]
    loan = np.round(np.clip(loan * np.exp(0.5 * rng.standard_normal(n)), 1_000.0, 100_000.0), -1)
    long_term_logit = -1.0 + 1.1 * np.log(loan / 15_000.0) + _LONG_TERM_LOGIT[segment]
    long_term = rng.random(n) < 1.0 / (1.0 + np.exp(-long_term_logit))
    rate = _RATE_BASE[segment] + 1.8 * latent(0.5, 1.0) + 1.2 * long_term
    rate = np.round(rate, 2)
    age_band = np.searchsorted([26.0, 36.0, 46.0, 56.0, 66.0], age, side="right")

    numbers = {
        "income": income,
        "debt_to_income": dti,
        "credit_utilisation": utilisation,
        "revolving_balance": revolving,
        "delinquencies_2y": delinquencies,
        "months_since_last_delinquency": months_since.astype(np.float64),
        "inquiries_6m": inquiries,
        "open_accounts": open_accounts,
        "credit_history_years": history,
        "employment_years": employment,
        "loan_amount": loan,
        "interest_rate": rate,
    }
    # Keep every value inside the schema's range, as a bank's product rules would.
    ranges = {spec.name: (spec.low, spec.high) for spec in credit_schema().features}
    columns: dict[str, np.ndarray | pd.Series] = {
        name: np.clip(values, *ranges[name]) for name, values in numbers.items()
    }
    columns["term_months"] = _text(TERMS, long_term.astype(np.intp))
    columns["home_ownership"] = _text(HOME_OWNERSHIP, home)
    columns["purpose"] = _text(PURPOSES, purpose)
    columns["region"] = _text(REGIONS, region)
    columns["age_band"] = _text(AGE_BANDS, age_band)
    return pd.DataFrame(columns)


def _categorical(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """Draw one category per row from row-wise probabilities, vectorised."""
    cumulative = np.cumsum(probs, axis=1)
    draws = rng.random(len(probs))[:, None] * cumulative[:, -1:]
    codes: np.ndarray = (draws >= cumulative).sum(axis=1)
    return codes


def _text(levels: tuple[str, ...], codes: np.ndarray) -> pd.Series:
    return pd.Series(np.asarray(levels, dtype=object)[codes], dtype=str)
