"""Synthetic multi-asset returns (regime switches, GARCH volatility) as early-warning windows.

Twelve assets in four classes (equities, rates, FX, commodities) share one latent market
regime — calm, stressed or crisis, a Markov chain — that scales every asset's volatility
by a class-specific factor and raises their correlation through one market factor. On
top of the regime, each asset's variance follows a GARCH(1, 1) recursion in its own
standardised shocks, so volatility clusters within regimes too.

Every bank holds its own book: long positions concentrated in one asset class (bank
``i`` in class ``i mod 4``), with a seeded spread over the rest. Its risk desk computes a
historical-simulation VaR at ``coverage`` from the trailing ``var_window`` book returns;
the early-warning label of period ``τ`` is a VaR exception: the loss of period ``τ``
exceeds the VaR computed at the end of period ``τ − 1``.

A *window* row with timestamp ``τ`` holds the ``window`` book returns and market-index
returns of periods ``τ − window … τ − 1``, the book returns divided by the VaR known at
``τ − 1`` and the index returns by its trailing standard deviation. Every input of a row
precedes its timestamp, and the label is the first thing after it.

Oracle: given the latent regime and GARCH state at ``τ − 1``, the book return of period
``τ`` is a Gaussian mixture over the next regime, so ``P(exception)`` is exact.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from scipy.stats import norm

from fedrisk.data.schema import FeatureSpec, TableSchema

__all__ = [
    "LABEL",
    "TIME",
    "MarketConsortium",
    "forecast_split",
    "generate_market",
    "market_schema",
    "window_rows",
]

LABEL = "exception"
TIME = "t"
STEP_FEATURES = ("book", "index")
#: Asset class of each asset and its sign on the market factor (rates rally in stress).
_CLASS = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3])
_LOADING = np.array([1, 1, 1, 1, -1, -1, -1, 1, 1, -1, 1, 1], dtype=np.float64)
_BASE_VOL = np.array([1.2, 1.0, 1.4, 1.1, 0.4, 0.5, 0.3, 0.6, 0.7, 0.5, 1.6, 1.8]) / 100
#: Regime transition matrix (calm, stressed, crisis) and per-class volatility multipliers.
TRANSITIONS = np.array([[0.985, 0.013, 0.002], [0.03, 0.955, 0.015], [0.02, 0.06, 0.92]])
_VOL_MULT = np.array([[1.0, 1.0, 1.0, 1.0], [1.7, 1.3, 1.5, 1.6], [3.2, 1.8, 2.4, 2.8]])
_CORR = np.array([0.2, 0.4, 0.7])
_ALPHA, _BETA = 0.08, 0.9
_BURN_IN = 200


@dataclass(frozen=True)
class MarketConsortium:
    """Generated banks' window tables, the held-out windows and their oracle.

    Attributes
    ----------
    banks : dict[str, pandas.DataFrame]
        Each bank's windows with timestamps in ``[origin − rows, origin)``.
    test : pandas.DataFrame
        Every bank's windows with timestamps in ``[origin, origin + test_periods)``.
    test_oracle : numpy.ndarray
        ``P(exception)`` of each test row given the latent regime and GARCH state.
    test_bank : numpy.ndarray
        The bank each test row belongs to.
    regimes : numpy.ndarray
        The latent regime (0 calm, 1 stressed, 2 crisis) of every period.
    origin : int
        The forecast origin: the first test timestamp.
    """

    banks: dict[str, pd.DataFrame]
    test: pd.DataFrame
    test_oracle: np.ndarray
    test_bank: np.ndarray
    regimes: np.ndarray
    origin: int


def market_schema(window: int) -> TableSchema:
    """Return the schema of a window table: lag-major ``book_l{j}``, ``index_l{j}`` columns.

    Column ``{name}_l{j}`` is period ``t − j`` (``j = window … 1``), so the encoded row
    reshapes to ``(window, len(STEP_FEATURES))`` in time order.

    Raises
    ------
    ValueError
        If ``window`` is below 2.
    """
    if window < 2:
        raise ValueError(f"`window` must be at least 2; got {window}")
    features = [
        FeatureSpec(name=f"{name}_l{lag}", low=-8.0, high=8.0)
        for lag in range(window, 0, -1)
        for name in STEP_FEATURES
    ]
    return TableSchema(features=features, label=LABEL, time=TIME)


def generate_market(
    banks: Sequence[tuple[str, int]],
    *,
    window: int,
    test_periods: int,
    coverage: float,
    var_window: int,
    seed: int,
) -> MarketConsortium:
    """Simulate the market and every bank's book; cut histories and the test window.

    Parameters
    ----------
    banks : Sequence[tuple[str, int]]
        ``(name, periods of history)`` per bank, names unique, history at least 1.
    window : int
        Lags per row, at least 2.
    test_periods : int
        Periods after the origin in the held-out set, at least 1.
    coverage : float
        VaR confidence level in (0.5, 1), e.g. 0.95.
    var_window : int
        Trailing periods of the historical-simulation VaR, at least 20.
    seed : int
        Root seed: it draws the market path; each bank's book is keyed by its name.

    Returns
    -------
    MarketConsortium
        Histories ending at the common origin, the test window, the oracle.

    Raises
    ------
    ValueError
        If an argument is outside the ranges above or names repeat.
    """
    names = [name for name, _ in banks]
    if not banks or len(set(names)) != len(names) or min(r for _, r in banks) < 1:
        raise ValueError(f"`banks` must be unique names with at least 1 period; got {banks}")
    if not 0.5 < coverage < 1.0 or var_window < 20 or test_periods < 1 or seed < 0:
        raise ValueError(
            "`coverage` must be in (0.5, 1), `var_window` >= 20, `test_periods` >= 1, "
            f"`seed` >= 0; got {coverage}, {var_window}, {test_periods}, {seed}"
        )
    lead = _BURN_IN + var_window + window
    origin = lead + max(r for _, r in banks)
    periods = origin + test_periods
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x3A4E7]))
    regimes, vol, shocks = _simulate(rng, periods)
    returns = vol * shocks
    index = returns.mean(axis=1)
    tables, test_parts, oracle_parts, owner = {}, [], [], []
    for name, history in banks:
        weights = _book(seed, name, names.index(name))
        rows, var = window_rows(
            returns @ weights, index, window=window, coverage=coverage, var_window=var_window
        )
        oracle = _oracle(weights, vol, regimes, var)
        times = rows[TIME].to_numpy()
        train, test = forecast_split(times, origin=origin, horizon=test_periods)
        tables[name] = rows.iloc[train[times[train] >= origin - history]].reset_index(drop=True)
        test_parts.append(rows.iloc[test])
        oracle_parts.append(oracle[times[test]])
        owner += [name] * test.size
    return MarketConsortium(
        banks=tables,
        test=pd.concat(test_parts, ignore_index=True),
        test_oracle=np.concatenate(oracle_parts),
        test_bank=np.asarray(owner),
        regimes=regimes,
        origin=origin,
    )


def window_rows(
    book: np.ndarray, index: np.ndarray, *, window: int, coverage: float, var_window: int
) -> tuple[pd.DataFrame, np.ndarray]:
    """Turn one book's return series into labelled window rows, using only the past.

    Parameters
    ----------
    book, index : numpy.ndarray
        Book and market-index returns per period, shape ``(T,)``.
    window, coverage, var_window
        As in :func:`generate_market`.

    Returns
    -------
    tuple[pandas.DataFrame, numpy.ndarray]
        Rows for every timestamp ``τ`` with a full VaR history and window (columns of
        :func:`market_schema` plus the label), and the VaR series (``var[τ − 1]`` is the
        VaR row ``τ`` is labelled against; NaN where undefined).
    """
    n = book.size
    losses = -book
    var = np.full(n, np.nan)
    scale = np.full(n, np.nan)
    # VaR and index scale at the end of period t, from periods t − var_window + 1 … t
    var[var_window - 1 :] = np.quantile(sliding_window_view(losses, var_window), coverage, axis=1)
    scale[var_window - 1 :] = sliding_window_view(index, var_window).std(axis=1)
    start = max(var_window, window)
    stamps = np.arange(start, n)
    lags = np.arange(window, 0, -1)
    past = stamps[:, None] - lags[None, :]  # (rows, window) periods τ − window … τ − 1
    ref = stamps - 1
    book_x = book[past] / var[ref][:, None]
    index_x = index[past] / scale[ref][:, None]
    cols = {}
    for j, lag in enumerate(lags):
        cols[f"book_l{lag}"] = book_x[:, j]
        cols[f"index_l{lag}"] = index_x[:, j]
    frame = pd.DataFrame(cols)
    frame[LABEL] = (losses[stamps] > var[ref]).astype(np.int64)
    frame[TIME] = stamps.astype(np.int64)
    return frame, var


def forecast_split(
    times: np.ndarray, *, origin: int, horizon: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split rows at a forecast origin: train strictly before it, test the next ``horizon``.

    Parameters
    ----------
    times : numpy.ndarray
        Integer timestamp of each row.
    origin : int
        First test timestamp.
    horizon : int
        Test timestamps are ``origin … origin + horizon − 1``; at least 1.

    Returns
    -------
    tuple[numpy.ndarray, numpy.ndarray]
        Row indices of the training and test rows, each in time order. Every training
        timestamp is below every test timestamp.

    Raises
    ------
    ValueError
        If ``horizon`` is below 1.
    """
    if horizon < 1:
        raise ValueError(f"`horizon` must be at least 1; got {horizon}")
    t = np.asarray(times)
    order = np.argsort(t, kind="stable")
    train = order[t[order] < origin]
    test = order[(t[order] >= origin) & (t[order] < origin + horizon)]
    return train, test


