"""Recurrent risk models (GRU, LSTM) over lagged windows, built from Opacus's DP layers.

A row of a time-ordered task (``market_risk``) is one window, stored lag-major as
``window × features`` numeric columns (:func:`fedrisk.data.market.market_schema`), so the
tables, schema validation, Parquet files and DP batch rules of every other task apply
unchanged. The model reshapes each row to ``(window, features)``, runs a recurrent layer
over the time steps, reads the last state (or attention-pools all of them) and maps it
through a small head to one logit.

The recurrent layer is always Opacus's ``DPGRU`` / ``DPLSTM`` — with or without DP — so
the global model has one parameter layout whichever privacy mode a bank trains in.
Their gates are ``RNNLinear`` layers, for which Opacus's hooks engine computes exact
per-sample gradients summed over the time steps; ``torch.nn.GRU`` / ``LSTM`` fuse their
weights and are not supported by Opacus.
"""

from __future__ import annotations

import torch
from opacus.layers import DPGRU, DPLSTM
from torch import nn

from .spec import ModelKind, ModelSpec


class SequenceRiskModel(nn.Module):
    """Recurrent layer over a lag-major window, then a head to one logit per row.

    Parameters
    ----------
    kind : ModelKind
        ``gru`` or ``lstm``.
    window : int
        Time steps per row.
    step_features : int
        Features per time step.
    hidden : list[int]
        Recurrent state size, then the head's hidden widths.
    dropout : float
        Dropout after each head layer.
    attention : bool
        Pool the states with softmax attention over time instead of the last state.
    """

    def __init__(
        self,
        kind: ModelKind,
        *,
        window: int,
        step_features: int,
        hidden: list[int],
        dropout: float,
        attention: bool,
    ) -> None:
        super().__init__()
        self.window = window
        self.step_features = step_features
        self.n_inputs = window * step_features
        size = int(hidden[0])
        layer = DPGRU if kind is ModelKind.gru else DPLSTM
        self.rnn = layer(step_features, size, batch_first=True)
        self.attention = nn.Linear(size, 1) if attention else None
        layers: list[nn.Module] = []
        width = size
        for h in hidden[1:]:
            layers += [nn.Linear(width, int(h)), nn.ReLU(), nn.Dropout(dropout)]
            width = int(h)
        layers.append(nn.Linear(width, 1))
        self.head = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits ``(n,)`` for rows ``(n, window × step_features)``, lag-major."""
        steps = x.reshape(x.shape[0], self.window, self.step_features)
        states, _ = self.rnn(steps)
        if self.attention is None:
            pooled = states[:, -1, :]
        else:
            weights = torch.softmax(self.attention(states), dim=1)  # (n, window, 1)
            pooled = (weights * states).sum(dim=1)
        out: torch.Tensor = self.head(pooled)
        return out.squeeze(-1)


def build_sequence_model(spec: ModelSpec, n_inputs: int) -> SequenceRiskModel:
    """Build a recurrent model for rows of ``n_inputs`` lag-major columns.

    Parameters
    ----------
    spec : ModelSpec
        A ``gru`` or ``lstm`` spec with ``window`` set.
    n_inputs : int
        Encoded columns per row, a multiple of ``spec.window``.

    Returns
    -------
    SequenceRiskModel
        A freshly initialised model (seed the caller's generator first).

    Raises
    ------
    ValueError
        If the kind is not recurrent, ``window`` is unset, or ``n_inputs`` is not a
        positive multiple of it.
    """
    kind = ModelKind(spec.kind)
    if not kind.recurrent:
        raise ValueError(f"`model.kind` must be gru or lstm for a sequence model; got {kind.value}")
    if spec.window < 2:
        raise ValueError(f"`model.window` must be at least 2 for a {kind.value}; got {spec.window}")
    if n_inputs < spec.window or n_inputs % spec.window:
        raise ValueError(
            f"`n_inputs` must be a positive multiple of `model.window` ({spec.window}); "
            f"got {n_inputs}"
        )
    return SequenceRiskModel(
        kind,
        window=spec.window,
        step_features=n_inputs // spec.window,
        hidden=list(spec.hidden),
        dropout=spec.dropout,
        attention=spec.attention,
    )
