"""An institution's own data at its node: validated, encoded and split, never sent."""

from __future__ import annotations

import json
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from fedrisk.data.encoding import TableEncoder
from fedrisk.data.fingerprint import dataset_fingerprint
from fedrisk.data.loading import load_table
from fedrisk.data.schema import TableSchema

#: Share of each institution's rows kept back for federated evaluation.
VALIDATION_FRACTION = 0.2

_CACHE: dict[tuple[str, int, int, str, int], NodeData] = {}


@dataclass(frozen=True)
class NodeData:
    """Encoded training and validation arrays of one institution.

    Attributes
    ----------
    institution : str
        Institution id.
    x_train, y_train : np.ndarray
        Rows the institution trains on.
    x_val, y_val : np.ndarray
        Rows it evaluates the global model on.
    feature_names : list[str]
        Names of the encoded model inputs.
    fingerprint : str
        SHA-256 of the canonical table the node loaded (training and validation
        rows): the dataset the privacy ledger accounts for.
    groups_val : dict[str, np.ndarray]
        Each protected attribute's values (as strings) on the validation rows, for the
        fairness counts of the end-of-run risk query.
    """

    institution: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    feature_names: list[str]
    fingerprint: str
    groups_val: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_train(self) -> int:
        """Number of training rows."""
        return int(self.y_train.shape[0])


def institution_seed(seed: int, institution: str, *salt: int) -> int:
    """Derive a stable 32-bit seed for one institution (and e.g. one round)."""
    entropy = [seed & 0xFFFFFFFF, zlib.crc32(institution.encode()), *salt]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def load_node_data(
    path: str | Path, schema: TableSchema, *, institution: str, min_rows: int, seed: int
) -> NodeData:
    """Load, validate, encode and split one institution's table (cached per process).

    Parameters
    ----------
    path : str | Path
        The institution's CSV or Parquet file.
    schema : TableSchema
        Columns the file must hold.
    institution : str
        Institution id (names the data in errors and seeds the split).
    min_rows : int
        Fewest training rows the configured batch needs.
    seed : int
        Run seed; the validation split depends on it and on the institution only. When
        the schema names a ``time`` column the split is chronological instead: the
        latest rows are the validation rows.

    Returns
    -------
    NodeData
        Encoded arrays, identical for identical inputs.

    Raises
    ------
    fedrisk.data.errors.DataValidationError
        If the file is missing, malformed, or has too few rows.
    """
    file = Path(path)
    stat = file.stat() if file.exists() else None
    key = (
        str(file.resolve()),
        stat.st_mtime_ns if stat else -1,
        stat.st_size if stat else -1,
        json.dumps(asdict(schema), sort_keys=True, default=str),
        seed,
    )
    if key not in _CACHE:
        needed = int(np.ceil(min_rows / (1.0 - VALIDATION_FRACTION)))
        table = load_table(file, schema, min_rows=needed)
        encoder = TableEncoder(schema)
        x, y = encoder.encode(table), encoder.labels(table)
        n_val = round(len(y) * VALIDATION_FRACTION)
        if schema.time:  # time-ordered rows: validate on the latest, never train on them
            order = np.argsort(table[schema.time].to_numpy(), kind="stable")
            train, val = order[: len(y) - n_val], order[len(y) - n_val :]
        else:
            order = np.random.default_rng(institution_seed(seed, institution)).permutation(len(y))
            val, train = order[:n_val], order[n_val:]
        _CACHE[key] = NodeData(
            institution=institution,
            x_train=x[train],
            y_train=y[train],
            x_val=x[val],
            y_val=y[val],
            feature_names=list(encoder.feature_names),
            fingerprint=dataset_fingerprint(table, columns=schema.columns),
            groups_val={
                name: table[name].to_numpy(dtype=str)[val] for name in schema.protected_columns
            },
        )
    return _CACHE[key]
