"""A dataset fingerprint: the SHA-256 of a canonical encoding of a training table.

The privacy ledger is kept per institution *and* dataset, because privacy loss composes
over every release computed from the same records. The fingerprint identifies the
records, not the file: it ignores row order, column order, file format and columns not
used in training, and a number hashes the same whether it was stored as ``3`` or ``3.0``.
Nothing the coordinator chooses (e.g. the order of ``task.schema``) changes it.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from datetime import datetime

import numpy as np
import pandas as pd

FINGERPRINT_DOMAIN = b"fedrisk/dataset-fingerprint/v2\x00"
_NUMBER, _BIG_INTEGER, _STRING, _TIME = b"f", b"i", b"s", b"t"
_TRUE, _FALSE, _NULL = b"T", b"F", b"n"
_FLOAT_BIG_ENDIAN = np.dtype(">f8")


def dataset_fingerprint(table: pd.DataFrame, *, columns: Sequence[str]) -> str:
    """Hash the multiset of rows of ``table[columns]``.

    Parameters
    ----------
    table : pd.DataFrame
        The training table.
    columns : Sequence[str]
        The columns that training reads, in any order (they are hashed sorted by name).

    Returns
    -------
    str
        64 lowercase hex digits.

    Raises
    ------
    TypeError
        If ``table`` is not a DataFrame or a cell has a type without a canonical
        encoding (numbers, booleans, strings, timestamps and missing values have one).
    ValueError
        If ``columns`` is empty, repeats a name or names a column ``table`` lacks.

    Notes
    -----
    Encoding, version 2 (version 1 hashed the columns in the order given, so a
    reordered schema gave a new fingerprint and a fresh ledger). A cell is ``f`` + its
    IEEE-754 binary64 value, big-endian (integers convert exactly up to 2**53; ``-0.0``
    is folded into ``0.0``), or ``i`` +
    a length-prefixed decimal for larger integers, ``T`` / ``F`` for booleans, ``n`` for
    a missing value, ``s`` + a length-prefixed UTF-8 string, ``t`` + a length-prefixed
    ISO-8601 timestamp; a length prefix is the byte count in decimal followed by ``:``.
    Cells are self-delimiting, so a row is its cells concatenated and the rows,
    sorted bytewise, are concatenated too. The digest covers the domain label, the
    column count, each length-prefixed column name (sorted by its UTF-8 bytes), the row
    count and the rows (cells in the same column order).
    """
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"`table` must be a pandas DataFrame; got {type(table).__name__}")
    names = sorted(columns, key=lambda name: str(name).encode("utf-8"))
    if not names or len(set(names)) != len(names):
        raise ValueError(f"`columns` must be non-empty and free of repeats; got {names}")
    missing = [name for name in names if name not in table.columns]
    if missing:
        raise ValueError(f"`columns` must name columns of the table; got unknown {missing}")
    encoded = [_encode_column(table[name], name) for name in names]
    rows = sorted(b"".join(cells) for cells in zip(*encoded, strict=True))
    digest = hashlib.sha256(FINGERPRINT_DOMAIN)
    digest.update(_framed(str(len(names)).encode("ascii")))
    for name in names:
        digest.update(_framed(str(name).encode("utf-8")))
    digest.update(_framed(str(len(rows)).encode("ascii")))
    digest.update(b"".join(rows))
    return digest.hexdigest()


def _framed(payload: bytes) -> bytes:
    return str(len(payload)).encode("ascii") + b":" + payload


def _encode_column(series: pd.Series, name: str) -> list[bytes]:
    dtype = series.dtype
    if isinstance(dtype, np.dtype) and dtype.kind == "b":
        return [_TRUE if v else _FALSE for v in series.to_numpy().tolist()]
    if isinstance(dtype, np.dtype) and dtype.kind in "fiu":
        values = series.to_numpy()
        as_float = values.astype(np.float64) + 0.0  # `+ 0.0` folds -0.0 into 0.0
        cells = _float_cells(as_float)
        for i in np.flatnonzero(np.isnan(as_float)).tolist():
            cells[i] = _NULL
        if dtype.kind in "iu":  # integers that binary64 would round keep every digit
            for i in np.flatnonzero(np.abs(as_float) >= 2.0**53).tolist():
                cells[i] = _encode_number(int(values[i]))
        return cells
    return [_encode_value(v, name) for v in series.astype(object).tolist()]


def _float_cells(values: np.ndarray) -> list[bytes]:
    width = 1 + _FLOAT_BIG_ENDIAN.itemsize
    block = np.empty((values.size, width), dtype=np.uint8)
    block[:, 0] = _NUMBER[0]
    block[:, 1:] = values.astype(_FLOAT_BIG_ENDIAN).view(np.uint8).reshape(-1, width - 1)
    data = block.tobytes()
    return [data[i : i + width] for i in range(0, len(data), width)]


def _encode_number(value: int | float) -> bytes:
    as_float = float(value) + 0.0
    if math.isnan(as_float):
        return _NULL
    if isinstance(value, int) and as_float != value:
        return _BIG_INTEGER + _framed(str(value).encode("ascii"))
    return _NUMBER + np.array(as_float, dtype=_FLOAT_BIG_ENDIAN).tobytes()


def _encode_value(value: object, name: str) -> bytes:
    if value is None or value is pd.NA or value is pd.NaT:
        return _NULL
    if isinstance(value, bool | np.bool_):
        return _TRUE if value else _FALSE
    if isinstance(value, int | float | np.integer | np.floating):
        return _encode_number(value.item() if isinstance(value, np.generic) else value)
    if isinstance(value, str):
        return _STRING + _framed(value.encode("utf-8"))
    if isinstance(value, datetime | np.datetime64):
        stamp = pd.Timestamp(value)
        return _NULL if stamp is pd.NaT else _TIME + _framed(stamp.isoformat().encode("ascii"))
    raise TypeError(
        f"`table[{name!r}]` must hold numbers, booleans, strings or timestamps; "
        f"got a {type(value).__name__}"
    )
