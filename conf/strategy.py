"""Schema of the ``strategy`` config group: the aggregation rule and node sampling."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class StrategyName(str, Enum):
    """Aggregation rules from ``flwr.serverapp.strategy``."""

    fedavg = "fedavg"
    fedprox = "fedprox"
    fedadam = "fedadam"


@dataclass
class StrategyConfig:
    """Schema of ``strategy/*.yaml``.

    Parameters
    ----------
    name : StrategyName (default: fedavg)
        ``fedavg``, ``fedprox`` or ``fedadam``.
    fraction_train : float (default: 1.0)
        Share of the eligible institutions asked to train each round, in (0, 1].
    fraction_evaluate : float (default: 1.0)
        Share asked for federated evaluation each round, in [0, 1].
    min_train_nodes : int (default: 2)
        Fewest institutions a round trains with; the run ends cleanly below it.
    proximal_mu : float (default: 0.0)
        FedProx proximal weight (fedprox only).
    eta : float (default: 0.01)
        FedAdam server learning rate.
    eta_l : float (default: 0.01)
        FedAdam client learning rate (reported to Flower; clients use ``task.train.lr``).
    beta_1 : float (default: 0.9)
        FedAdam first-moment decay.
    beta_2 : float (default: 0.99)
        FedAdam second-moment decay.
    tau : float (default: 0.001)
        FedAdam adaptivity (epsilon).
    """

    name: StrategyName = field(default=StrategyName.fedavg, metadata={"help": "aggregation rule"})
    fraction_train: float = field(default=1.0, metadata={"help": "share trained per round"})
    fraction_evaluate: float = field(default=1.0, metadata={"help": "share evaluated per round"})
    min_train_nodes: int = field(default=2, metadata={"help": "fewest trainers per round"})
    proximal_mu: float = field(default=0.0, metadata={"help": "FedProx proximal weight"})
    eta: float = field(default=0.01, metadata={"help": "FedAdam server learning rate"})
    eta_l: float = field(default=0.01, metadata={"help": "FedAdam client learning rate"})
    beta_1: float = field(default=0.9, metadata={"help": "FedAdam beta_1"})
    beta_2: float = field(default=0.99, metadata={"help": "FedAdam beta_2"})
    tau: float = field(default=0.001, metadata={"help": "FedAdam tau"})

    def __post_init__(self) -> None:
        self.name = StrategyName(self.name)
        if not 0.0 < self.fraction_train <= 1.0:
            raise ValueError(
                f"`strategy.fraction_train` must be in (0, 1]; got {self.fraction_train}"
            )
        if not 0.0 <= self.fraction_evaluate <= 1.0:
            raise ValueError(
                f"`strategy.fraction_evaluate` must be in [0, 1]; got {self.fraction_evaluate}"
            )
        if self.min_train_nodes < 1:
            raise ValueError(
                f"`strategy.min_train_nodes` must be at least 1; got {self.min_train_nodes}"
            )
        if self.proximal_mu < 0:
            raise ValueError(f"`strategy.proximal_mu` must be >= 0; got {self.proximal_mu}")
        if self.proximal_mu > 0 and self.name is not StrategyName.fedprox:
            raise ValueError(
                "`strategy.proximal_mu` applies to fedprox only; got "
                f"{self.proximal_mu} with strategy {self.name.value}"
            )
        for key in ("eta", "eta_l", "tau"):
            if not getattr(self, key) > 0:
                raise ValueError(f"`strategy.{key}` must be positive; got {getattr(self, key)}")
        for key in ("beta_1", "beta_2"):
            if not 0.0 <= getattr(self, key) < 1.0:
                raise ValueError(f"`strategy.{key}` must be in [0, 1); got {getattr(self, key)}")
