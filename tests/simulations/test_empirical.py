"""Canary insertion for the empirical privacy audit (no simulation)."""

import json

import numpy as np
import pandas as pd
import pytest

from fedrisk.client.node_data import load_node_data
from fedrisk.conf.root import ConfigError
from fedrisk.data.encoding import TableEncoder
from fedrisk.data.loading import load_table
from fedrisk.simulations.consortium import build_consortium, resolve_schema
from fedrisk.simulations.empirical import CanaryInserter, draw_canaries
from fedrisk.simulations.entry import check_overrides


@pytest.fixture
def built(tmp_path):
    settings = resolve_schema(check_overrides(["consortium=banks_3", "seed=5"]))
    return settings, build_consortium(settings, tmp_path / "run" / "data")


def test_canaries_pass_the_schema_validation_and_have_random_labels(built, tmp_path):
    _settings, consortium = built
    canaries = draw_canaries(consortium.schema, 2000, np.random.default_rng(0))
    canaries.to_parquet(tmp_path / "canaries.parquet", index=False)

    table = load_table(tmp_path / "canaries.parquet", consortium.schema, min_rows=1)

    assert len(table) == 2000
    assert 0.45 < table["default"].mean() < 0.55


def test_included_canaries_land_in_the_training_split_and_nowhere_else(built):
    settings, consortium = built
    inserter = CanaryInserter(m=400)

    inserter(settings, consortium)

    out = consortium.data_dir.parent / "empirical"
    meta = json.loads((out / "canaries.json").read_text())
    canaries = pd.read_parquet(out / "canaries.parquet")
    assert inserter.run_dir == consortium.data_dir.parent
    assert meta["bank"] == "bank_a" and meta["m"] == 400
    node = load_node_data(
        consortium.data_dir / "bank_a" / "train.parquet",
        consortium.schema,
        institution="bank_a",
        min_rows=64,
        seed=settings.seed,
    )
    encoded = TableEncoder(consortium.schema).encode(canaries)
    train = {row.tobytes() for row in node.x_train}
    val = {row.tobytes() for row in node.x_val}
    in_train = np.array([row.tobytes() in train for row in encoded])
    in_val = np.array([row.tobytes() in val for row in encoded])
    assert (in_train == canaries["included"].to_numpy()).all()
    assert not in_val.any()
    assert node.n_train + len(node.y_val) == 3000 + meta["included"]


def test_same_seed_draws_the_same_canaries(built, tmp_path):
    settings, consortium = built
    CanaryInserter(m=50)(settings, consortium)
    first = pd.read_parquet(consortium.data_dir.parent / "empirical" / "canaries.parquet")
    again = resolve_schema(check_overrides(["consortium=banks_3", "seed=5"]))
    other = build_consortium(again, tmp_path / "other" / "data")

    CanaryInserter(m=50)(again, other)

    pd.testing.assert_frame_equal(
        first, pd.read_parquet(tmp_path / "other" / "empirical" / "canaries.parquet")
    )


def test_unknown_bank_is_a_config_error(built):
    settings, consortium = built

    with pytest.raises(ConfigError, match="`--bank` must be one of"):
        CanaryInserter(m=10, bank="bank_z")(settings, consortium)


def test_too_few_canaries_raise():
    with pytest.raises(ValueError, match="`m` must be at least 2; got 1"):
        CanaryInserter(m=1)
