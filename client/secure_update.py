"""Turn a trained model into the masked reply of a secure-aggregation round.

The update is the change the institution made to the global model it received,
clipped first when the run uses institution-level DP with clipping at the institution
(Flower's ``clip_inputs_inplace``, the same step as its ``fixedclipping_mod``), then
encoded and masked by `fedrisk.client.secagg_node`.
"""

from __future__ import annotations

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, MetricRecord
from flwr.supercore.differential_privacy import clip_inputs_inplace

from fedrisk.client.secagg_node import PreparedRound, masked_records
from fedrisk.conf.privacy import PrivacyMode
from fedrisk.conf.root import FedriskConfig
from fedrisk.strategies.messages import institutions_of
from fedrisk.strategies.secagg.encoding import Encoding


def masked_reply(
    prepared: PreparedRound,
    context: Context,
    settings: FedriskConfig,
    *,
    received: ArrayRecord,
    trained: ArrayRecord,
    clipping_norm: float | None,
    weight: int,
    loss: float,
    institution: str,
    rng_seed: int,
) -> dict[str, ArrayRecord | MetricRecord | ConfigRecord]:
    """Build the records of the masked training reply.

    Raises
    ------
    ValueError
        If the trained model's arrays do not match the global model's, or the update is
        not finite.

    Notes
    -----
    The fixed-point scale depends on the consortium's size (``institutions`` in the
    run config), exactly as on the coordinator.
    """
    if list(received.keys()) != list(trained.keys()):
        raise ValueError(
            f"trained arrays must match the global model's; got {list(trained.keys())}"
        )
    delta = [
        t.numpy().astype(np.float64) - r.numpy().astype(np.float64)
        for r, t in zip(received.values(), trained.values(), strict=True)
    ]
    central = settings.privacy.mode is PrivacyMode.central
    if central and clipping_norm is not None:
        clip_inputs_inplace(delta, clipping_norm)
    encoding = Encoding.for_run(
        settings.secagg,
        institutions=len(institutions_of(context.run_config)),
        uniform_weights=central,
    )
    return masked_records(
        prepared,
        context,
        delta=delta,
        weight=weight,
        loss=loss,
        encoding=encoding,
        institution=institution,
        rng=np.random.default_rng(rng_seed),
    )
