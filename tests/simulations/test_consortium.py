import numpy as np
import pandas as pd
import pytest

from fedrisk.simulations.consortium import build_consortium, institution_profiles, resolve_schema
from fedrisk.simulations.entry import check_overrides


@pytest.mark.parametrize("consortium", ["banks_3", "banks_5", "banks_20_skewed"])
@pytest.mark.parametrize("seed", [42, 7])
def test_shipped_consortia_keep_default_rates_between_2_and_20_percent(tmp_path, consortium, seed):
    settings = check_overrides([f"consortium={consortium}", f"seed={seed}"])

    built = build_consortium(settings, tmp_path)

    rates = {
        name: pd.read_parquet(built.data_dir / name / "train.parquet")["default"].mean()
        for name in built.institutions
    }
    # Small banks have sampling noise around their true rate; allow 1 point for it.
    assert all(0.01 <= r <= 0.21 for r in rates.values()), rates
    assert 0.02 <= np.mean(list(rates.values())) <= 0.20


def test_build_writes_one_validated_file_per_institution(tmp_path):
    settings = resolve_schema(check_overrides(["consortium=banks_3"]))

    built = build_consortium(settings, tmp_path)

    assert built.institutions == ["bank_a", "bank_b", "bank_c"]
    sizes = [len(pd.read_parquet(tmp_path / n / "train.parquet")) for n in built.institutions]
    assert sizes == [3000, 2000, 1000]
    test = pd.read_parquet(built.test_path)
    assert len(test) == 10000
    assert built.oracle_scores is not None and built.oracle_scores.shape == (10000,)
    assert list(test.columns) == built.schema.columns


def test_generated_institutions_are_seeded_and_sized_by_power_law():
    config = check_overrides(["consortium=banks_20_skewed"]).consortium

    first = institution_profiles(config, seed=3)
    second = institution_profiles(config, seed=3)
    other = institution_profiles(config, seed=4)

    assert first == second
    assert first != other
    assert len(first) == 20
    assert sum(p.rows for p in first) == 40000
    assert first[0].rows > first[-1].rows >= 300
    assert [p.name for p in first][:2] == ["bank_01", "bank_02"]
