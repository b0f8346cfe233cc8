from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fedrisk.data import FeatureKind, FeatureSpec, TableEncoder, TableSchema


def _schema() -> TableSchema:
    return TableSchema(
        features=[
            FeatureSpec(name="dti", low=0.0, high=50.0),
            FeatureSpec(
                name="home", kind=FeatureKind.categorical, levels=["rent", "own", "mortgage"]
            ),
            FeatureSpec(name="income", low=0.0, high=99.0, log=True),
        ],
        label="default",
    )


def _table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "dti": [0.0, 25.0, 50.0, -10.0, 80.0],
            "home": ["rent", "own", "mortgage", "own", "rent"],
            "income": [0.0, 9.0, 99.0, 1_000.0, -3.0],
            "default": [0, 1, 0, 1, 0],
        }
    )


def test_feature_names_and_width() -> None:
    encoder = TableEncoder(_schema())

    assert encoder.feature_names == ["dti", "home=rent", "home=own", "home=mortgage", "income"]
    assert encoder.n_inputs == 5


def test_numeric_is_scaled_to_unit_interval_and_clipped() -> None:
    x = TableEncoder(_schema()).encode(_table())

    np.testing.assert_allclose(x[:, 0], [-1.0, 0.0, 1.0, -1.0, 1.0], atol=1e-7)


def test_log_feature_scales_log1p_of_value_and_of_range() -> None:
    x = TableEncoder(_schema()).encode(_table())

    # log1p(9) / log1p(99) = log(10) / log(100) = 0.5, so 2 * 0.5 - 1 = 0.
    np.testing.assert_allclose(x[:, 4], [-1.0, 0.0, 1.0, 1.0, -1.0], atol=1e-6)


def test_categorical_is_one_hot_in_declared_level_order() -> None:
    x = TableEncoder(_schema()).encode(_table())

    np.testing.assert_array_equal(
        x[:, 1:4],
        [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 1, 0], [1, 0, 0]],
    )


def test_encode_returns_float32_of_shape_rows_by_inputs() -> None:
    x = TableEncoder(_schema()).encode(_table())

    assert x.dtype == np.float32
    assert x.shape == (5, 5)
    assert np.all((x >= -1.0) & (x <= 1.0))


def test_encoding_does_not_depend_on_other_rows() -> None:
    encoder = TableEncoder(_schema())
    table = _table()

    whole = encoder.encode(table)
    one_by_one = np.vstack([encoder.encode(table.iloc[[i]]) for i in range(len(table))])

    np.testing.assert_array_equal(whole, one_by_one)


def test_labels_are_float32_zero_one() -> None:
    y = TableEncoder(_schema()).labels(_table())

    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, [0.0, 1.0, 0.0, 1.0, 0.0])


def test_labels_reject_non_binary_values() -> None:
    table = _table().assign(default=[0, 1, 2, 0, 1])

    with pytest.raises(ValueError, match="label 'default' must hold only 0 and 1; got '2'"):
        TableEncoder(_schema()).labels(table)


def test_unknown_level_is_rejected_naming_feature_and_value() -> None:
    table = _table().assign(home=["rent", "own", "castle", "own", "rent"])

    with pytest.raises(
        ValueError, match=r"categorical feature 'home' must be one of .*; got 'castle'"
    ):
        TableEncoder(_schema()).encode(table)


def test_missing_numeric_is_rejected() -> None:
    table = _table().assign(dti=[0.0, np.nan, 1.0, 2.0, 3.0])

    with pytest.raises(ValueError, match="numeric feature 'dti' must be a number; got 'nan'"):
        TableEncoder(_schema()).encode(table)


def test_missing_column_is_rejected() -> None:
    with pytest.raises(ValueError, match="`df` must have column 'income'"):
        TableEncoder(_schema()).encode(_table().drop(columns="income"))
