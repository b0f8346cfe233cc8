"""Plain dataclasses that describe a risk model and how it is trained locally.

They are the structured-config schemas for ``task.model`` and ``task.train`` and are
validated on construction, so a bad value fails before any training starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class ModelKind(str, Enum):
    """Which risk model to build: tabular, or recurrent over lagged windows."""

    logistic = "logistic"
    mlp = "mlp"
    gru = "gru"
    lstm = "lstm"

    @property
    def recurrent(self) -> bool:
        """Whether the model reads each row as a ``(window, features)`` sequence."""
        return self in (ModelKind.gru, ModelKind.lstm)


class LossKind(str, Enum):
    """Which training loss each institution minimises (see ``fedrisk.models.loss``)."""

    bce = "bce"
    asymmetric_cost = "asymmetric_cost"
    focal = "focal"


class OptimizerKind(str, Enum):
    """Which local optimiser each institution uses."""

    sgd = "sgd"
    adam = "adam"


@dataclass
class ModelSpec:
    """Architecture of a tabular risk model.

    Parameters
    ----------
    kind : ModelKind (default: mlp)
        ``logistic`` (one linear layer), ``mlp``, or a recurrent ``gru`` / ``lstm``
        (:mod:`fedrisk.models.sequence`).
    hidden : list[int] (default: [64, 32])
        Widths of the MLP's hidden layers; ignored for ``logistic``. For ``gru`` and
        ``lstm`` the first is the recurrent state size and the rest the head's widths.
    dropout : float (default: 0.1)
        Dropout after each hidden layer, in [0, 1).
    window : int (default: 0)
        Recurrent kinds only: time steps per row; each row's inputs are lag-major, so
        they reshape to ``(window, n_inputs // window)``. 0 lets the task fill it in.
    attention : bool (default: False)
        Recurrent kinds only: pool the states over time with learned attention weights
        instead of reading the last state.
    """

    kind: ModelKind = field(default=ModelKind.mlp, metadata={"help": "logistic or mlp"})
    hidden: list[int] = field(
        default_factory=lambda: [64, 32], metadata={"help": "MLP hidden-layer widths"}
    )
    dropout: float = field(default=0.1, metadata={"help": "dropout rate in [0, 1)"})
    window: int = field(default=0, metadata={"help": "recurrent: time steps per row"})
    attention: bool = field(default=False, metadata={"help": "recurrent: attention pooling"})

    def __post_init__(self) -> None:
        self.kind = ModelKind(self.kind)
        if self.kind is not ModelKind.logistic and not self.hidden:
            raise ValueError(
                f"`model.hidden` must list at least one width for a {self.kind.value}; got []"
            )
        if self.window < 0 or (self.window == 1 and self.kind.recurrent):
            raise ValueError(f"`model.window` must be 0 or at least 2; got {self.window}")
        if any(int(w) < 1 for w in self.hidden):
            raise ValueError(f"`model.hidden` widths must be positive; got {list(self.hidden)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"`model.dropout` must be in [0, 1); got {self.dropout}")


@dataclass
class TrainSpec:
    """Local training at one institution, per federated round.

    Parameters
    ----------
    epochs : int (default: 1)
        Local epochs per round.
    batch_size : int (default: 64)
        Mini-batch size (expected batch size once DP-SGD's Poisson sampling is on).
    lr : float (default: 0.01)
        Learning rate.
    optimizer : OptimizerKind (default: adam)
        ``sgd`` or ``adam``.
    momentum : float (default: 0.0)
        SGD momentum; ignored by Adam.
    weight_decay : float (default: 0.0)
        L2 penalty.
    pos_weight : float | None (default: 1.0)
        Weight of the positive (default) class in the binary cross-entropy. ``None``
        weights classes as balanced from the institution's own labels
        (n_negative / n_positive); 1.0 is the unweighted loss. Used by ``bce`` and
        ``focal``.
    loss : LossKind (default: bce)
        ``bce`` (class-weighted cross-entropy), ``asymmetric_cost`` (a missed positive
        costs ``cost_ratio`` false alarms) or ``focal``.
    cost_ratio : float | None (default: None)
        ``asymmetric_cost``: cost of a missed default over that of a false alarm. ``None``
        takes the task's ``cost_ratio`` (the one the expected-cost metric uses).
    focal_gamma : float (default: 2.0)
        ``focal``: the focusing exponent γ >= 0 (0 is the weighted BCE).
    """

    epochs: int = field(default=1, metadata={"help": "local epochs per round"})
    batch_size: int = field(default=64, metadata={"help": "mini-batch size"})
    lr: float = field(default=0.01, metadata={"help": "learning rate"})
    optimizer: OptimizerKind = field(default=OptimizerKind.adam, metadata={"help": "sgd or adam"})
    momentum: float = field(default=0.0, metadata={"help": "SGD momentum"})
    weight_decay: float = field(default=0.0, metadata={"help": "L2 penalty"})
    pos_weight: float | None = field(
        default=1.0,
        metadata={"help": "positive-class weight in BCE; null = balanced from local labels"},
    )
    loss: LossKind = field(default=LossKind.bce, metadata={"help": "bce, asymmetric_cost or focal"})
    cost_ratio: float | None = field(
        default=None,
        metadata={"help": "asymmetric_cost: missed default / false alarm; null = task's"},
    )
    focal_gamma: float = field(default=2.0, metadata={"help": "focal: exponent gamma >= 0"})

    def __post_init__(self) -> None:
        self.optimizer = OptimizerKind(self.optimizer)
        if self.epochs < 1:
            raise ValueError(f"`train.epochs` must be at least 1; got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"`train.batch_size` must be at least 1; got {self.batch_size}")
        if not self.lr > 0:
            raise ValueError(f"`train.lr` must be positive; got {self.lr}")
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"`train.momentum` must be in [0, 1); got {self.momentum}")
        if self.weight_decay < 0:
            raise ValueError(f"`train.weight_decay` must be >= 0; got {self.weight_decay}")
        if self.pos_weight is not None and not self.pos_weight > 0:
            raise ValueError(f"`train.pos_weight` must be positive or null; got {self.pos_weight}")
        self.loss = LossKind(self.loss)
        if self.cost_ratio is not None and not 0 < self.cost_ratio < float("inf"):
            raise ValueError(
                "`train.cost_ratio` must be a positive finite number or null; "
                f"got {self.cost_ratio}"
            )
        if not 0 <= self.focal_gamma < float("inf"):
            raise ValueError(f"`train.focal_gamma` must be finite and >= 0; got {self.focal_gamma}")