def _simulate(rng: np.random.Generator, periods: int) -> tuple[np.ndarray, ...]:
    """Regimes, conditional vols ``(T, 12)`` and standardised shocks ``(T, 12)``."""
    n_assets = _CLASS.size
    regimes = np.zeros(periods, dtype=np.int64)
    u = rng.random(periods)
    for t in range(1, periods):
        regimes[t] = np.searchsorted(np.cumsum(TRANSITIONS[regimes[t - 1]]), u[t])
    regimes = np.minimum(regimes, 2)
    factor = rng.standard_normal(periods)
    idio = rng.standard_normal((periods, n_assets))
    rho = _CORR[regimes][:, None]
    shocks = _LOADING * np.sqrt(rho) * factor[:, None] + np.sqrt(1 - rho) * idio
    h = np.ones((periods, n_assets))
    for t in range(1, periods):
        h[t] = (1 - _ALPHA - _BETA) + _ALPHA * shocks[t - 1] ** 2 + _BETA * h[t - 1]
    vol = _BASE_VOL * _VOL_MULT[regimes][:, _CLASS] * np.sqrt(h)
    return regimes, vol, shocks


def _oracle(
    weights: np.ndarray, vol: np.ndarray, regimes: np.ndarray, var: np.ndarray
) -> np.ndarray:
    """``P(loss_τ > var[τ − 1])`` given regime and GARCH state at ``τ − 1``, indexed by τ."""
    h_scaled = vol / _VOL_MULT[regimes][:, _CLASS]  # base vol × sqrt(h), regime removed
    out = np.full(vol.shape[0], np.nan)
    for nxt in range(3):
        sd = h_scaled * _VOL_MULT[nxt][_CLASS]  # vol of period τ if its regime is nxt
        cov_w = sd * weights * _LOADING
        variance = (1 - _CORR[nxt]) * ((sd * weights) ** 2).sum(1) + _CORR[nxt] * cov_w.sum(1) ** 2
        p_next = TRANSITIONS[regimes[:-1], nxt]
        exceed = norm.sf(var[:-1] / np.sqrt(variance[1:]))
        out[1:] = np.nan_to_num(out[1:]) + p_next * exceed
    return out


def _book(seed: int, name: str, index: int) -> np.ndarray:
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    key = tuple(int.from_bytes(digest[i : i + 4], "little") for i in range(0, 32, 4))
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0x3B, *key)))
    tilt = np.where(index % 4 == _CLASS, 6.0, 0.5)
    weights = rng.dirichlet(tilt)
    return weights / weights.sum()
