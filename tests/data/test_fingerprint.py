from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from fedrisk.data.fingerprint import dataset_fingerprint

COLUMNS = ["income", "age", "region", "default"]


def _table(n: int = 50, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "income": rng.normal(50_000, 10_000, n),
            "age": rng.integers(18, 90, n),
            "region": rng.choice(["north", "south", "zürich"], n),
            "default": rng.random(n) < 0.1,
            "unused": rng.normal(size=n),
        }
    )


def test_fingerprint_is_sha256_hex() -> None:
    assert re.fullmatch(r"[0-9a-f]{64}", dataset_fingerprint(_table(), columns=COLUMNS))


def test_shuffled_rows_same_fingerprint() -> None:
    table = _table()
    shuffled = table.sample(frac=1.0, random_state=7).reset_index(drop=True)

    assert dataset_fingerprint(shuffled, columns=COLUMNS) == dataset_fingerprint(
        table, columns=COLUMNS
    )


def test_unused_columns_and_extra_column_order_do_not_matter() -> None:
    table = _table()
    other = table.drop(columns=["unused"])[list(reversed(COLUMNS))]

    assert dataset_fingerprint(other, columns=COLUMNS) == dataset_fingerprint(
        table, columns=COLUMNS
    )


@pytest.mark.parametrize(
    ("column", "value"),
    [("income", 1.0), ("age", 200), ("region", "east"), ("default", True)],
)
def test_one_changed_cell_changes_fingerprint(column: str, value: float | str | bool) -> None:
    table = _table()
    changed = table.copy()
    changed.loc[3, column] = value if changed.loc[3, column] != value else not value

    assert dataset_fingerprint(changed, columns=COLUMNS) != dataset_fingerprint(
        table, columns=COLUMNS
    )


def test_duplicate_rows_count() -> None:
    table = _table()
    doubled = pd.concat([table, table.iloc[[0]]], ignore_index=True)

    assert dataset_fingerprint(doubled, columns=COLUMNS) != dataset_fingerprint(
        table, columns=COLUMNS
    )


def test_column_order_given_does_not_matter() -> None:
    # The coordinator chooses the order of `task.schema`: reordering it must not give the
    # bank a new fingerprint (and with it a fresh ledger and budget).
    table = pd.DataFrame({"a": [1.0, 2.0], "b": [1.0, 2.0]})
    swapped = pd.DataFrame({"a": [1.0, 3.0], "b": [1.0, 2.0]})

    assert dataset_fingerprint(table, columns=["a", "b"]) == dataset_fingerprint(
        table, columns=["b", "a"]
    )
    assert dataset_fingerprint(swapped, columns=["a", "b"]) == dataset_fingerprint(
        swapped, columns=["b", "a"]
    )
    assert dataset_fingerprint(table, columns=["a", "b"]) != dataset_fingerprint(
        swapped, columns=["a", "b"]
    )
    renamed = table.rename(columns={"a": "c"})
    assert dataset_fingerprint(renamed, columns=["c", "b"]) != dataset_fingerprint(
        table, columns=["a", "b"]
    )


def test_int_and_float_representation_of_same_value_agree() -> None:
    as_float = pd.DataFrame({"x": [1.0, 2.0, -0.0], "y": ["a", "b", "c"]})
    as_int = pd.DataFrame({"x": [1, 2, 0], "y": ["a", "b", "c"]})
    as_object = pd.DataFrame({"x": pd.Series([1, 2.0, 0], dtype=object), "y": ["a", "b", "c"]})

    expected = dataset_fingerprint(as_float, columns=["x", "y"])
    assert dataset_fingerprint(as_int, columns=["x", "y"]) == expected
    assert dataset_fingerprint(as_object, columns=["x", "y"]) == expected


def test_values_are_unambiguous() -> None:
    # Cells are length-prefixed: moving characters between cells changes the hash.
    left = pd.DataFrame({"a": ["ab"], "b": ["c"]})
    right = pd.DataFrame({"a": ["a"], "b": ["bc"]})
    number_text = pd.DataFrame({"a": ["1.0"], "b": ["c"]})
    number = pd.DataFrame({"a": [1.0], "b": ["c"]})

    assert dataset_fingerprint(left, columns=["a", "b"]) != dataset_fingerprint(
        right, columns=["a", "b"]
    )
    assert dataset_fingerprint(number_text, columns=["a", "b"]) != dataset_fingerprint(
        number, columns=["a", "b"]
    )


def test_missing_values_hash_alike() -> None:
    floats = pd.DataFrame({"x": [1.0, np.nan]})
    objects = pd.DataFrame({"x": pd.Series([1, None], dtype=object)})
    nullable = pd.DataFrame({"x": pd.Series([1, None], dtype="Int64")})

    expected = dataset_fingerprint(floats, columns=["x"])
    assert dataset_fingerprint(objects, columns=["x"]) == expected
    assert dataset_fingerprint(nullable, columns=["x"]) == expected


def test_large_integers_keep_every_digit() -> None:
    a = pd.DataFrame({"x": np.array([2**53 + 1], dtype=np.int64)})
    b = pd.DataFrame({"x": np.array([2**53], dtype=np.int64)})

    assert dataset_fingerprint(a, columns=["x"]) != dataset_fingerprint(b, columns=["x"])


def test_bad_arguments() -> None:
    table = _table()
    with pytest.raises(ValueError, match="unknown"):
        dataset_fingerprint(table, columns=["income", "nope"])
    with pytest.raises(ValueError, match="repeats"):
        dataset_fingerprint(table, columns=["income", "income"])
    with pytest.raises(ValueError, match="non-empty"):
        dataset_fingerprint(table, columns=[])
    with pytest.raises(TypeError, match="DataFrame"):
        dataset_fingerprint(table.to_dict(), columns=["income"])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must hold"):
        dataset_fingerprint(pd.DataFrame({"x": [object()]}), columns=["x"])
