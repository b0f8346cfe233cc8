"""Plain (non-private) local training and evaluation at one institution.

One call of :func:`train_local` is one federated round's local work: ``spec.epochs``
passes over the institution's rows in shuffled mini-batches, minimising the class-weighted
training loss (``TrainSpec.loss``: weighted BCE, asymmetric cost or focal), optionally
with FedProx's proximal term. The pieces are separate so
that the DP-SGD trainer can swap two of them: :func:`build_optimizer` (Opacus wraps the
optimiser) and :func:`shuffled_batches` (Opacus samples Poisson batches); :func:`run_epoch`
takes any iterable of batches.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from numbers import Real

import numpy as np
import torch
from torch import nn

from fedrisk.models import (
    OptimizerKind,
    RiskLoss,
    TrainSpec,
    build_loss,
    predict_logits,
    risk_metrics,
    state_dict_from_weights,
)


@dataclass(frozen=True)
class TrainResult:
    """Outcome of one round of local training.

    Parameters
    ----------
    loss : float
        Mean training loss per example over the last epoch (without the proximal
        term), measured on each batch before its optimiser step.
    n_examples : int
        Number of training rows (the weight of this institution in FedAvg).
    steps : int
        Optimiser steps taken over all epochs.
    """

    loss: float
    n_examples: int
    steps: int


@dataclass(frozen=True, eq=False)
class LocalObjective:
    """The loss minimised locally: the task's risk loss plus FedProx's proximal term.

    Parameters
    ----------
    loss : RiskLoss
        The per-row data loss (see ``fedrisk.models.build_loss``).
    proximal_mu : float (default: 0.0)
        FedProx coefficient; the term is ``mu / 2 * ||w - w_global||²``.
    global_params : tuple[torch.Tensor, ...] (default: ())
        The round's global parameters, aligned with ``model.parameters()``; needed only
        when ``proximal_mu > 0``.

    Notes
    -----
    The proximal term depends on the weights only, not on any record. Under DP-SGD its
    gradient must therefore be added after per-sample clipping and noise (Opacus's
    optimiser rebuilds ``p.grad`` from per-sample gradients and would drop it); it costs
    no privacy there.
    """

    loss: RiskLoss
    proximal_mu: float = 0.0
    global_params: tuple[torch.Tensor, ...] = ()

    def data_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Return the mean data loss of one batch."""
        return self.loss(logits, targets)

    def proximal(self, model: nn.Module) -> torch.Tensor | None:
        """Return ``mu / 2 * ||w - w_global||²``, or ``None`` when ``mu`` is 0."""
        if self.proximal_mu == 0.0:
            return None
        squared = torch.stack(
            [
                ((p - g) ** 2).sum()
                for p, g in zip(model.parameters(), self.global_params, strict=True)
            ]
        ).sum()
        return 0.5 * self.proximal_mu * squared


def build_optimizer(model: nn.Module, spec: TrainSpec) -> torch.optim.Optimizer:
    """Return the optimiser named by ``spec.optimizer`` over ``model``'s parameters.

    Parameters
    ----------
    model : torch.nn.Module
        The model being trained.
    spec : TrainSpec
        ``lr``, ``weight_decay``, and ``momentum`` (SGD only).

    Returns
    -------
    torch.optim.Optimizer
        ``SGD`` or ``Adam``, with PyTorch's fused kernels (about 25 % faster per Adam step
        on CPU for these small models; Opacus wraps them unchanged).
    """
    params = list(model.parameters())
    if OptimizerKind(spec.optimizer) is OptimizerKind.sgd:
        return torch.optim.SGD(
            params, lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay, fused=True
        )
    return torch.optim.Adam(params, lr=spec.lr, weight_decay=spec.weight_decay, fused=True)


