"""Institution-level DP (``privacy=central``) with Flower's own wrappers and accountant.

DP-FedAvg (McMahan et al., 2018): every institution's model update is clipped to an
L2 bound and Gaussian noise is added to the aggregate, using Flower 1.41's
``DifferentialPrivacyServerSideFixedClipping`` / ``…ClientSideFixedClipping`` and its
RDP accountant. The guarantee covers adding or removing a whole institution; it is
reported separately from record-level ε and labelled as institution-level.

Flower's accounting requires every sampled institution in every round (no sampling
amplification) and uniform FedAvg weights, so the institutions report weight 1.

Flower draws the aggregate's noise from the global ``np.random``, which nothing seeds
and anything in the process can advance. fedrisk's subclasses of the two wrappers draw
it from a generator of its own, made afresh for every round: from
``(seed, round, CENTRAL_NOISE_STREAM)`` with ``privacy.noise_source=seeded``
(simulations: a resumed round draws the noise the uninterrupted run drew), from the
operating system's entropy with ``os_entropy`` (deployments).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from flwr.app import Array, ArrayRecord, Message, MetricRecord
from flwr.serverapp.strategy import (
    DifferentialPrivacyClientSideFixedClipping,
    DifferentialPrivacyServerSideFixedClipping,
    FedAvg,
    Strategy,
)
from flwr.serverapp.strategy.dp_fixed_clipping import DifferentialPrivacyFixedClippingBase
from flwr.supercore.differential_privacy import compute_stdv
from flwr.supercore.privacy_accounting import (
    NeighboringRelation,
    PrivacyConfig,
    SamplingMethod,
)
from flwr.supercore.privacy_accounting.rdp_accountant import RdpAccountant

from fedrisk.conf.privacy import ClippingSide, NoiseSource
from fedrisk.conf.privacy import PrivacyConfig as FedriskPrivacy
from fedrisk.conf.strategy import StrategyConfig

SCOPE = "institution-level (DP-FedAvg; Flower RDP accountant, no sampling amplification)"
#: Names the aggregate's noise among a run's seeded streams: with
#: ``noise_source=seeded`` round r draws from ``SeedSequence([seed, r, CENTRAL_NOISE_STREAM])``.
CENTRAL_NOISE_STREAM = 0xCD9A


def round_noise_generator(
    noise_source: NoiseSource, *, seed: int, server_round: int
) -> np.random.Generator:
    """Return the generator of one round's noise on the aggregate.

    Parameters
    ----------
    noise_source : NoiseSource
        ``seeded``: derived from ``(seed, server_round, CENTRAL_NOISE_STREAM)``, the same
        in every run with this seed. ``os_entropy``: 128 fresh bits from the operating
        system, a different generator every call.
    seed : int
        The run's seed (non-negative); unused with ``os_entropy``.
    server_round : int
        The round whose aggregate the noise is for.

    Notes
    -----
    The generator is numpy's PCG64, not a cryptographic generator; the floating-point
    Gaussian's known weaknesses (Mironov, 2012) apply here as they do to Flower's.
    """
    if noise_source is NoiseSource.seeded:
        entropy = np.random.SeedSequence([seed, server_round, CENTRAL_NOISE_STREAM])
        return np.random.default_rng(entropy)
    return np.random.default_rng(np.random.SeedSequence())


def add_central_noise(arrays: ArrayRecord, *, stdv: float, rng: np.random.Generator) -> ArrayRecord:
    """Return ``arrays`` plus Gaussian noise of std ``stdv`` drawn from ``rng``.

    As Flower's ``add_gaussian_noise_inplace``: the noise is drawn in float64, one
    array after another in the record's order, and cast to each array's dtype.
    """
    noisy = {}
    for name, array in zip(arrays.keys(), arrays.to_numpy_ndarrays(), strict=True):
        array += rng.normal(0.0, stdv, array.shape).astype(array.dtype)
        noisy[name] = Array(np.asarray(array))
    return ArrayRecord(noisy)


class _RoundNoise(DifferentialPrivacyFixedClippingBase):
    """Flower's fixed-clipping DP with the aggregate's noise from `round_noise_generator`.

    Overrides Flower's private hook ``_add_noise_to_aggregated_arrays`` (flwr 1.41),
    keeping its stddev (``compute_stdv``) and dtypes; the unit tests fail if a Flower
    release stops calling it (the global generator would move again).
    """

    def __init__(
        self,
        strategy: Strategy,
        noise_multiplier: float,
        clipping_norm: float,
        num_sampled_clients: int,
        *,
        accountant: RdpAccountant,
        seed: int,
        noise_source: NoiseSource,
    ) -> None:
        super().__init__(
            strategy, noise_multiplier, clipping_norm, num_sampled_clients, accountant=accountant
        )
        self.seed = seed
        self.noise_source = NoiseSource(noise_source)
        self._aggregating: int | None = None

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Aggregate as Flower's wrapper does, noising with this round's generator."""
        self._aggregating = server_round
        try:
            # mypy sees Strategy's abstract method; the MRO calls Flower's wrapper next.
            return super().aggregate_train(server_round, replies)  # type: ignore[safe-super]
        finally:
            self._aggregating = None

    def _add_noise_to_aggregated_arrays(self, aggregated_arrays: ArrayRecord) -> ArrayRecord:
        """Return the aggregate plus this round's noise (Flower calls it, then composes)."""
        if self._aggregating is None:
            raise RuntimeError("central DP noise is drawn only while a round is aggregated")
        rng = round_noise_generator(
            self.noise_source, seed=self.seed, server_round=self._aggregating
        )
        stdv = compute_stdv(self.noise_multiplier, self.clipping_norm, self.num_sampled_clients)
        return add_central_noise(aggregated_arrays, stdv=stdv, rng=rng)


class ServerSideCentralDP(_RoundNoise, DifferentialPrivacyServerSideFixedClipping):
    """Flower's ``DifferentialPrivacyServerSideFixedClipping`` with per-round noise."""


class ClientSideCentralDP(_RoundNoise, DifferentialPrivacyClientSideFixedClipping):
    """Flower's ``DifferentialPrivacyClientSideFixedClipping`` with per-round noise."""


def wrap_central_dp(
    strategy: Strategy,
    privacy: FedriskPrivacy,
    strategy_config: StrategyConfig,
    *,
    n_institutions: int,
    seed: int,
    noise_source: NoiseSource,
) -> Strategy:
    """Wrap ``strategy`` in Flower's fixed-clipping DP with an accountant.

    Parameters
    ----------
    strategy : Strategy
        A FedAvg-like strategy (fedavg or fedprox).
    privacy : fedrisk.conf.privacy.PrivacyConfig
        Noise multiplier, clipping norm and side, δ and the ε budget.
    strategy_config : StrategyConfig
        The strategy's config (must train every institution every round).
    n_institutions : int
        Institutions in the consortium: every round's sample and the population.
    seed : int
        The run's seed, for ``noise_source=seeded``.
    noise_source : NoiseSource
        Where each round's noise generator comes from (see `round_noise_generator`).

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
        ClientSideCentralDP
        if privacy.central_clipping_side is ClippingSide.client
        else ServerSideCentralDP
    )
    return wrapper(
        strategy,
        noise_multiplier=privacy.central_noise_multiplier,
        clipping_norm=privacy.central_clipping_norm,
        num_sampled_clients=n_institutions,
        accountant=accountant,
        seed=seed,
        noise_source=noise_source,
    )
