"""Build a simulated consortium's data: one file per institution plus a held-out set.

Every simulated node then loads its own file through the same validated loader a
real node uses; nothing here is shared with the ClientApps in memory.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from fedrisk.conf.consortium import ConsortiumConfig, InstitutionConfig
from fedrisk.conf.root import FedriskConfig
from fedrisk.conf.task import DataSource, PartitionKind, TableSource
from fedrisk.data.fraud import fraud_schema, generate_fraud
from fedrisk.data.loading import load_table
from fedrisk.data.market import LABEL as MARKET_LABEL
from fedrisk.data.market import generate_market, market_schema
from fedrisk.data.schema import TableSchema
from fedrisk.data.synthetic import (
    BankProfile,
    credit_schema,
    generate_credit_consortium,
    power_law_sizes,
)
from fedrisk.models.backtest import kupiec_pof

TRAIN_FILE = "train.parquet"
TEST_FILE = "test.parquet"
#: market_risk: Kupiec's test of every bank's VaR over the held-out window.
VAR_BACKTEST_FILE = "var_backtest.json"


@dataclass(frozen=True)
class BuiltConsortium:
    """Where a simulated consortium's data was written.

    Attributes
    ----------
    institutions : list[str]
        Institution ids, in partition-id order.
    data_dir : Path
        ``data_dir/<institution>/train.parquet`` holds each institution's rows.
    test_path : Path
        The held-out set.
    schema : TableSchema
        Columns of every table.
    oracle_scores : np.ndarray | None
        True default probabilities of the held-out rows, when the generator knows them.
    """

    institutions: list[str]
    data_dir: Path
    test_path: Path
    schema: TableSchema
    oracle_scores: np.ndarray | None


def resolve_schema(settings: FedriskConfig) -> FedriskConfig:
    """Return ``settings`` with ``task.schema`` filled in for synthetic tasks."""
    if settings.task.schema is not None:
        return settings
    if settings.task.source is DataSource.synthetic_credit:
        return replace(settings, task=replace(settings.task, schema=credit_schema()))
    if settings.task.source is DataSource.synthetic_fraud:
        return replace(settings, task=replace(settings.task, schema=fraud_schema()))
    if settings.task.source is DataSource.synthetic_market and settings.task.market is not None:
        schema = market_schema(settings.task.market.window)
        return replace(settings, task=replace(settings.task, schema=schema))
    raise ValueError("`task.schema` must be set for source table; got None")


def institution_profiles(config: ConsortiumConfig, *, seed: int) -> list[InstitutionConfig]:
    """List the consortium's institutions, generating them from knobs if asked.

    Generated institutions are named ``bank_01`` … and drawn from ``seed``.
    """
    if config.generate is None:
        return list(config.institutions)
    knobs = config.generate
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xC0505]))
    sizes = power_law_sizes(
        knobs.count,
        total_rows=knobs.total_rows,
        exponent=knobs.size_exponent,
        min_rows=knobs.min_rows,
    )
    low, high = knobs.subprime_share_range
    width = len(str(knobs.count))
    out = []
    for i, rows in enumerate(sizes):
        sub = float(rng.uniform(low, high))
        out.append(
            InstitutionConfig(
                name=f"bank_{i + 1:0{max(2, width)}d}",
                rows=int(rows),
                segment_mix=[(1 - sub) * 5 / 8, (1 - sub) * 3 / 8, sub],
                label_shift=float(rng.normal(0.0, knobs.label_shift_sd)),
                covariate_shift=float(rng.normal(0.0, knobs.covariate_shift_sd)),
            )
        )
    return out


def build_consortium(settings: FedriskConfig, data_dir: Path) -> BuiltConsortium:
    """Write every institution's table and the held-out set under ``data_dir``.

    Raises
    ------
    fedrisk.data.errors.DataValidationError
        If a real table (``source: table``) fails validation.
    """
    settings = resolve_schema(settings)
    schema = settings.task.schema
    if schema is None:  # resolve_schema always fills it
        raise ValueError("`task.schema` must be resolved; got None")
    if settings.task.source is DataSource.synthetic_credit:
        tables, test, oracle = _synthetic(settings)
    elif settings.task.source is DataSource.synthetic_fraud:
        tables, test, oracle = _synthetic_fraud(settings)
    elif settings.task.source is DataSource.synthetic_market:
        tables, test, oracle, backtest = _synthetic_market(settings)
        data_dir.mkdir(parents=True, exist_ok=True)
        (data_dir / VAR_BACKTEST_FILE).write_text(json.dumps(backtest, indent=2) + "\n")
    else:
        if settings.task.table is None:
            raise ValueError("`task.table` must be set for source table; got None")
        tables, test = _from_table(
            settings.task.table, schema, seed=settings.seed, data_dir=data_dir
        )
        oracle = None
    data_dir.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        (data_dir / name).mkdir(exist_ok=True)
        table.to_parquet(data_dir / name / TRAIN_FILE, index=False)
    test_path = data_dir / TEST_FILE
    test.to_parquet(test_path, index=False)
    return BuiltConsortium(
        institutions=list(tables),
        data_dir=data_dir,
        test_path=test_path,
        schema=schema,
        oracle_scores=oracle,
    )


def _synthetic(
    settings: FedriskConfig,
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame, np.ndarray]:
    profiles = [
        BankProfile(
            name=inst.name,
            n_rows=inst.rows,
            segment_mix=(inst.segment_mix[0], inst.segment_mix[1], inst.segment_mix[2]),
            label_shift=inst.label_shift,
            covariate_shift=inst.covariate_shift,
        )
        for inst in institution_profiles(settings.consortium, seed=settings.seed)
    ]
    built = generate_credit_consortium(
        profiles, test_rows=settings.consortium.test_rows, seed=settings.seed
    )
    return dict(built.banks), built.test, np.asarray(built.test_true_pd, dtype=np.float64)


def _scaled_sizes(settings: FedriskConfig, scale: float) -> list[tuple[str, int]]:
    """Institution names and their rows times ``scale`` (at least 1)."""
    return [
        (inst.name, max(1, round(inst.rows * scale)))
        for inst in institution_profiles(settings.consortium, seed=settings.seed)
    ]


def _synthetic_fraud(
    settings: FedriskConfig,
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame, np.ndarray]:
    knobs = settings.task.fraud
    if knobs is None:  # TaskConfig fills it for synthetic_fraud
        raise ValueError("`task.fraud` must be set for source synthetic_fraud; got None")
    built = generate_fraud(
        _scaled_sizes(settings, knobs.rows_scale),
        test_rows=knobs.test_rows,
        fraud_rate_range=(knobs.fraud_rate_low, knobs.fraud_rate_high),
        seed=settings.seed,
    )
    return built.banks, built.test, built.test_oracle


def _synthetic_market(
    settings: FedriskConfig,
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame, np.ndarray, dict[str, object]]:
    """Bank histories end at one forecast origin; the held-out set is what follows it.

    Also returns Kupiec's proportion-of-failures test of each bank's historical VaR over
    the held-out periods: the exceptions the early-warning model is asked to foresee.
    """
    knobs = settings.task.market
    if knobs is None:  # TaskConfig fills it for synthetic_market
        raise ValueError("`task.market` must be set for source synthetic_market; got None")
    built = generate_market(
        _scaled_sizes(settings, knobs.rows_scale),
        window=knobs.window,
        test_periods=knobs.test_periods,
        coverage=knobs.coverage,
        var_window=knobs.var_window,
        seed=settings.seed,
    )
    labels = built.test[MARKET_LABEL].to_numpy()
    banks = {}
    for name in built.banks:
        mine = labels[built.test_bank == name]
        result = kupiec_pof(int(mine.sum()), int(mine.size), coverage=knobs.coverage)
        banks[name] = {"exceptions": int(mine.sum()), "periods": int(mine.size), **asdict(result)}
    backtest: dict[str, object] = {
        "test": "Kupiec POF of each bank's historical-simulation VaR, held-out periods",
        "coverage": knobs.coverage,
        "significance": 0.05,
        "banks": banks,
    }
    return built.banks, built.test, built.test_oracle, backtest


def table_institutions(built: BuiltConsortium) -> list[InstitutionConfig]:
    """Return the institutions a real table was split into, with their row counts.

    Their names come from the partition (``bank_01`` …), not from ``consortium``; keys
    and the manifest (DP-SGD, secure aggregation) are provisioned for these.
    """
    import pyarrow.parquet as pq

    return [
        InstitutionConfig(
            name=name, rows=pq.read_metadata(built.data_dir / name / TRAIN_FILE).num_rows
        )
        for name in built.institutions
    ]


def _from_table(
    source: TableSource, schema: TableSchema, *, seed: int, data_dir: Path
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    from fedrisk.data import partition
    from fedrisk.data.package_table import write_package_table

    path = Path(source.path)
    if source.package is not None:  # a table shipped in a package: write it out first
        path = path if path.is_absolute() else data_dir / path
        write_package_table(source.package, schema, path)
    table = load_table(path, schema, min_rows=10)
    order = np.random.default_rng(seed).permutation(len(table))
    n_test = max(1, round(len(table) * source.test_fraction))
    test = table.iloc[order[:n_test]].reset_index(drop=True)
    rest = table.iloc[order[n_test:]].reset_index(drop=True)
    if source.partition is PartitionKind.column:
        parts = partition.by_column(rest, str(source.column))
        return {f"{source.column}_{key}": part for key, part in parts.items()}, test
    if source.partition is PartitionKind.dirichlet:
        split = partition.dirichlet_label_skew(
            rest, source.institutions, label=schema.label, alpha=source.alpha, seed=seed
        )
    else:
        split = partition.iid(rest, source.institutions, seed=seed)
    width = max(2, len(str(len(split))))
    return {f"bank_{i + 1:0{width}d}": part for i, part in enumerate(split)}, test
