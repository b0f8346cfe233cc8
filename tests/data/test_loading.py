from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fedrisk.data import DataValidationError, FeatureKind, FeatureSpec, TableSchema, load_table

FORMATS = ["csv", "parquet"]


def _schema() -> TableSchema:
    return TableSchema(
        features=[
            FeatureSpec(name="income", low=5_000.0, high=500_000.0, log=True),
            FeatureSpec(name="accounts", low=0.0, high=60.0, integer=True),
            FeatureSpec(name="home", kind=FeatureKind.categorical, levels=["rent", "own", "none"]),
        ],
        label="default",
        protected="sex",
    )


def _good() -> dict[str, list[object]]:
    return {
        "income": [52_000.0, 1_000_000.0, 31_500.5, 80_000.0],
        "accounts": [3, 0, 12, 7],
        "home": ["rent", "own", "none", "rent"],
        "default": [0, 1, 0, 0],
        "sex": ["f", "m", "f", "x"],
    }


def _write(
    tmp_path: Path, fmt: str, columns: dict[str, list[object]], name: str = "bank_a"
) -> Path:
    path = tmp_path / f"{name}.{fmt}"
    frame = pd.DataFrame(columns)
    if fmt == "csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return path


def _error(path: Path, schema: TableSchema | None = None, **kwargs: int) -> DataValidationError:
    with pytest.raises(DataValidationError) as caught:
        load_table(path, schema or _schema(), **kwargs)
    return caught.value


@pytest.mark.parametrize("fmt", FORMATS)
def test_valid_table_is_returned_typed_and_in_schema_order(tmp_path: Path, fmt: str) -> None:
    columns = _good()
    shuffled = {name: columns[name] for name in ["sex", "default", "home", "income", "accounts"]}
    path = _write(tmp_path, fmt, shuffled)

    table = load_table(path, _schema())

    assert list(table.columns) == ["income", "accounts", "home", "default", "sex"]
    assert table["income"].dtype == np.float64
    assert table["accounts"].dtype == np.float64
    assert table["default"].dtype == np.int64
    assert table["home"].dtype == "str"
    assert table["sex"].dtype == "str"
    assert isinstance(table.index, pd.RangeIndex)
    np.testing.assert_array_equal(table["income"], [52_000.0, 1_000_000.0, 31_500.5, 80_000.0])
    np.testing.assert_array_equal(table["accounts"], [3.0, 0.0, 12.0, 7.0])
    assert table["home"].tolist() == ["rent", "own", "none", "rent"]
    assert table["default"].tolist() == [0, 1, 0, 0]


def test_path_may_be_a_string(tmp_path: Path) -> None:
    path = _write(tmp_path, "csv", _good())

    table = load_table(str(path), _schema())

    assert len(table) == 4


def test_csv_strips_blanks_and_reads_whole_floats_as_integers(tmp_path: Path) -> None:
    path = tmp_path / "bank.csv"
    path.write_text("income,accounts,home,default,sex\n 52000 ,3.0, rent ,1.0,f\n")

    table = load_table(path, _schema())

    assert table.loc[0, "income"] == 52_000.0
    assert table.loc[0, "accounts"] == 3.0
    assert table.loc[0, "home"] == "rent"
    assert table.loc[0, "default"] == 1


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "labels",
    [[0, 1, 0, 1], [0.0, 1.0, 0.0, 1.0], ["0", "1", "0", "1"], ["0.0", "1.0", "0", "1"]],
)
def test_accepted_label_spellings(tmp_path: Path, fmt: str, labels: list[object]) -> None:
    path = _write(tmp_path, fmt, {**_good(), "default": labels})

    table = load_table(path, _schema())

    assert table["default"].tolist() == [0, 1, 0, 1]


def test_parquet_boolean_label_is_accepted(tmp_path: Path) -> None:
    path = _write(tmp_path, "parquet", {**_good(), "default": [False, True, False, True]})

    assert load_table(path, _schema())["default"].tolist() == [0, 1, 0, 1]


def test_parquet_numeric_codes_are_read_as_categorical_levels(tmp_path: Path) -> None:
    schema = TableSchema(
        features=[FeatureSpec(name="term", kind=FeatureKind.categorical, levels=["36", "60"])]
    )
    path = _write(tmp_path, "parquet", {"term": [36.0, 60.0, 36.0], "default": [0, 1, 0]})

    assert load_table(path, schema)["term"].tolist() == ["36", "60", "36"]


def test_unsupported_suffix_names_file_and_allowed_suffixes(tmp_path: Path) -> None:
    path = tmp_path / "bank_a.xlsx"
    path.write_bytes(b"")

    err = _error(path)

    assert (err.file, err.column, err.row) == (str(path), None, None)
    assert err.reason == "unsupported file type '.xlsx'; use one of .csv, .parquet"
    assert str(err) == f"{path}: unsupported file type '.xlsx'; use one of .csv, .parquet"