def shuffled_batches(
    x: torch.Tensor, y: torch.Tensor, *, batch_size: int, generator: torch.Generator
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield one epoch of mini-batches in an order drawn from ``generator``.

    Parameters
    ----------
    x, y : torch.Tensor
        Features ``(n, d)`` and labels ``(n,)``.
    batch_size : int
        Rows per batch; the last batch may be smaller.
    generator : torch.Generator
        Source of the permutation (seeded by the caller for reproducibility).

    Yields
    ------
    tuple[torch.Tensor, torch.Tensor]
        Views into one permuted copy of ``x`` and ``y`` (one copy per epoch).
    """
    order = torch.randperm(x.shape[0], generator=generator)
    x_perm, y_perm = x[order], y[order]
    for start in range(0, x.shape[0], batch_size):
        yield x_perm[start : start + batch_size], y_perm[start : start + batch_size]


def run_epoch(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    objective: LocalObjective,
) -> tuple[float, int]:
    """Take one optimiser step per batch.

    Parameters
    ----------
    model : torch.nn.Module
        The model, in training mode.
    batches : Iterable[tuple[torch.Tensor, torch.Tensor]]
        ``(features, labels)`` batches; an empty batch still takes a step (DP-SGD's
        Poisson sampling can draw one, and its noise must still be added).
    optimizer : torch.optim.Optimizer
        Plain or DP optimiser.
    objective : LocalObjective
        The loss.

    Returns
    -------
    tuple[float, int]
        Mean data loss per example seen (NaN if no example was seen) and steps taken.
    """
    loss_sum = torch.zeros((), dtype=torch.float64)
    seen = 0
    steps = 0
    for xb, yb in batches:
        optimizer.zero_grad(set_to_none=True)
        data_loss = objective.data_loss(model(xb), yb)
        proximal = objective.proximal(model)
        total = data_loss if proximal is None else data_loss + proximal
        total.backward()
        optimizer.step()
        steps += 1
        if yb.shape[0]:
            loss_sum += data_loss.detach() * yb.shape[0]
            seen += yb.shape[0]
    return (float(loss_sum) / seen if seen else math.nan), steps


def train_local(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    spec: TrainSpec,
    *,
    seed: int,
    proximal_mu: float = 0.0,
    global_weights: Sequence[np.ndarray] | None = None,
) -> TrainResult:
    """Train ``model`` in place on one institution's rows for one round.

    Parameters
    ----------
    model : torch.nn.Module
        The model to train, e.g. from ``fedrisk.models.build_model``; its training mode
        is restored afterwards.
    x : numpy.ndarray
        Features, shape ``(n, d)``, finite; cast to float32 once.
    y : numpy.ndarray
        Labels in {0, 1}, shape ``(n,)``.
    spec : TrainSpec
        Epochs, batch size, optimiser and loss (``pos_weight`` ``None``: balanced from ``y``).
    seed : int
        Seeds the batch order and dropout: the same inputs and seed give bit-identical
        weights (on the same machine and thread count).
    proximal_mu : float (default: 0.0)
        FedProx coefficient ``mu`` >= 0; 0 is plain FedAvg local training.
    global_weights : Sequence[numpy.ndarray] | None (default: None)
        The round's global model in ``state_dict`` order; required when ``proximal_mu > 0``.

    Returns
    -------
    TrainResult
        Last epoch's mean loss, number of rows and steps taken.

    Raises
    ------
    ValueError
        If ``x`` or ``y`` are malformed (shape, non-finite values, non-binary labels, a
        feature count the model does not take), ``seed`` is negative, ``proximal_mu`` is
        negative or not finite, or ``proximal_mu > 0`` without valid ``global_weights``.

    Notes
    -----
    Dropout draws from PyTorch's global generator; it is reseeded inside
    ``torch.random.fork_rng``, so the caller's RNG state is untouched. The thread count
    is the caller's choice (``torch.set_num_threads``).
    """
    features, labels = _training_tensors(model, x, y)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"`seed` must be a non-negative integer; got {seed!r}")
    if not (isinstance(proximal_mu, Real) and math.isfinite(proximal_mu) and proximal_mu >= 0):
        raise ValueError(f"`proximal_mu` must be a finite number >= 0; got {proximal_mu!r}")
    if proximal_mu > 0 and global_weights is None:
        raise ValueError(
            f"`global_weights` must be given when `proximal_mu` > 0; got None (mu={proximal_mu})"
        )
    global_params: tuple[torch.Tensor, ...] = ()
    if global_weights is not None:
        state = state_dict_from_weights(model, global_weights)
        global_params = tuple(state[name] for name, _ in model.named_parameters())
    objective = LocalObjective(
        loss=build_loss(spec, y),
        proximal_mu=float(proximal_mu),
        global_params=global_params,
    )
    shuffle_seed, dropout_seed = np.random.SeedSequence(int(seed)).generate_state(2)
    generator = torch.Generator().manual_seed(int(shuffle_seed))
    optimizer = build_optimizer(model, spec)
    was_training = model.training
    loss, steps = math.nan, 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(dropout_seed))
        model.train()
        try:
            for _ in range(spec.epochs):
                batches = shuffled_batches(
                    features, labels, batch_size=spec.batch_size, generator=generator
                )
                loss, epoch_steps = run_epoch(model, batches, optimizer, objective)
                steps += epoch_steps
        finally:
            model.train(was_training)
    return TrainResult(loss=loss, n_examples=int(features.shape[0]), steps=steps)


def evaluate_model(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    *,
    threshold: float = 0.5,
    fpr: float = 0.01,
    cost_ratio: float = 1.0,
) -> dict[str, float]:
    """Return the risk metrics of ``model`` on ``(x, y)`` plus its unweighted BCE.

    Parameters
    ----------
    model : torch.nn.Module
        A model returning logits.
    x : numpy.ndarray
        Features, shape ``(n, d)``.
    y : numpy.ndarray
        Labels in {0, 1}, shape ``(n,)``.
    threshold : float (default: 0.5)
        Decision threshold for ``accuracy``, ``recall`` and ``expected_cost``.
    fpr : float (default: 0.01)
        False-alarm budget of ``recall_at_fpr``.
    cost_ratio : float (default: 1.0)
        Cost of a missed positive over a false alarm, for ``expected_cost``.

    Returns
    -------
    dict[str, float]
        The keys of ``fedrisk.models.risk_metrics`` and ``loss``, the mean unweighted
        binary cross-entropy computed from the logits in float64 (not clipped, unlike
        ``log_loss``).

    Raises
    ------
    ValueError
        If ``x`` or ``y`` are malformed (see ``fedrisk.models.risk_metrics``).
    """
    logits = predict_logits(model, x)
    proba = torch.sigmoid(torch.from_numpy(logits)).numpy()
    metrics = risk_metrics(y, proba, threshold=threshold, fpr=fpr, cost_ratio=cost_ratio)
    targets = np.asarray(y, dtype=np.float64)
    metrics["loss"] = float(np.mean(np.logaddexp(0.0, logits) - targets * logits))
    return metrics


def _training_tensors(
    model: nn.Module, x: np.ndarray, y: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check ``x`` and ``y`` and return them as float32 tensors (one conversion each)."""
    x_arr, y_arr = np.asarray(x), np.asarray(y)
    if x_arr.ndim != 2 or x_arr.shape[0] == 0:
        raise ValueError(f"`x` must be a 2-D array with at least one row; got shape {x_arr.shape}")
    if y_arr.shape != (x_arr.shape[0],):
        raise ValueError(f"`y` must have shape ({x_arr.shape[0]},) to match `x`; got {y_arr.shape}")
    first_linear = next((m for m in model.modules() if isinstance(m, nn.Linear)), None)
    expected = getattr(model, "n_inputs", None)  # sequence models: window × step features
    if expected is None and first_linear is not None:
        expected = first_linear.in_features
    if expected is not None and expected != x_arr.shape[1]:
        raise ValueError(
            f"`x` must have {expected} feature columns for this model; got {x_arr.shape[1]}"
        )
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported below
        features = np.ascontiguousarray(x_arr, dtype=np.float32)
    if not np.isfinite(features).all():
        raise ValueError("`x` must be finite (no NaN or inf) as float32; got non-finite values")
    if y_arr.dtype.kind not in "biuf" or not np.isin(y_arr, (0, 1)).all():
        raise ValueError(f"`y` must hold only 0 and 1; got values {np.unique(y_arr)[:10]}")
    return torch.from_numpy(features), torch.from_numpy(y_arr.astype(np.float32))
