"""DP-SGD local training with Opacus: Poisson sampling, per-sample clipping, noise.

One call is one round's local work at one institution and releases exactly the
mechanism it returns: ``epochs × ⌊1/q⌋`` steps of the Poisson-subsampled Gaussian
mechanism with sampling rate ``q = batch_size / n``. The caller accounts for it.

Randomness. Opacus's ``secure_mode`` needs ``torchcsprng``, which has no build for
current torch. Instead, in ``os_entropy`` mode the generators behind Poisson sampling
and the Gaussian noise are reseeded from ``os.urandom`` before every step, so no seed
is ever fixed or reused; in ``seeded`` mode (simulations) they derive from the run
seed so that runs are reproducible, and the run record says so. Either way the noise
is drawn by torch's floating-point Gaussian sampler, which leaves the gap described
by Mironov (2012): a floating-point attack on the low-order bits of the noise.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from opacus.grad_sample.utils import wrap_model
from opacus.optimizers import DPOptimizer
from opacus.utils.uniform_sampler import UniformWithReplacementSampler
from opacus.validators import ModuleValidator
from torch import nn

from fedrisk.client.linear_clipping import LinearDPStep, linear_layers
from fedrisk.client.trainer import LocalObjective, TrainResult, build_optimizer, run_epoch
from fedrisk.conf.privacy import GradSampleMode, NoiseSource
from fedrisk.models import RiskLoss, TrainSpec, build_loss, state_dict_from_weights
from fedrisk.privacy.mechanism import PoissonGaussian


@dataclass(frozen=True)
class DPSettings:
    """The record-level DP-SGD parameters of one round.

    Parameters
    ----------
    noise_multiplier : float
        Gaussian noise std over the clipping norm.
    max_grad_norm : float
        Per-sample gradient clipping norm.
    noise_source : NoiseSource
        ``os_entropy`` (deployments) or ``seeded`` (reproducible simulations).
    grad_sample_mode : GradSampleMode (default: linear)
        Per-sample gradient engine (``linear`` falls back to Opacus's ``ew`` for models
        with parameters outside Linear layers).
    """

    noise_multiplier: float
    max_grad_norm: float
    noise_source: NoiseSource
    grad_sample_mode: GradSampleMode = GradSampleMode.linear


@dataclass(frozen=True)
class PrivateTrainResult:
    """One round of DP-SGD: the training outcome and the mechanism it released."""

    result: TrainResult
    mechanism: PoissonGaussian


def sample_rate_for(batch_size: int, n_records: int) -> float:
    """Poisson sampling rate that gives ``batch_size`` records per step in expectation."""
    if n_records < 1:
        raise ValueError(f"`n_records` must be positive; got {n_records}")
    return min(1.0, batch_size / n_records)


def steps_per_round(spec: TrainSpec, n_records: int) -> int:
    """Noisy steps one round takes: ``epochs × ⌊1/q⌋`` (Opacus's epoch length)."""
    return spec.epochs * max(1, int(1 / sample_rate_for(spec.batch_size, n_records)))


def planned_mechanism(spec: TrainSpec, n_records: int, dp: DPSettings) -> PoissonGaussian:
    """Return the mechanism one round will release, known before any training."""
    return PoissonGaussian(
        noise_multiplier=dp.noise_multiplier,
        sample_rate=sample_rate_for(spec.batch_size, n_records),
        steps=steps_per_round(spec, n_records),
        max_grad_norm=dp.max_grad_norm,
    )


def check_dp_compatible(model: nn.Module) -> None:
    """Raise ``ValueError`` naming the layers Opacus cannot train privately."""
    errors = ModuleValidator.validate(model, strict=False)
    if errors:
        raise ValueError(
            "model must be Opacus-compatible for DP-SGD; got: "
            + "; ".join(str(e).splitlines()[0] for e in errors)
        )


def train_private(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    spec: TrainSpec,
    dp: DPSettings,
    *,
    seed: int,
    proximal_mu: float = 0.0,
    global_weights: Sequence[np.ndarray] | None = None,
) -> PrivateTrainResult:
    """Train ``model`` in place with DP-SGD for one round.

    Parameters
    ----------
    model : torch.nn.Module
        An Opacus-compatible model (no BatchNorm).
    x, y : numpy.ndarray
        The institution's training rows and 0/1 labels.
    spec : TrainSpec
        Epochs, expected batch size, optimiser and loss (every loss is a mean of
        per-row terms, as per-sample clipping needs).
    dp : DPSettings
        Noise multiplier, clipping norm, randomness, per-sample-gradient engine.
    seed : int
        Seeds sampling, noise and dropout in ``seeded`` mode; dropout only otherwise.
    proximal_mu : float (default: 0.0)
        FedProx coefficient. Its gradient depends on the weights only, so it is added
        after clipping and noise and costs no privacy.
    global_weights : Sequence[numpy.ndarray] | None (default: None)
        The round's global weights, required when ``proximal_mu > 0``.

    Returns
    -------
    PrivateTrainResult
        Loss, rows, steps and the released mechanism (``steps`` equals the plan).

    Raises
    ------
    ValueError
        If the model is not Opacus-compatible or the inputs are malformed.
    """
    check_dp_compatible(model)
    n = int(y.shape[0])
    if x.ndim != 2 or x.shape[0] != n or n == 0:
        raise ValueError(f"`x` must be (n, d) with n = len(y) > 0; got {x.shape} and {y.shape}")
    mechanism = planned_mechanism(spec, n, dp)
    features = torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32))
    labels = torch.as_tensor(np.ascontiguousarray(y, dtype=np.float32))
    sampling_seed, noise_seed, dropout_seed = np.random.SeedSequence(seed).generate_state(3)
    sampling = torch.Generator().manual_seed(int(sampling_seed))
    noise = torch.Generator().manual_seed(int(noise_seed))

    loss_fn = build_loss(spec, y)
    expected_batch = max(1, round(mechanism.sample_rate * n))
    sampler = UniformWithReplacementSampler(
        num_samples=n, sample_rate=mechanism.sample_rate, generator=sampling
    )

    def epochs() -> Iterator[Iterator[tuple[torch.Tensor, torch.Tensor]]]:
        for _ in range(spec.epochs):
            yield _poisson_batches(
                features, labels, sampler, reseed=dp.noise_source, generators=(sampling, noise)
            )

    proximal = _proximal_step_hook(model, proximal_mu, global_weights) if proximal_mu > 0 else None
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        # Opacus's hooks fire on module outputs because inputs need no gradient.
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        torch.manual_seed(int(dropout_seed))
        plan = _RoundPlan(spec, dp, epochs(), noise, expected_batch, loss_fn, proximal)
        use_linear = dp.grad_sample_mode is GradSampleMode.linear
        if use_linear and linear_layers(model) is not None:
            loss, steps = _linear_epochs(model, plan)
        else:
            loss, steps = _opacus_epochs(model, plan)
    if steps != mechanism.steps:
        raise RuntimeError(f"DP-SGD took {steps} steps; the accounted plan was {mechanism.steps}")
    return PrivateTrainResult(
        result=TrainResult(loss=loss, n_examples=n, steps=steps), mechanism=mechanism
    )


