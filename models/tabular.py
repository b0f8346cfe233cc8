"""Tabular risk models (logistic regression and MLP) and moving their weights.

Every model maps a float32 feature matrix of shape ``(n, n_inputs)`` to logits of shape
``(n,)``. The layers are plain ``Linear``, ``ReLU`` and ``Dropout``, with no batch
statistics, so Opacus can compute per-sample gradients for them.

Weights travel between server and institutions as a list of NumPy arrays in
``state_dict`` order (:func:`get_weights`, :func:`set_weights`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from .sequence import build_sequence_model
from .spec import ModelKind, ModelSpec


class TabularRiskModel(nn.Module):
    """A stack of layers whose output is squeezed to one logit per row.

    Parameters
    ----------
    layers : torch.nn.Sequential
        Layers mapping ``(n, n_inputs)`` to ``(n, 1)``.
    """

    def __init__(self, layers: nn.Sequential) -> None:
        super().__init__()
        self.layers = layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the logits, shape ``(n,)``, for a batch ``x`` of shape ``(n, n_inputs)``."""
        out: torch.Tensor = self.layers(x)
        return out.squeeze(-1)


def build_model(spec: ModelSpec, n_inputs: int, *, seed: int) -> nn.Module:
    """Build a freshly initialised risk model.

    Parameters
    ----------
    spec : ModelSpec
        ``logistic`` builds one ``Linear(n_inputs, 1)``; ``mlp`` builds
        ``Linear -> ReLU -> Dropout`` per hidden width, then ``Linear(·, 1)``; ``gru``
        and ``lstm`` build a :class:`fedrisk.models.sequence.SequenceRiskModel`.
    n_inputs : int
        Number of features.
    seed : int
        Seed of the initialisation: the same seed gives identical parameters.

    Returns
    -------
    torch.nn.Module
        A :class:`TabularRiskModel` (or a sequence model) in training mode, returning
        logits of shape ``(n,)``.

    Raises
    ------
    ValueError
        If ``n_inputs`` is not a positive integer or ``seed`` is negative, or (recurrent
        kinds) ``n_inputs`` is not a multiple of ``spec.window``.

    Notes
    -----
    The initialisation draws from PyTorch's global generator inside
    ``torch.random.fork_rng``, so the caller's global RNG state is left as it was.
    """
    if isinstance(n_inputs, bool) or not isinstance(n_inputs, int) or n_inputs < 1:
        raise ValueError(f"`n_inputs` must be a positive integer; got {n_inputs!r}")
    _check_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        if ModelKind(spec.kind).recurrent:
            return build_sequence_model(spec, n_inputs)
        layers: list[nn.Module] = []
        width = n_inputs
        if ModelKind(spec.kind) is ModelKind.mlp:
            for hidden in spec.hidden:
                layers += [nn.Linear(width, int(hidden)), nn.ReLU(), nn.Dropout(spec.dropout)]
                width = int(hidden)
        layers.append(nn.Linear(width, 1))
        return TabularRiskModel(nn.Sequential(*layers))


def predict_logits(model: nn.Module, x: np.ndarray, *, batch_size: int = 8192) -> np.ndarray:
    """Return the model's logits for every row of ``x``, in eval mode and without gradients.

    Parameters
    ----------
    model : torch.nn.Module
        A model returning logits of shape ``(n,)``.
    x : numpy.ndarray
        Features, shape ``(n, n_inputs)``; cast to float32.
    batch_size : int (default: 8192)
        Rows per forward pass, bounding memory.

    Returns
    -------
    numpy.ndarray
        Float64 logits, shape ``(n,)``. The model's training mode is restored afterwards.

    Raises
    ------
    ValueError
        If ``x`` is not a finite 2-D array or ``batch_size`` is not positive.
    """
    features = _as_features(x)
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be at least 1; got {batch_size}")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            chunks = [
                model(features[start : start + batch_size]).to(torch.float64)
                for start in range(0, features.shape[0], batch_size)
            ]
    finally:
        model.train(was_training)
    if not chunks:
        return np.zeros(0, dtype=np.float64)
    return torch.cat(chunks).numpy()


