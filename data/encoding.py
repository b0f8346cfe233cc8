"""Turn a validated table into model inputs using only the schema's fixed ranges."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fedrisk.data.schema import FeatureKind, FeatureSpec, TableSchema


class TableEncoder:
    """Encode tables of one schema into float32 model inputs, without fitting.

    Numeric features are clipped to ``[low, high]``, passed through ``log1p`` when
    ``log`` is set (the range too), and scaled linearly onto ``[-1, 1]``. Categorical
    features become one-hot columns named ``name=level`` in the declared level order.

    Parameters
    ----------
    schema : TableSchema
        The table's schema; its ranges and levels are the encoder's only parameters.

    Attributes
    ----------
    schema : TableSchema
        The schema the encoder was built from.
    feature_names : list[str]
        Names of the encoded columns, in order.
    n_inputs : int
        Number of encoded columns.

    Notes
    -----
    Nothing is estimated from data. Fitting a scaler or a vocabulary would pool
    statistics of every institution's raw records at one place, which the consortium
    must never do; fixed, agreed ranges keep every bank's encoding identical and
    private.
    """

    def __init__(self, schema: TableSchema) -> None:
        self.schema = schema
        names: list[str] = []
        for spec in schema.features:
            if spec.kind is FeatureKind.numeric:
                names.append(spec.name)
            else:
                names.extend(f"{spec.name}={level}" for level in spec.levels)
        self.feature_names = names
        self.n_inputs = len(names)

    def encode(self, df: pd.DataFrame) -> np.ndarray:
        """Encode the feature columns of a table.

        Parameters
        ----------
        df : pandas.DataFrame
            Rows holding at least the schema's feature columns, e.g. the output of
            :func:`fedrisk.data.load_table`.

        Returns
        -------
        numpy.ndarray
            float32 array of shape ``(len(df), n_inputs)``.

        Raises
        ------
        ValueError
            If a feature column is absent, a numeric column holds missing or
            non-numeric values, or a categorical column holds a value outside its
            levels.
        """
        out = np.empty((len(df), self.n_inputs), dtype=np.float32)
        start = 0
        for spec in self.schema.features:
            column = _column(df, spec.name)
            if spec.kind is FeatureKind.numeric:
                out[:, start] = _scale(spec, column)
                start += 1
            else:
                width = len(spec.levels)
                out[:, start : start + width] = _one_hot(spec, column)
                start += width
        return out

    def labels(self, df: pd.DataFrame) -> np.ndarray:
        """Return the label column as a float32 vector of 0.0 and 1.0.

        Parameters
        ----------
        df : pandas.DataFrame
            Rows holding the schema's label column.

        Returns
        -------
        numpy.ndarray
            float32 array of shape ``(len(df),)``.

        Raises
        ------
        ValueError
            If the label column is absent or holds a value other than 0 or 1.
        """
        name = self.schema.label
        values = pd.to_numeric(_column(df, name), errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isin(values, (0.0, 1.0))
        if bad.any():
            first = _column(df, name).iloc[int(np.argmax(bad))]
            raise ValueError(f"label {name!r} must hold only 0 and 1; got {str(first)!r}")
        return values.astype(np.float32)


def _column(df: pd.DataFrame, name: str) -> pd.Series:
    if name not in df.columns:
        raise ValueError(f"`df` must have column {name!r}; got columns {list(df.columns)}")
    return df[name]


def _scale(spec: FeatureSpec, column: pd.Series) -> np.ndarray:
    if spec.low is None or spec.high is None:  # unreachable for a validated FeatureSpec
        raise ValueError(f"numeric feature {spec.name!r} must have `low` and `high`")
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
    if np.isnan(values).any():
        first = column.iloc[int(np.argmax(np.isnan(values)))]
        raise ValueError(f"numeric feature {spec.name!r} must be a number; got {str(first)!r}")
    low, high = spec.low, spec.high
    values = np.clip(values, low, high)
    if spec.log:
        values, low, high = np.log1p(values), float(np.log1p(low)), float(np.log1p(high))
    scaled: np.ndarray = 2.0 * (values - low) / (high - low) - 1.0
    return scaled


def _one_hot(spec: FeatureSpec, column: pd.Series) -> np.ndarray:
    codes = pd.Index(spec.levels).get_indexer(pd.Index(column.astype(str)))
    if (codes < 0).any():
        first = column.iloc[int(np.argmax(codes < 0))]
        raise ValueError(
            f"categorical feature {spec.name!r} must be one of {spec.levels}; got {str(first)!r}"
        )
    return np.eye(len(spec.levels), dtype=np.float32)[codes]
