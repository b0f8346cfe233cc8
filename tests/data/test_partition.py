from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fedrisk.data import by_column, dirichlet_label_skew, iid
from fedrisk.data.partition import MAX_DIRICHLET_TRIES


def _table(n_rows: int = 1_000, *, seed: int = 0, default_rate: float = 0.2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "income": rng.lognormal(11.0, 0.4, n_rows),
            "region": rng.choice(["north", "south", "east"], n_rows),
            "default": (rng.random(n_rows) < default_rate).astype(np.int64),
        },
        index=pd.RangeIndex(100, 100 + n_rows),  # labels differ from positions on purpose
    )


def _assert_disjoint_cover(table: pd.DataFrame, parts: list[pd.DataFrame]) -> None:
    labels = np.concatenate([part.index.to_numpy() for part in parts])
    assert len(labels) == len(table)
    assert len(np.unique(labels)) == len(labels)
    assert set(labels) == set(table.index)
    for part in parts:
        pd.testing.assert_frame_equal(part, table.loc[part.index])


def _label_rate_spread(parts: list[pd.DataFrame]) -> float:
    return float(np.std([part["default"].mean() for part in parts if len(part)]))


def test_iid_is_a_disjoint_cover_of_nearly_equal_parts() -> None:
    table = _table(1_003)

    parts = iid(table, 4, seed=1)

    _assert_disjoint_cover(table, parts)
    assert sorted(len(part) for part in parts) == [250, 251, 251, 251]


def test_iid_keeps_source_order_within_a_part() -> None:
    table = _table(200)

    parts = iid(table, 3, seed=1)

    assert all(part.index.is_monotonic_increasing for part in parts)


def test_iid_is_seeded() -> None:
    table = _table(300)

    first, again, other = iid(table, 3, seed=5), iid(table, 3, seed=5), iid(table, 3, seed=6)

    assert all(a.index.equals(b.index) for a, b in zip(first, again, strict=True))
    assert not all(a.index.equals(b.index) for a, b in zip(first, other, strict=True))


def test_iid_single_part_is_the_whole_table() -> None:
    table = _table(50)

    (only,) = iid(table, 1, seed=0)

    pd.testing.assert_frame_equal(only, table)


@pytest.mark.parametrize("n_parts", [0, -1, 11])
def test_iid_rejects_part_counts_out_of_range(n_parts: int) -> None:
    with pytest.raises(
        ValueError, match=f"`n_parts` must be between 1 and the 10 rows; got {n_parts}"
    ):
        iid(_table(10), n_parts, seed=0)


def test_dirichlet_is_a_disjoint_cover() -> None:
    table = _table(2_000)

    parts = dirichlet_label_skew(table, 5, label="default", alpha=0.5, seed=3)

    assert len(parts) == 5
    _assert_disjoint_cover(table, parts)


def test_small_alpha_skews_label_rates_more_than_large_alpha() -> None:
    table = _table(5_000, default_rate=0.3)

    skewed = [
        _label_rate_spread(dirichlet_label_skew(table, 8, label="default", alpha=0.1, seed=s))
        for s in range(5)
    ]
    mild = [
        _label_rate_spread(dirichlet_label_skew(table, 8, label="default", alpha=100.0, seed=s))
        for s in range(5)
    ]

    assert min(skewed) > max(mild)
    assert max(mild) < 0.05
    assert np.mean(skewed) > 0.15


def test_dirichlet_is_seeded() -> None:
    table = _table(1_000)

    first = dirichlet_label_skew(table, 4, label="default", alpha=0.3, seed=9)
    again = dirichlet_label_skew(table, 4, label="default", alpha=0.3, seed=9)

    assert all(a.index.equals(b.index) for a, b in zip(first, again, strict=True))


def test_dirichlet_resamples_until_every_part_has_min_rows() -> None:
    table = _table(2_000)

    # Most single draws (about 5 in 6) leave some part below 60 rows.
    parts = dirichlet_label_skew(table, 10, label="default", alpha=1.0, seed=0, min_rows=60)

    assert min(len(part) for part in parts) >= 60
    _assert_disjoint_cover(table, parts)


def test_dirichlet_gives_up_with_a_clear_error() -> None:
    table = _table(100)

    with pytest.raises(ValueError, match=f"after {MAX_DIRICHLET_TRIES} draws; raise alpha"):
        dirichlet_label_skew(table, 10, label="default", alpha=0.01, seed=0, min_rows=10)


def test_dirichlet_works_with_any_label_values() -> None:
    table = _table(600).assign(default=lambda df: df["region"])

    parts = dirichlet_label_skew(table, 3, label="default", alpha=1.0, seed=2)

    _assert_disjoint_cover(table, parts)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"alpha": 0.0}, "`alpha` must be positive; got 0.0"),
        ({"alpha": -1.0}, "`alpha` must be positive; got -1.0"),
        ({"label": "target"}, "`label` must be a column of the table; got 'target'"),
        ({"n_parts": 0}, "`n_parts` must be between 1 and the 100 rows; got 0"),
        ({"min_rows": 30}, "`min_rows` must be between 0 and len\\(df\\) / n_parts = 25; got 30"),
    ],
)
def test_dirichlet_rejects_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"n_parts": 4, "label": "default", "alpha": 1.0, "seed": 0}
    arguments.update(kwargs)

    with pytest.raises(ValueError, match=message):
        dirichlet_label_skew(_table(100), **arguments)  # type: ignore[arg-type]


def test_by_column_groups_rows_by_value_in_sorted_order() -> None:
    table = _table(500)

    parts = by_column(table, "region")

    assert list(parts) == ["east", "north", "south"]
    for value, part in parts.items():
        assert (part["region"] == value).all()
        assert len(part) == (table["region"] == value).sum()
    _assert_disjoint_cover(table, list(parts.values()))


def test_by_column_orders_numbers_numerically_and_names_them_as_text() -> None:
    table = pd.DataFrame({"branch": [10, 9, 10, 100], "default": [0, 1, 0, 1]})

    parts = by_column(table, "branch")

    assert list(parts) == ["9", "10", "100"]
    assert parts["10"].index.tolist() == [0, 2]


def test_by_column_rejects_unknown_column() -> None:
    with pytest.raises(ValueError, match="`column` must be a column of the table; got 'product'"):
        by_column(_table(10), "product")


def test_by_column_rejects_missing_values() -> None:
    table = pd.DataFrame({"region": ["north", None, "south"], "default": [0, 1, 0]})

    with pytest.raises(ValueError, match="column 'region' must have no missing values"):
        by_column(table, "region")