def test_missing_file_says_file_not_found(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.parquet"

    err = _error(path)

    assert (err.file, err.column, err.row) == (str(path), None, None)
    assert "file not found" in err.reason


def test_empty_csv_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "bank_a.csv"
    path.write_text("")

    err = _error(path)

    assert err.file == str(path)
    assert "file is empty" in err.reason


def test_corrupt_parquet_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "bank_a.parquet"
    path.write_bytes(b"not a parquet file at all")

    err = _error(path)

    assert (err.file, err.column, err.row) == (str(path), None, None)
    assert err.reason.startswith("cannot be read as Parquet: ")


def test_ragged_csv_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "bank_a.csv"
    path.write_text("income,accounts,home,default,sex\n1,2,rent,0,f\n1,2,rent,0,f,extra,more\n")

    err = _error(path)

    assert err.reason.startswith("cannot be read as CSV: ")


@pytest.mark.parametrize("fmt", FORMATS)
def test_missing_columns_are_listed(tmp_path: Path, fmt: str) -> None:
    columns = _good()
    del columns["accounts"], columns["default"]
    path = _write(tmp_path, fmt, columns)

    err = _error(path)

    assert (err.file, err.column, err.row) == (str(path), "accounts", None)
    assert "missing column(s) ['accounts', 'default'] required by the schema" in err.reason
    assert "add them" in err.reason


@pytest.mark.parametrize("fmt", FORMATS)
def test_unexpected_columns_are_listed(tmp_path: Path, fmt: str) -> None:
    path = _write(tmp_path, fmt, {**_good(), "ssn": ["1", "2", "3", "4"], "zip": [1, 2, 3, 4]})

    err = _error(path)

    assert (err.file, err.column, err.row) == (str(path), "ssn", None)
    assert "unexpected column(s) ['ssn', 'zip'] not in the schema" in err.reason


def test_duplicate_csv_header_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "bank_a.csv"
    path.write_text("income,accounts,home,default,sex,income\n1,2,rent,0,f,1\n")

    err = _error(path)

    assert (err.file, err.column, err.row) == (str(path), "income", None)
    assert err.reason == "duplicate column(s) ['income'] in the header (keep one of each)"


@pytest.mark.parametrize("fmt", FORMATS)
def test_non_numeric_cell_names_column_and_row(tmp_path: Path, fmt: str) -> None:
    income: list[object] = ["52000", "61000", "abc", "n/a-ish"]
    path = _write(tmp_path, fmt, {**_good(), "income": income})

    err = _error(path)

    assert (err.file, err.column, err.row) == (str(path), "income", 3)
    assert str(err) == (
        f"{path}, column 'income', row 3: value 'abc' is not a number "
        "(fix the cell or drop the row)"
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_fractional_value_in_integer_feature(tmp_path: Path, fmt: str) -> None:
    path = _write(tmp_path, fmt, {**_good(), "accounts": [3.0, 0.0, 12.0, 2.5]})

    err = _error(path)

    assert (err.file, err.column, err.row) == (str(path), "accounts", 4)
    assert "value '2.5' is not a whole number" in err.reason


@pytest.mark.parametrize("fmt", FORMATS)
def test_infinite_value_is_rejected(tmp_path: Path, fmt: str) -> None:
    path = _write(tmp_path, fmt, {**_good(), "income": [1.0, np.inf, 3.0, 4.0]})

    err = _error(path)

    assert (err.file, err.column, err.row) == (str(path), "income", 2)
    assert "is not a finite number" in err.reason


@pytest.mark.parametrize("fmt", FORMATS)
def test_nan_numeric_cell_is_reported_as_missing(tmp_path: Path, fmt: str) -> None:
    path = _write(tmp_path, fmt, {**_good(), "income": [1.0, 2.0, np.nan, 4.0]})

    err = _error(path)

    assert (err.file, err.column, err.row) == (str(path), "income", 3)
    assert err.reason.startswith("missing value")
    assert "fill the cell in or drop the row" in err.reason


@pytest.mark.parametrize("token", ["", "NaN", "NA", "null", "  "])
def test_csv_empty_and_nan_tokens_are_missing(tmp_path: Path, token: str) -> None:
    path = tmp_path / "bank_a.csv"
    rows = ["52000,1,rent,0,f", f"52000,{token},own,1,m"]
    path.write_text("income,accounts,home,default,sex\n" + "\n".join(rows) + "\n")

    err = _error(path)

    assert (err.column, err.row) == ("accounts", 2)
    assert err.reason == f"missing value {token!r} (fill the cell in or drop the row)"


@pytest.mark.parametrize("fmt", FORMATS)
def test_missing_categorical_cell(tmp_path: Path, fmt: str) -> None:
    path = _write(tmp_path, fmt, {**_good(), "home": ["rent", None, "own", "rent"]})

    err = _error(path)

    assert (err.file, err.column, err.row) == (str(path), "home", 2)
    assert err.reason.startswith("missing value")


def test_level_spelled_like_a_missing_token_is_a_value(tmp_path: Path) -> None:
    path = _write(tmp_path, "csv", {**_good(), "home": ["none", "none", "own", "rent"]})

    assert load_table(path, _schema())["home"].tolist() == ["none", "none", "own", "rent"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_missing_protected_cell(tmp_path: Path, fmt: str) -> None:
    path = _write(tmp_path, fmt, {**_good(), "sex": ["f", "m", "f", None]})

    err = _error(path)

    assert (err.file, err.column, err.row) == (str(path), "sex", 4)


@pytest.mark.parametrize("fmt", FORMATS)
def test_unknown_level_names_levels_and_remedy(tmp_path: Path, fmt: str) -> None:
    path = _write(tmp_path, fmt, {**_good(), "home": ["rent", "own", "castle", "boat"]})

    err = _error(path)

    assert (err.file, err.column, err.row) == (str(path), "home", 3)
    assert err.reason == (
        "value 'castle' is not one of the levels ['rent', 'own', 'none'] "
        "(fix the cell, or add the level to the schema)"
    )


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    ("labels", "shown"), [([0, 1, 2, 0], "'2'"), (["0", "1", "yes", "0"], "'yes'")]
)
def test_non_binary_label(tmp_path: Path, fmt: str, labels: list[object], shown: str) -> None:
    path = _write(tmp_path, fmt, {**_good(), "default": labels})

    err = _error(path)

    assert (err.file, err.column, err.row) == (str(path), "default", 3)
    assert err.reason == f"label {shown} is not 0 or 1 (fix the cell or drop the row)"


@pytest.mark.parametrize("fmt", FORMATS)
def test_missing_label(tmp_path: Path, fmt: str) -> None:
    path = _write(tmp_path, fmt, {**_good(), "default": [0.0, np.nan, 1.0, 0.0]})

    err = _error(path)

    assert (err.file, err.column, err.row) == (str(path), "default", 2)
    assert err.reason.startswith("missing label")


@pytest.mark.parametrize("fmt", FORMATS)
def test_first_offending_row_is_reported_whatever_the_problem(tmp_path: Path, fmt: str) -> None:
    # Row 2 is fractional, row 3 is missing, row 4 is not a number: row 2 comes first.
    path = _write(tmp_path, fmt, {**_good(), "accounts": ["1", "2.5", "", "x"]})

    err = _error(path)

    assert (err.column, err.row) == ("accounts", 2)
    assert "not a whole number" in err.reason


@pytest.mark.parametrize("fmt", FORMATS)
def test_too_few_rows_for_the_batch(tmp_path: Path, fmt: str) -> None:
    path = _write(tmp_path, fmt, _good())

    err = _error(path, min_rows=64)

    assert (err.file, err.column, err.row) == (str(path), None, None)
    assert err.reason == (
        "has 4 data rows but the configured batch needs at least 64 "
        "(add rows, lower the batch size, or leave this institution out)"
    )


def test_header_only_csv_has_zero_rows(tmp_path: Path) -> None:
    path = tmp_path / "bank_a.csv"
    path.write_text("income,accounts,home,default,sex\n")

    err = _error(path)

    assert err.reason.startswith("has 0 data rows but the configured batch needs at least 1 ")


def test_enough_rows_passes(tmp_path: Path) -> None:
    path = _write(tmp_path, "parquet", _good())

    assert len(load_table(path, _schema(), min_rows=4)) == 4


def test_negative_min_rows_is_a_usage_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "csv", _good())

    with pytest.raises(ValueError, match="`min_rows` must be >= 0; got -1"):
        load_table(path, _schema(), min_rows=-1)


def test_error_is_a_value_error_and_survives_pickling() -> None:
    err = DataValidationError("bank_a.csv", column="income", row=7, reason="value 'abc' is bad")

    clone = pickle.loads(pickle.dumps(err))

    assert isinstance(clone, DataValidationError)
    assert isinstance(clone, ValueError)
    assert (clone.file, clone.column, clone.row, clone.reason) == (
        "bank_a.csv",
        "income",
        7,
        "value 'abc' is bad",
    )
    assert str(clone) == "bank_a.csv, column 'income', row 7: value 'abc' is bad"


def test_error_without_row_or_column() -> None:
    err = DataValidationError(Path("x.parquet"), reason="file not found (check the path)")

    assert str(err) == "x.parquet: file not found (check the path)"
