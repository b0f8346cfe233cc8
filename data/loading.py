"""Read an institution's CSV or Parquet table and validate it against its schema."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from pandas.api.types import is_bool_dtype, is_numeric_dtype

from fedrisk.data.errors import DataValidationError
from fedrisk.data.schema import FeatureKind, FeatureSpec, TableSchema

ALLOWED_SUFFIXES = (".csv", ".parquet")
"""File suffixes :func:`load_table` reads (case-insensitive)."""

_MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "-nan", "null", "none", "<na>"})
_FIX_CELL = "(fix the cell or drop the row)"
_FILL_CELL = "missing value {value} (fill the cell in or drop the row)"


def load_table(path: str | Path, schema: TableSchema, *, min_rows: int = 1) -> pd.DataFrame:
    """Load one institution's table and check every cell against the schema.

    Parameters
    ----------
    path : str | pathlib.Path
        A ``.csv`` (UTF-8, header row, comma-separated) or ``.parquet`` file.
    schema : TableSchema
        The columns the table must hold, exactly: no more, no fewer.
    min_rows : int (default: 1)
        Fewest data rows accepted, e.g. the DP batch size the run is configured with.

    Returns
    -------
    pandas.DataFrame
        Exactly ``schema.columns`` in order, with a fresh ``RangeIndex``: numeric
        features as float64, categorical features and the protected attribute as
        ``str``, the label and the time column as int64 (label 0 or 1). Values outside a feature's
        ``[low, high]`` are kept; the encoder clips them.

    Raises
    ------
    DataValidationError
        If the file is missing or unreadable, has another suffix, lacks a schema column
        or holds an extra or duplicated one, or if a cell is empty or NaN, not a
        number, infinite, not a whole number for an integer feature, not one of a
        categorical feature's levels, or a label other than 0/1; and if it has fewer
        than ``min_rows`` rows. The error names the file, the column and the first
        offending row (1-based, header excluded).
    ValueError
        If ``min_rows`` is negative.
    """
    if min_rows < 0:
        raise ValueError(f"`min_rows` must be >= 0; got {min_rows}")
    file = os.fspath(path)
    raw = _read(Path(path), file)
    _check_columns(raw, schema, file)
    specs = {spec.name: spec for spec in schema.features}
    out: dict[str, pd.Series | np.ndarray] = {}
    for name in schema.columns:
        column = raw[name]
        if name == schema.label:
            out[name] = _labels(column, file=file, name=name)
        elif name == schema.time:
            stamp = FeatureSpec(name=name, low=-(2.0**53), high=2.0**53, integer=True)
            out[name] = _numbers(column, stamp, file=file).astype(np.int64)
        elif name not in specs:
            out[name] = _categories(column, None, file=file, name=name)
        elif specs[name].kind is FeatureKind.numeric:
            out[name] = _numbers(column, specs[name], file=file)
        else:
            out[name] = _categories(column, specs[name].levels, file=file, name=name)
    if len(raw) < min_rows:
        rows = f"{len(raw)} data row" + ("" if len(raw) == 1 else "s")
        raise DataValidationError(
            file,
            reason=f"has {rows} but the configured batch needs at least {min_rows} "
            "(add rows, lower the batch size, or leave this institution out)",
        )
    return pd.DataFrame(out, columns=schema.columns)


def _read(path: Path, file: str) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix not in ALLOWED_SUFFIXES:
        raise DataValidationError(
            file,
            reason=f"unsupported file type {path.suffix or '(no suffix)'!r}; use one of "
            f"{', '.join(ALLOWED_SUFFIXES)}",
        )
    if not path.exists():
        raise DataValidationError(file, reason="file not found (check the path)")
    try:
        if suffix == ".csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
            # pandas renames a repeated header ("x", "x.1"); report the header as written.
            header = pd.read_csv(
                path, header=None, nrows=1, dtype=str, keep_default_na=False, encoding="utf-8-sig"
            )
            names = [str(name) for name in header.iloc[0]]
        else:
            frame = pd.read_parquet(path)
            names = [str(name) for name in frame.columns]
    except pd.errors.EmptyDataError:
        raise DataValidationError(
            file, reason="file is empty (it needs a header row naming the columns)"
        ) from None
    except UnicodeDecodeError:
        raise DataValidationError(file, reason="is not UTF-8 text (re-save it as UTF-8)") from None
    except (OSError, ValueError, pa.ArrowException) as exc:
        detail = " ".join(str(exc).split())[:200]
        kind = "CSV" if suffix == ".csv" else "Parquet"
        raise DataValidationError(
            file, reason=f"cannot be read as {kind}: {detail} (repair or re-export the file)"
        ) from None
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise DataValidationError(
            file,
            column=repeated[0],
            reason=f"duplicate column(s) {repeated} in the header (keep one of each)",
        )
    return frame.reset_index(drop=True)


def _check_columns(raw: pd.DataFrame, schema: TableSchema, file: str) -> None:
    present = [str(name) for name in raw.columns]
    missing = [name for name in schema.columns if name not in present]
    unexpected = [name for name in present if name not in schema.columns]
    if missing:
        also = f"; it has unexpected column(s) {unexpected}" if unexpected else ""
        raise DataValidationError(
            file,
            column=missing[0],
            reason=f"missing column(s) {missing} required by the schema{also} "
            "(add them or fix the header's spelling)",
        )
    if unexpected:
        raise DataValidationError(
            file,
            column=unexpected[0],
            reason=f"unexpected column(s) {unexpected} not in the schema "
            "(remove them, or declare them in the schema)",
        )


def _numbers(column: pd.Series, spec: FeatureSpec, *, file: str) -> np.ndarray:
    if is_numeric_dtype(column) and not is_bool_dtype(column):
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        missing = np.isnan(values)
        not_number = np.zeros(len(values), dtype=bool)
    else:
        text, missing = _text(column)
        values = pd.to_numeric(text.mask(missing), errors="coerce").to_numpy(dtype=np.float64)
        not_number = np.isnan(values) & ~missing
    with np.errstate(invalid="ignore"):
        infinite = np.isinf(values)
        fractional = np.isfinite(values) & (values != np.floor(values)) & spec.integer
    _raise_first(
        column,
        file=file,
        name=spec.name,
        checks=[
            (missing, _FILL_CELL),
            (not_number, "value {value} is not a number " + _FIX_CELL),
            (infinite, "value {value} is not a finite number " + _FIX_CELL),
            (
                fractional,
                "value {value} is not a whole number, but the schema declares the "
                "feature integer " + _FIX_CELL,
            ),
        ],
    )
    return values


def _categories(column: pd.Series, levels: list[str] | None, *, file: str, name: str) -> pd.Series:
    text, missing = _text(column)
    if levels is not None:
        missing &= ~text.isin(levels).to_numpy()
        unknown = ~missing & ~text.isin(levels).to_numpy()
    else:
        unknown = np.zeros(len(text), dtype=bool)
    _raise_first(
        column,
        file=file,
        name=name,
        checks=[
            (missing, _FILL_CELL),
            (
                unknown,
                "value {value} is not one of the levels "
                + str(levels)
                + " (fix the cell, or add the level to the schema)",
            ),
        ],
    )
    return text.astype(str)


def _labels(column: pd.Series, *, file: str, name: str) -> np.ndarray:
    if is_bool_dtype(column) and not column.isna().any():
        return column.to_numpy(dtype=np.int64)
    if is_numeric_dtype(column):
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        missing = np.isnan(values)
    else:
        text, missing = _text(column)
        values = pd.to_numeric(text.mask(missing), errors="coerce").to_numpy(dtype=np.float64)
    not_binary = ~missing & ~np.isin(values, (0.0, 1.0))
    _raise_first(
        column,
        file=file,
        name=name,
        checks=[
            (missing, "missing label {value} (fill in 0 or 1, or drop the row)"),
            (not_binary, "label {value} is not 0 or 1 " + _FIX_CELL),
        ],
    )
    return values.astype(np.int64)


def _text(column: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Return the stripped text of each cell and a mask of the missing ones."""
    absent = column.isna().to_numpy()
    if is_numeric_dtype(column) and not is_bool_dtype(column):
        # A Parquet column of codes (e.g. term 36/60) stored as numbers: 36.0 reads "36".
        values = pd.Series(column.to_numpy(dtype=np.float64, na_value=np.nan))
        whole = np.isfinite(values) & (values == np.round(values))
        as_int = pd.Series(np.where(whole, values, 0).astype(np.int64)).astype(str)
        text = as_int.where(whole, values.astype(str))
    else:
        text = column.astype(str).str.strip()
    text = text.where(~absent, "")
    missing = absent | text.str.lower().isin(_MISSING_TOKENS).to_numpy()
    return text, missing


def _raise_first(
    column: pd.Series, *, file: str, name: str, checks: list[tuple[np.ndarray, str]]
) -> None:
    """Raise for the earliest row flagged by any check, worded by that check."""
    first: tuple[int, str] | None = None
    for mask, template in checks:
        if mask.any():
            row = int(np.argmax(mask))
            if first is None or row < first[0]:
                first = (row, template)
    if first is None:
        return
    row, template = first
    raise DataValidationError(
        file,
        column=name,
        row=row + 1,
        reason=template.replace("{value}", _show(column.iloc[row])),
    )


def _show(value: object) -> str:
    if value is None or value is pd.NA or value is pd.NaT:
        return "NaN"
    if isinstance(value, float | np.floating) and np.isnan(value):
        return "NaN"
    text = str(value)
    return repr(text if len(text) <= 40 else text[:37] + "...")
