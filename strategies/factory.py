"""Build the configured ``flwr.serverapp.strategy`` aggregation rule."""

from __future__ import annotations

from typing import TypedDict

from flwr.serverapp.strategy import FedAdam, FedAvg, FedProx, Strategy

from fedrisk.conf.strategy import StrategyConfig, StrategyName

#: Key of the example count in every training and evaluation reply's MetricRecord.
WEIGHT_KEY = "num-examples"


def build_strategy(config: StrategyConfig, *, n_institutions: int) -> Strategy:
    """Create the Flower strategy a run aggregates with.

    Parameters
    ----------
    config : StrategyConfig
        The validated ``strategy`` config group.
    n_institutions : int
        Institutions in the consortium; the strategy never waits for more.

    Returns
    -------
    Strategy
        A FedAvg, FedProx or FedAdam instance weighting by ``num-examples``.

    Raises
    ------
    ValueError
        If ``min_train_nodes`` exceeds the number of institutions.
    """
    if config.min_train_nodes > n_institutions:
        raise ValueError(
            f"`strategy.min_train_nodes` must be at most the {n_institutions} institutions; "
            f"got {config.min_train_nodes}"
        )
    common = _Sampling(
        fraction_train=config.fraction_train,
        fraction_evaluate=config.fraction_evaluate,
        min_train_nodes=config.min_train_nodes,
        min_evaluate_nodes=1 if config.fraction_evaluate > 0 else 0,
        min_available_nodes=config.min_train_nodes,
        weighted_by_key=WEIGHT_KEY,
    )
    if config.name is StrategyName.fedprox:
        return FedProx(**common, proximal_mu=config.proximal_mu)
    if config.name is StrategyName.fedadam:
        return FedAdam(
            **common,
            eta=config.eta,
            eta_l=config.eta_l,
            beta_1=config.beta_1,
            beta_2=config.beta_2,
            tau=config.tau,
        )
    return FedAvg(**common)


class _Sampling(TypedDict):
    fraction_train: float
    fraction_evaluate: float
    min_train_nodes: int
    min_evaluate_nodes: int
    min_available_nodes: int
    weighted_by_key: str
