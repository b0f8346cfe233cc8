"""Split one real table into simulated institutions.

Every partitioner returns disjoint parts that together hold every row exactly once. Parts
keep the original index labels (so a split can be audited against its source) and the
source's row order within each part.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MAX_DIRICHLET_TRIES = 100
"""Draws :func:`dirichlet_label_skew` makes before giving up on ``min_rows``."""


def iid(df: pd.DataFrame, n_parts: int, *, seed: int) -> list[pd.DataFrame]:
    """Shuffle the rows and deal them into parts of (almost) equal size.

    Parameters
    ----------
    df : pandas.DataFrame
        The table to split.
    n_parts : int
        Number of parts, from 1 to ``len(df)``.
    seed : int
        Seed of the shuffle.

    Returns
    -------
    list[pandas.DataFrame]
        ``n_parts`` parts whose sizes differ by at most one row.

    Raises
    ------
    ValueError
        If ``n_parts`` is below 1 or above the number of rows.
    """
    _check_parts(n_parts, len(df))
    order = np.random.default_rng(seed).permutation(len(df))
    return [_take(df, chunk) for chunk in np.array_split(order, n_parts)]


def dirichlet_label_skew(
    df: pd.DataFrame,
    n_parts: int,
    *,
    label: str,
    alpha: float,
    seed: int,
    min_rows: int = 1,
) -> list[pd.DataFrame]:
    """Split rows so each part's label mix follows a Dirichlet draw.

    For every label value, the rows holding it are shuffled and divided among the parts
    in proportions drawn from ``Dirichlet(alpha, ..., alpha)`` (Hsu et al. 2019, "Measuring
    the effects of non-identical data distribution for federated visual classification").
    Small ``alpha`` concentrates each class in few parts, so default rates differ
    widely between institutions; large ``alpha`` approaches an IID split.

    Parameters
    ----------
    df : pandas.DataFrame
        The table to split.
    n_parts : int
        Number of parts, from 1 to ``len(df)``.
    label : str
        Column whose values are skewed across parts.
    alpha : float
        Dirichlet concentration, positive.
    seed : int
        Seed of the shuffles and the Dirichlet draws.
    min_rows : int (default: 1)
        Fewest rows a part may hold. Draws are repeated (up to
        :data:`MAX_DIRICHLET_TRIES` times) until every part has that many.

    Returns
    -------
    list[pandas.DataFrame]
        ``n_parts`` parts.

    Raises
    ------
    ValueError
        If ``n_parts`` is out of range, ``label`` is not a column, ``alpha`` is not
        positive, ``min_rows`` is below 0 or above what the table can give every
        part, or no draw gives every part ``min_rows`` rows.
    """
    _check_parts(n_parts, len(df))
    _check_column(df, label, name="label")
    if not alpha > 0:
        raise ValueError(f"`alpha` must be positive; got {alpha}")
    if min_rows < 0 or min_rows * n_parts > len(df):
        raise ValueError(
            f"`min_rows` must be between 0 and len(df) / n_parts = {len(df) // n_parts}; "
            f"got {min_rows}"
        )
    rng = np.random.default_rng(seed)
    codes = pd.factorize(df[label], use_na_sentinel=False)[0]
    classes = [np.flatnonzero(codes == code) for code in range(int(codes.max(initial=-1)) + 1)]
    for _ in range(MAX_DIRICHLET_TRIES):
        owner = np.empty(len(df), dtype=np.int64)
        for rows in classes:
            shares = rng.dirichlet(np.full(n_parts, float(alpha)))
            cuts = np.floor(np.cumsum(shares)[:-1] * len(rows)).astype(np.int64)
            for part, chunk in enumerate(np.split(rng.permutation(rows), cuts)):
                owner[chunk] = part
        if np.bincount(owner, minlength=n_parts).min() >= min_rows:
            return [_take(df, np.flatnonzero(owner == part)) for part in range(n_parts)]
    raise ValueError(
        f"`alpha` = {alpha} is too skewed to give each of {n_parts} parts at least "
        f"{min_rows} rows after {MAX_DIRICHLET_TRIES} draws; raise alpha or lower min_rows"
    )


def by_column(df: pd.DataFrame, column: str) -> dict[str, pd.DataFrame]:
    """Make one part per distinct value of a column, e.g. region or product.

    Parameters
    ----------
    df : pandas.DataFrame
        The table to split.
    column : str
        Column whose values name the parts.

    Returns
    -------
    dict[str, pandas.DataFrame]
        ``str(value)`` to the rows holding that value, ordered by value.

    Raises
    ------
    ValueError
        If ``column`` is not a column of ``df``, or it has missing values.
    """
    _check_column(df, column, name="column")
    values = df[column]
    if values.isna().any():
        row = int(np.argmax(values.isna().to_numpy()))
        raise ValueError(
            f"column {column!r} must have no missing values to split by; got one at position {row}"
        )
    distinct = list(values.unique())
    try:
        distinct.sort()
    except TypeError:  # mixed types, e.g. numbers and strings: order by their text
        distinct.sort(key=str)
    return {str(value): df[(values == value).to_numpy()] for value in distinct}


def _check_parts(n_parts: int, n_rows: int) -> None:
    if not 1 <= n_parts <= max(n_rows, 1):
        raise ValueError(f"`n_parts` must be between 1 and the {n_rows} rows; got {n_parts}")


def _check_column(df: pd.DataFrame, column: str, *, name: str) -> None:
    if column not in df.columns:
        raise ValueError(
            f"`{name}` must be a column of the table; got {column!r}, "
            f"columns are {list(df.columns)}"
        )


def _take(df: pd.DataFrame, positions: np.ndarray) -> pd.DataFrame:
    return df.iloc[np.sort(positions)]
