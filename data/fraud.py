"""Synthetic card and transfer transactions with fraud, and their exact fraud probability.

Every transaction comes from one *component*: three legitimate behaviours (everyday card
spending, online shopping, travel and transfers) and five fraud patterns. Two patterns
are shared by every bank (card testing, account takeover); three are bank-specific
(cross-border skimming, gift-card scams, new-account mule transfers): each bank is the
"home" of one of them and sees the other two only rarely, so a bank alone has few
examples of the patterns its peers see every day — what federation can add.

A bank has its own fraud rate (0.1–1 % by default), mix of legitimate behaviours and mix
of fraud patterns. Within a component the features are independent with known
densities (log-normal amounts, distances and ratios; categorical hour profile, merchant
and channel; Bernoulli device novelty; Poisson velocity), so the posterior fraud
probability of any row under any mixture of banks is exact: the oracle.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import gammaln, logsumexp

from fedrisk.data.schema import FeatureKind, FeatureSpec, TableSchema

__all__ = ["FRAUD_PATTERNS", "FraudBank", "FraudConsortium", "fraud_schema", "generate_fraud"]

MERCHANTS = ("grocery", "restaurant", "fuel", "online_retail", "electronics", "travel",
             "gift_cards", "crypto")  # fmt: skip
CHANNELS = ("chip", "contactless", "online", "transfer")
#: Hour-of-day profiles (weights over 0..23): day, evening, night, flat.
_HOURS = np.arange(24)
_HOUR_PROFILES = np.stack(
    [
        np.exp(-0.5 * ((_HOURS - 13.0) / 3.0) ** 2),
        np.exp(-0.5 * ((_HOURS - 20.0) / 2.0) ** 2),
        np.exp(-0.5 * (((_HOURS + 6) % 24 - 9.0) / 2.0) ** 2),  # centred on 03:00
        np.ones(24),
    ]
)
_HOUR_PROFILES /= _HOUR_PROFILES.sum(1, keepdims=True)

LABEL = "fraud"


@dataclass(frozen=True)
class _Component:
    """One behaviour: the independent per-feature distributions of its transactions."""

    amount: tuple[float, float]  # log-normal (median, sigma of log)
    ratio: tuple[float, float]  # amount over the customer's 30-day average
    distance: tuple[float, float]  # km from the customer's usual location
    age: tuple[float, float]  # account age in days
    hours: tuple[float, float, float, float]  # weights of the hour profiles
    merchant: tuple[float, ...]  # weights over MERCHANTS
    channel: tuple[float, float, float, float]  # weights over CHANNELS
    new_device: float  # P(device never seen on this account)
    velocity: float  # Poisson mean of the account's other transactions in the last hour


_LEGIT = (
    _Component((25, 0.8), (1.0, 0.5), (5, 1.0), (1500, 1.0), (6, 3, 0.3, 0.7),
               (5, 4, 3, 1, 0.5, 0.3, 0.2, 0.1), (4, 5, 0.5, 0.5), 0.01, 0.3),
    _Component((60, 0.9), (1.2, 0.6), (8, 1.2), (1200, 1.0), (3, 5, 0.7, 1),
               (0.3, 0.5, 0.1, 6, 2, 1, 0.5, 0.3), (0.1, 0.2, 8, 1), 0.06, 0.5),
    _Component((300, 1.0), (2.0, 0.8), (800, 1.5), (2500, 0.8), (3, 2, 0.8, 1),
               (0.5, 2, 0.5, 0.5, 0.5, 4, 0.2, 0.5), (2, 1, 1, 3), 0.08, 0.4),
)  # fmt: skip
_FRAUD = (
    # card testing (shared): tiny online charges in bursts from new devices
    _Component((3, 0.7), (0.15, 0.7), (30, 1.5), (1000, 1.2), (1, 1, 1, 3),
               (0.1, 0.1, 0.1, 4, 1, 0.2, 2, 2), (0.1, 0.2, 8, 0.5), 0.6, 5.0),
    # account takeover (shared): large transfers at night from a new device
    _Component((900, 0.8), (8.0, 0.6), (200, 1.5), (1500, 1.0), (0.5, 1, 4, 1),
               (0.2, 0.1, 0.1, 1, 1, 0.5, 0.5, 3), (0.1, 0.1, 2, 6), 0.8, 1.0),
    # cross-border skimming (specific): card-present abroad, at night
    _Component((250, 0.7), (3.0, 0.6), (4000, 0.6), (1500, 1.0), (1, 1, 4, 1),
               (0.5, 0.5, 1, 0.2, 3, 1, 0.2, 0.1), (6, 1, 0.2, 0.1), 0.05, 1.5),
    # gift-card scam (specific): victims' own devices, old accounts, daytime
    _Component((400, 0.5), (6.0, 0.5), (6, 1.0), (6000, 0.5), (6, 1, 0.2, 0.5),
               (0.2, 0.1, 0.1, 0.3, 0.3, 0.1, 8, 0.3), (1, 3, 2, 0.2), 0.03, 0.8),
    # new-account mule transfers (specific): days-old accounts moving money out
    _Component((1500, 0.7), (5.0, 0.8), (50, 1.5), (15, 0.7), (1, 2, 2, 1),
               (0.2, 0.1, 0.1, 0.5, 0.5, 0.2, 0.5, 4), (0.2, 0.2, 1, 8), 0.3, 2.5),
)  # fmt: skip
#: Names of the fraud patterns, in the order of ``FraudBank.pattern_mix``.
FRAUD_PATTERNS = ("card_testing", "account_takeover", "skimming", "gift_card_scam", "mule")
_SHARED = 2
_HOME_SHARE = 0.45  # of a bank's fraud from its home pattern; 0.025 from each other specific


@dataclass(frozen=True)
class FraudBank:
    """One simulated bank's transactions: size, fraud rate and behaviour mixes.

    Attributes
    ----------
    name : str
        Institution id; it also keys the bank's random stream.
    n_rows : int
        Transactions.
    fraud_rate : float
        Probability that a transaction is fraud.
    legit_mix : numpy.ndarray
        Weights of the three legitimate behaviours.
    pattern_mix : numpy.ndarray
        Weights of :data:`FRAUD_PATTERNS` among the bank's fraud.
    """

    name: str
    n_rows: int
    fraud_rate: float
    legit_mix: np.ndarray
    pattern_mix: np.ndarray


@dataclass(frozen=True)
class FraudConsortium:
    """Generated tables, the held-out set and its oracle fraud probabilities."""

    banks: dict[str, pd.DataFrame]
    profiles: list[FraudBank]
    test: pd.DataFrame
    test_oracle: np.ndarray


def fraud_schema() -> TableSchema:
    """Return the schema of a transaction table (label ``fraud``)."""
    num = FeatureKind.numeric
    cat = FeatureKind.categorical
    return TableSchema(
        features=[
            FeatureSpec(name="amount", kind=num, low=0.0, high=50_000.0, log=True),
            FeatureSpec(name="amount_ratio", kind=num, low=0.0, high=500.0, log=True),
            FeatureSpec(name="distance_km", kind=num, low=0.0, high=20_000.0, log=True),
            FeatureSpec(name="account_age_days", kind=num, low=0.0, high=20_000.0, log=True),
            FeatureSpec(name="hour", kind=num, low=0.0, high=23.0, integer=True),
            FeatureSpec(name="new_device", kind=num, low=0.0, high=1.0, integer=True),
            FeatureSpec(name="txn_last_hour", kind=num, low=0.0, high=30.0, integer=True),
            FeatureSpec(name="merchant", kind=cat, levels=list(MERCHANTS)),
            FeatureSpec(name="channel", kind=cat, levels=list(CHANNELS)),
        ],
        label=LABEL,
    )


def generate_fraud(
    banks: Sequence[tuple[str, int]],
    *,
    test_rows: int,
    fraud_rate_range: tuple[float, float],
    seed: int,
) -> FraudConsortium:
    """Generate every bank's transactions and a consortium-wide held-out set.

    Parameters
    ----------
    banks : Sequence[tuple[str, int]]
        ``(name, rows)`` per bank, in partition order; names unique, rows at least 1.
    test_rows : int
        Held-out transactions, drawn from the banks in proportion to their rows.
    fraud_rate_range : tuple[float, float]
        Each bank's fraud rate is drawn log-uniformly from ``[low, high]``.
    seed : int
        Root seed; a bank's stream is keyed by its name, so adding a bank leaves the
        others' tables unchanged.

    Returns
    -------
    FraudConsortium
        Tables (``fraud_schema().columns``), profiles, the test set and its oracle.

    Raises
    ------
    ValueError
        If there are no banks, names repeat, a size or ``test_rows`` is below 1, the rate
        range is not ``0 < low <= high < 1``, or the seed is negative.
    """
    names = [name for name, _ in banks]
    if not banks or len(set(names)) != len(names):
        raise ValueError(f"`banks` must list at least one bank with unique names; got {names}")
    low, high = fraud_rate_range
    if not 0.0 < low <= high < 1.0:
        raise ValueError(f"`fraud_rate_range` must satisfy 0 < low <= high < 1; got {low, high}")
    if test_rows < 1 or seed < 0 or any(rows < 1 for _, rows in banks):
        raise ValueError(
            f"`test_rows`, every bank's rows must be >= 1 and `seed` >= 0; got "
            f"test_rows={test_rows}, seed={seed}, rows={[rows for _, rows in banks]}"
        )
    profiles = [
        _profile(name, rows, index, low, high, seed) for index, (name, rows) in enumerate(banks)
    ]
    tables = {}
    for bank in profiles:
        rng = np.random.default_rng(_stream(seed, bank.name, 1))
        tables[bank.name] = _draw(rng, bank, bank.n_rows)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xF4A0D]))
    sizes = np.array([bank.n_rows for bank in profiles], dtype=np.float64)
    counts = rng.multinomial(test_rows, sizes / sizes.sum())
    parts = [_draw(rng, bank, int(c)) for bank, c in zip(profiles, counts, strict=True) if c]
    test = pd.concat(parts, ignore_index=True).iloc[rng.permutation(test_rows)]
    test = test.reset_index(drop=True)
    return FraudConsortium(
        banks=tables,
        profiles=profiles,
        test=test,
        test_oracle=fraud_probability(test, profiles, weights=sizes),
    )


def fraud_probability(
    table: pd.DataFrame, profiles: Sequence[FraudBank], *, weights: np.ndarray
) -> np.ndarray:
    """Return ``P(fraud | row)`` when rows come from ``profiles`` mixed by ``weights``.

    Parameters
    ----------
    table : pandas.DataFrame
        Rows with the columns of :func:`fraud_schema`.
    profiles : Sequence[FraudBank]
        The banks the rows may come from.
    weights : numpy.ndarray
        Non-negative share of rows from each bank (normalised here).

    Returns
    -------
    numpy.ndarray
        Float64 probabilities, shape ``(len(table),)``.
    """
    share = np.asarray(weights, dtype=np.float64) / float(np.sum(weights))
    fraud_w = sum(s * b.fraud_rate * b.pattern_mix for s, b in zip(share, profiles, strict=True))
    legit_w = sum(
        s * (1 - b.fraud_rate) * b.legit_mix for s, b in zip(share, profiles, strict=True)
    )
    fraud = logsumexp(_log_density(table, _FRAUD) + np.log(fraud_w), axis=1)
    legit = logsumexp(_log_density(table, _LEGIT) + np.log(legit_w), axis=1)
    return 1.0 / (1.0 + np.exp(legit - fraud))


def _profile(name: str, rows: int, index: int, low: float, high: float, seed: int) -> FraudBank:
    rng = np.random.default_rng(_stream(seed, name, 0))
    rate = float(np.exp(rng.uniform(np.log(low), np.log(high))))
    specific = np.full(len(_FRAUD) - _SHARED, 0.025)
    specific[index % specific.size] = _HOME_SHARE
    shared = np.full(_SHARED, (1.0 - specific.sum()) / _SHARED)
    return FraudBank(
        name=name,
        n_rows=rows,
        fraud_rate=rate,
        legit_mix=rng.dirichlet(np.full(len(_LEGIT), 4.0)),
        pattern_mix=np.concatenate([shared, specific]),
    )


def _draw(rng: np.random.Generator, bank: FraudBank, n: int) -> pd.DataFrame:
    fraud = rng.random(n) < bank.fraud_rate
    which = np.where(
        fraud,
        rng.choice(len(_FRAUD), size=n, p=bank.pattern_mix),
        rng.choice(len(_LEGIT), size=n, p=bank.legit_mix),
    )
    cols: dict[str, np.ndarray] = {k: np.empty(n) for k in _CONTINUOUS}
    cols |= {"hour": np.empty(n), "new_device": np.empty(n), "txn_last_hour": np.empty(n)}
    merchant, channel = np.empty(n, dtype=object), np.empty(n, dtype=object)
    for is_fraud, components in ((False, _LEGIT), (True, _FRAUD)):
        for k, comp in enumerate(components):
            rows = np.flatnonzero((fraud == is_fraud) & (which == k))
            m = rows.size
            for col, (median, sigma) in _params(comp).items():
                cols[col][rows] = median * np.exp(sigma * rng.standard_normal(m))
            cols["hour"][rows] = rng.choice(24, size=m, p=_hour_probs(comp))
            cols["new_device"][rows] = rng.random(m) < comp.new_device
            cols["txn_last_hour"][rows] = rng.poisson(comp.velocity, size=m)
            merchant[rows] = np.asarray(MERCHANTS)[rng.choice(8, size=m, p=_norm(comp.merchant))]
            channel[rows] = np.asarray(CHANNELS)[rng.choice(4, size=m, p=_norm(comp.channel))]
    out = pd.DataFrame(cols)
    out["merchant"], out["channel"] = merchant.astype(str), channel.astype(str)
    out[LABEL] = fraud.astype(np.int64)
    return out[fraud_schema().columns]


_CONTINUOUS = ("amount", "amount_ratio", "distance_km", "account_age_days")


def _params(comp: _Component) -> dict[str, tuple[float, float]]:
    return dict(zip(_CONTINUOUS, (comp.amount, comp.ratio, comp.distance, comp.age), strict=True))


def _log_density(table: pd.DataFrame, components: Sequence[_Component]) -> np.ndarray:
    """``log p_k(row)`` for every row and component, shape ``(n, len(components))``."""
    hour = table["hour"].to_numpy(dtype=np.int64)
    device = table["new_device"].to_numpy(dtype=np.float64)
    count = table["txn_last_hour"].to_numpy(dtype=np.float64)
    m_idx = pd.Index(MERCHANTS).get_indexer(pd.Index(table["merchant"]))
    c_idx = pd.Index(CHANNELS).get_indexer(pd.Index(table["channel"]))
    out = np.zeros((len(table), len(components)))
    for k, comp in enumerate(components):
        for col, (median, sigma) in _params(comp).items():
            x = table[col].to_numpy(dtype=np.float64)
            z = (np.log(x) - np.log(median)) / sigma
            out[:, k] += -np.log(x * sigma) - 0.5 * np.log(2 * np.pi) - 0.5 * z * z
        out[:, k] += np.log(_hour_probs(comp)[hour])
        out[:, k] += np.log(_norm(comp.merchant)[m_idx]) + np.log(_norm(comp.channel)[c_idx])
        out[:, k] += np.where(device > 0, np.log(comp.new_device), np.log1p(-comp.new_device))
        lam = comp.velocity
        out[:, k] += count * np.log(lam) - lam - gammaln(count + 1)
    return out


def _hour_probs(comp: _Component) -> np.ndarray:
    probs: np.ndarray = _norm(comp.hours) @ _HOUR_PROFILES
    return probs


def _norm(weights: Sequence[float]) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    return w / w.sum()


def _stream(seed: int, name: str, purpose: int) -> np.random.SeedSequence:
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    key = tuple(int.from_bytes(digest[i : i + 4], "little") for i in range(0, 32, 4))
    return np.random.SeedSequence(seed, spawn_key=(0xF2, purpose, *key))