@dataclass(frozen=True)
class _RoundPlan:
    """What either per-sample-gradient engine needs to run one round's epochs."""

    spec: TrainSpec
    dp: DPSettings
    epochs: Iterator[Iterator[tuple[torch.Tensor, torch.Tensor]]]
    noise: torch.Generator
    expected_batch: int
    loss: RiskLoss
    proximal: Callable[[object], None] | None


def _linear_epochs(model: nn.Module, plan: _RoundPlan) -> tuple[float, int]:
    """Run the epochs with fedrisk's one-backward clipping (Linear-only models)."""
    optimizer = build_optimizer(model, plan.spec)
    stepper = LinearDPStep(
        model,
        optimizer,
        noise_multiplier=plan.dp.noise_multiplier,
        max_grad_norm=plan.dp.max_grad_norm,
        expected_batch_size=plan.expected_batch,
        generator=plan.noise,
        loss=plan.loss,
    )
    was_training = model.training
    model.train()
    steps, loss = 0, math.nan
    try:
        for batches in plan.epochs:
            total, seen = 0.0, 0
            for xb, yb in batches:
                optimizer.zero_grad(set_to_none=True)
                losses = stepper.step(xb, yb)
                if plan.proximal is not None:
                    plan.proximal(optimizer)
                optimizer.step()
                steps += 1
                total += float(losses.sum())
                seen += int(losses.shape[0])
            loss = total / seen if seen else math.nan
    finally:
        stepper.close()
        model.train(was_training)
    return loss, steps


def _opacus_epochs(model: nn.Module, plan: _RoundPlan) -> tuple[float, int]:
    """Run the epochs with an Opacus per-sample-gradient engine and its DPOptimizer."""
    mode = (
        GradSampleMode.ew
        if plan.dp.grad_sample_mode is GradSampleMode.linear
        else plan.dp.grad_sample_mode
    )
    gsm = wrap_model(model, grad_sample_mode=mode.value)
    optimizer = DPOptimizer(
        build_optimizer(gsm, plan.spec),
        noise_multiplier=plan.dp.noise_multiplier,
        max_grad_norm=plan.dp.max_grad_norm,
        expected_batch_size=plan.expected_batch,
        loss_reduction="mean",
        generator=plan.noise,
    )
    if plan.proximal is not None:
        optimizer.attach_step_hook(plan.proximal)
    objective = LocalObjective(loss=plan.loss)
    steps, loss = 0, math.nan
    gsm.train()
    try:
        for batches in plan.epochs:
            loss, epoch_steps = run_epoch(gsm, batches, optimizer, objective)
            steps += epoch_steps
    finally:
        gsm._close()  # removes Opacus's hooks; `model` keeps the trained weights
    return loss, steps


def _poisson_batches(
    x: torch.Tensor,
    y: torch.Tensor,
    sampler: UniformWithReplacementSampler,
    *,
    reseed: NoiseSource,
    generators: tuple[torch.Generator, ...],
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield Poisson-sampled batches (possibly empty), reseeding from the OS if asked.

    In ``os_entropy`` mode both generators get 64 fresh bits before the batch is drawn
    (the sampling mask) and before its step adds noise.
    """
    sampler_iter = iter(sampler)
    for _ in range(len(sampler)):
        if reseed is NoiseSource.os_entropy:
            for generator in generators:
                generator.manual_seed(int.from_bytes(os.urandom(8), "little"))
        index = torch.as_tensor(next(sampler_iter), dtype=torch.long)
        yield x[index], y[index]


def _proximal_step_hook(
    model: nn.Module, mu: float, global_weights: Sequence[np.ndarray] | None
) -> Callable[[object], None]:
    if global_weights is None:
        raise ValueError("`global_weights` must be given when `proximal_mu` > 0; got None")
    state = state_dict_from_weights(model, global_weights)
    anchors = [state[name] for name, _ in model.named_parameters()]
    params = list(model.parameters())

    def add_proximal_gradient(_optimizer: object) -> None:
        with torch.no_grad():
            for p, anchor in zip(params, anchors, strict=True):
                if p.grad is not None:
                    p.grad.add_(p.detach() - anchor, alpha=mu)

    return add_proximal_gradient
