"""Institution-level DP (``privacy=central``) with Flower's own wrappers and accountant.

DP-FedAvg (McMahan et al., 2018): every institution's model update is clipped to an
L2 bound and Gaussian noise is added to the aggregate, using Flower 1.41's
``DifferentialPrivacyServerSideFixedClipping`` / ``…ClientSideFixedClipping`` and its
RDP accountant. The guarantee covers adding or removing a whole institution; it is
reported separately from record-level ε and labelled as institution-level.

Flower's accounting requires every sampled institution in every round (no sampling
amplification) and uniform FedAvg weights, so the institutions report weight 1.
"""

from __future__ import annotations

from flwr.serverapp.strategy import (
    DifferentialPrivacyClientSideFixedClipping,
    DifferentialPrivacyServerSideFixedClipping,
    FedAvg,
    Strategy,
)
from flwr.supercore.privacy_accounting import (
    NeighboringRelation,
    PrivacyConfig,
    SamplingMethod,
)
from flwr.supercore.privacy_accounting.rdp_accountant import RdpAccountant

from fedrisk.conf.privacy import ClippingSide
from fedrisk.conf.privacy import PrivacyConfig as FedriskPrivacy
from fedrisk.conf.strategy import StrategyConfig

SCOPE = "institution-level (DP-FedAvg; Flower RDP accountant, no sampling amplification)"


def wrap_central_dp(
    strategy: Strategy,
    privacy: FedriskPrivacy,
    strategy_config: StrategyConfig,
    *,
    n_institutions: int,
) -> Strategy:
    """Wrap ``strategy`` in Flower's fixed-clipping DP with an accountant.

    Raises
    ------
    ValueError
        If the strategy or sampling is not one Flower's accountant supports.
    """
    if strategy_config.fraction_train != 1.0:
        raise ValueError(
            "`strategy.fraction_train` must be 1.0 with privacy=central (Flower's accountant "
            f"assumes no sampling amplification); got {strategy_config.fraction_train}"
        )
    if (
        not isinstance(strategy, FedAvg)
        or type(strategy).aggregate_train is not FedAvg.aggregate_train
    ):
        raise ValueError(
            "privacy=central needs a strategy that aggregates like FedAvg (fedavg or fedprox); "
            f"got {strategy_config.name.value}"
        )
    accountant = RdpAccountant(
        PrivacyConfig(
            target_delta=privacy.delta,
            population_size=n_institutions,
            neighboring_relation=NeighboringRelation.ADD_OR_REMOVE_ONE,
            sampling_method=SamplingMethod.NO_AMPLIFICATION,
            max_epsilon=privacy.epsilon_budget,
        )
    )
    wrapper = (
        DifferentialPrivacyClientSideFixedClipping
        if privacy.central_clipping_side is ClippingSide.client
        else DifferentialPrivacyServerSideFixedClipping
    )
    return wrapper(
        strategy,
        noise_multiplier=privacy.central_noise_multiplier,
        clipping_norm=privacy.central_clipping_norm,
        num_sampled_clients=n_institutions,
        accountant=accountant,
    )