def predict_proba(model: nn.Module, x: np.ndarray, *, batch_size: int = 8192) -> np.ndarray:
    """Return the predicted probability of the positive class for every row of ``x``.

    Parameters
    ----------
    model : torch.nn.Module
        A model returning logits of shape ``(n,)``.
    x : numpy.ndarray
        Features, shape ``(n, n_inputs)``; cast to float32.
    batch_size : int (default: 8192)
        Rows per forward pass.

    Returns
    -------
    numpy.ndarray
        Float64 probabilities in [0, 1], shape ``(n,)`` (sigmoid of the logits, taken in
        float64).

    Raises
    ------
    ValueError
        If ``x`` is not a finite 2-D array or ``batch_size`` is not positive.
    """
    logits = predict_logits(model, x, batch_size=batch_size)
    return torch.sigmoid(torch.from_numpy(logits)).numpy()


def get_weights(model: nn.Module) -> list[np.ndarray]:
    """Return copies of the model's ``state_dict`` tensors as NumPy arrays, in order.

    Parameters
    ----------
    model : torch.nn.Module
        Any module.

    Returns
    -------
    list[numpy.ndarray]
        One array per ``state_dict`` entry (parameters and buffers), detached copies.
    """
    return [t.detach().cpu().numpy().copy() for t in model.state_dict().values()]


def state_dict_from_weights(
    model: nn.Module, weights: Sequence[np.ndarray]
) -> OrderedDict[str, torch.Tensor]:
    """Pair ``weights`` with the model's ``state_dict`` keys after checking them.

    Parameters
    ----------
    model : torch.nn.Module
        The module the weights belong to.
    weights : Sequence[numpy.ndarray]
        One array per ``state_dict`` entry, in ``state_dict`` order.

    Returns
    -------
    collections.OrderedDict[str, torch.Tensor]
        New tensors (copies) with the dtypes of the model's current entries.

    Raises
    ------
    ValueError
        If the number of arrays differs from the number of entries, or an array's shape
        differs from its entry's shape (the message names the entry and both shapes).
    """
    current = model.state_dict()
    if len(weights) != len(current):
        raise ValueError(
            f"`weights` must hold {len(current)} arrays, one per state_dict entry; "
            f"got {len(weights)}"
        )
    state: OrderedDict[str, torch.Tensor] = OrderedDict()
    for (name, ref), array in zip(current.items(), weights, strict=True):
        value = np.asarray(array)
        if tuple(value.shape) != tuple(ref.shape):
            raise ValueError(
                f"`weights` entry for `{name}` must have shape {tuple(ref.shape)}; "
                f"got {tuple(value.shape)}"
            )
        state[name] = torch.tensor(value, dtype=ref.dtype, device=ref.device)
    return state


def set_weights(model: nn.Module, weights: Sequence[np.ndarray]) -> None:
    """Load ``weights`` (``state_dict`` order) into ``model`` in place.

    Parameters
    ----------
    model : torch.nn.Module
        The module to update.
    weights : Sequence[numpy.ndarray]
        One array per ``state_dict`` entry, as returned by :func:`get_weights`.

    Raises
    ------
    ValueError
        If the count or any shape does not match (see :func:`state_dict_from_weights`).
    """
    model.load_state_dict(state_dict_from_weights(model, weights), strict=True)


def count_parameters(model: nn.Module) -> int:
    """Return the number of scalar parameters (trainable or not), excluding buffers."""
    return sum(p.numel() for p in model.parameters())


def _as_features(x: np.ndarray) -> torch.Tensor:
    """Return ``x`` as a contiguous float32 tensor after checking it is finite and 2-D."""
    array = np.asarray(x)
    if array.ndim != 2:
        raise ValueError(f"`x` must be a 2-D array (rows, features); got shape {array.shape}")
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported below
        features = np.ascontiguousarray(array, dtype=np.float32)
    if not np.isfinite(features).all():
        raise ValueError("`x` must be finite (no NaN or inf) as float32; got non-finite values")
    return torch.from_numpy(features)


def _check_seed(seed: int) -> None:
    """Raise ``ValueError`` unless ``seed`` is a non-negative integer."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"`seed` must be a non-negative integer; got {seed!r}")
