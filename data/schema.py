"""Table schemas: which columns an institution's table holds and how to read them.

The dataclasses double as Hydra structured-config schemas (``task.schema``), so they use
only types OmegaConf understands and validate themselves on construction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from omegaconf import MISSING


class FeatureKind(str, Enum):
    """How a feature column is read and encoded."""

    numeric = "numeric"
    categorical = "categorical"


@dataclass
class FeatureSpec:
    """One model input column.

    Parameters
    ----------
    name : str
        Column name in the institution's table.
    kind : FeatureKind (default: numeric)
        ``numeric`` or ``categorical``.
    low, high : float | None (default: None)
        Numeric only, required: the fixed range. Values are clipped to ``[low, high]``
        before scaling; they are the only statistics preprocessing uses, so no bank's
        data is ever pooled to fit a scaler.
    log : bool (default: False)
        Numeric only: apply ``log1p`` before scaling (for heavy-tailed amounts);
        needs ``low >= 0``.
    integer : bool (default: False)
        Numeric only: the column must hold whole numbers.
    levels : list[str] (default: [])
        Categorical only, required: the allowed values, at least two and distinct, in
        the order of the one-hot columns.

    Raises
    ------
    ValueError
        If the name is empty, a numeric feature lacks a valid range, a categorical
        feature has fewer than two distinct levels, or an option does not apply to the
        feature's kind.
    """

    name: str = field(default=MISSING, metadata={"help": "column name"})
    kind: FeatureKind = field(
        default=FeatureKind.numeric, metadata={"help": "numeric or categorical"}
    )
    low: float | None = field(
        default=None, metadata={"help": "numeric: lower end of the clipping range"}
    )
    high: float | None = field(
        default=None, metadata={"help": "numeric: upper end of the clipping range"}
    )
    log: bool = field(default=False, metadata={"help": "numeric: log1p before scaling"})
    integer: bool = field(default=False, metadata={"help": "numeric: whole numbers only"})
    levels: list[str] = field(
        default_factory=list, metadata={"help": "categorical: allowed values, in order"}
    )

    def __post_init__(self) -> None:
        self.kind = FeatureKind(self.kind)
        if not isinstance(self.name, str) or not self.name or self.name == MISSING:
            raise ValueError(f"feature `name` must be a non-empty string; got {self.name!r}")
        if self.kind is FeatureKind.numeric:
            self._check_numeric()
        else:
            self._check_categorical()

    def _check_numeric(self) -> None:
        where = f"numeric feature {self.name!r}"
        if self.levels:
            raise ValueError(f"{where}: `levels` must be empty; got {list(self.levels)}")
        if self.low is None or self.high is None:
            raise ValueError(
                f"{where}: `low` and `high` must both be set; got low={self.low}, high={self.high}"
            )
        self.low, self.high = float(self.low), float(self.high)
        if not self.low < self.high:
            raise ValueError(
                f"{where}: `low` must be less than `high`; got low={self.low}, high={self.high}"
            )
        if self.log and self.low < 0:
            raise ValueError(f"{where}: `low` must be >= 0 when `log` is set; got {self.low}")

    def _check_categorical(self) -> None:
        where = f"categorical feature {self.name!r}"
        if self.low is not None or self.high is not None or self.log or self.integer:
            raise ValueError(
                f"{where}: `low`, `high`, `log` and `integer` must be unset; got "
                f"low={self.low}, high={self.high}, log={self.log}, integer={self.integer}"
            )
        self.levels = [str(level) for level in self.levels]
        if len(set(self.levels)) < 2:
            raise ValueError(
                f"{where}: `levels` must hold at least 2 distinct values; got {self.levels}"
            )
        if len(set(self.levels)) != len(self.levels):
            raise ValueError(f"{where}: `levels` must be distinct; got {self.levels}")


@dataclass
class TableSchema:
    """The columns of one institution's table.

    Parameters
    ----------
    features : list[FeatureSpec]
        Model inputs, in encoding order; at least one, with unique names.
    label : str (default: "default")
        Binary target column (1 = default).
    protected : list[str] | None (default: None)
        Protected-attribute columns kept for fairness reports (e.g. ``[black, hispan,
        male]``); each is a model input only if it is also listed in ``features``. A
        single name is accepted for one column; ``None`` means none.
    time : str | None (default: None)
        Integer timestamp column of time-ordered tasks (``market_risk``): never a model
        input; a node keeps its latest rows for validation.

    Raises
    ------
    ValueError
        If there are no features, two features share a name, or the label (or the
        protected attribute) collides with another column.
    """

    features: list[FeatureSpec] = field(
        default_factory=list, metadata={"help": "model input columns, in encoding order"}
    )
    label: str = field(default="default", metadata={"help": "binary target column"})
    protected: list[str] | None = field(
        default=None, metadata={"help": "protected-attribute columns for fairness reports"}
    )
    time: str | None = field(
        default=None, metadata={"help": "integer timestamp column (time-ordered tasks)"}
    )

    def __post_init__(self) -> None:
        self.features = [
            spec if isinstance(spec, FeatureSpec) else FeatureSpec(**spec) for spec in self.features
        ]
        if not self.features:
            raise ValueError("`features` must list at least one feature; got []")
        names = [spec.name for spec in self.features]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"feature names must be unique; got duplicates {duplicates}")
        if not self.label:
            raise ValueError(f"`label` must be a non-empty column name; got {self.label!r}")
        if self.label in names:
            raise ValueError(
                f"`label` must not also be a feature; got feature {self.label!r} as the label"
            )
        if self.protected is None:
            self.protected = []
        elif isinstance(self.protected, str):
            self.protected = [self.protected]
        self.protected = [str(name) for name in self.protected]
        for name in self.protected:
            if not name:
                raise ValueError(f"`protected` columns must be non-empty names; got {name!r}")
            if name == self.label:
                raise ValueError(f"`protected` must differ from the label; got {name!r}")
        if len(set(self.protected)) != len(self.protected):
            raise ValueError(f"`protected` columns must be distinct; got {self.protected}")
        if self.time is not None and self.time in {*names, self.label, *self.protected}:
            raise ValueError(
                f"`time` must differ from the features, label and protected columns; "
                f"got {self.time!r}"
            )

    @property
    def feature_names(self) -> list[str]:
        """Names of the feature columns, in declared order."""
        return [spec.name for spec in self.features]

    @property
    def protected_columns(self) -> list[str]:
        """The protected-attribute columns, in declared order (empty if none)."""
        return list(self.protected or [])

    @property
    def columns(self) -> list[str]:
        """All columns of a valid table: features, then label, then extra protected ones."""
        names = self.feature_names
        extra = [name for name in self.protected_columns if name not in names]
        stamp = [self.time] if self.time else []
        return [*names, self.label, *extra, *stamp]
