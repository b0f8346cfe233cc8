"""What a strategy, and the strategies it wraps, carry from one round to the next.

Saved in the coordinator's checkpoint (`fedrisk.server.checkpoint`): array attributes
of Flower's FedOpt family (FedAdam's moments ``m_t`` and ``v_t``) and the RDP
accountant of each of Flower's DP wrappers (``privacy=central``), as its own
``state_dict()``. Wrapped strategies are found through their ``strategy`` attribute
(`strategy_chain`); keys are ``"{depth}.{name}"``, depth 0 being the outermost.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from flwr.serverapp.strategy import Strategy
from flwr.serverapp.strategy.dp_fixed_clipping import DifferentialPrivacyFixedClippingBase
from flwr.supercore.privacy_accounting import PrivacyAccountant

#: Strategy attributes saved when present (Flower's FedOpt family: FedAdam, FedYogi…).
STRATEGY_STATE = ("m_t", "v_t")
#: Name of a DP wrapper's accountant in `StrategyState.accountants` (``"{depth}.accountant"``).
ACCOUNTANT = "accountant"


class CheckpointError(ValueError):
    """A run directory's checkpoint is missing, unreadable or from another run."""


@dataclass
class StrategyState:
    """What a strategy and the strategies it wraps carry from one round to the next.

    Keys are ``"{depth}.{name}"``, depth 0 being the outermost strategy.

    Attributes
    ----------
    arrays : dict[str, dict[str, np.ndarray]]
        Array attributes (FedOpt's ``m_t``, ``v_t``), kept in the ``.npz``.
    accountants : dict[str, dict[str, object]]
        Each DP wrapper's accountant as its ``state_dict()`` (JSON), kept in
        ``state.json``.
    """

    arrays: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    accountants: dict[str, dict[str, object]] = field(default_factory=dict)


def strategy_state(strategy: Strategy) -> StrategyState:
    """Return the saved attributes and accountants of ``strategy`` and the strategies it wraps."""
    state = StrategyState()
    for depth, current in enumerate(strategy_chain(strategy)):
        for name in STRATEGY_STATE:
            value = getattr(current, name, None)
            if isinstance(value, Mapping):
                state.arrays[f"{depth}.{name}"] = {k: np.asarray(v) for k, v in value.items()}
        accountant = _accountant_of(current)
        if accountant is not None:
            state.accountants[f"{depth}.{ACCOUNTANT}"] = accountant.state_dict()
    return state


def restore_strategy(strategy: Strategy, state: StrategyState) -> None:
    """Put saved attributes and accountants back on ``strategy`` and the strategies it wraps.

    Every accountant is checked and restored before any attribute is set.

    Raises
    ------
    CheckpointError
        If the checkpoint holds state for a strategy the run does not have, lacks the
        state of an accountant the run keeps, or holds an accountant's state of
        another privacy configuration.
    """
    chain = strategy_chain(strategy)
    for key in state.arrays:
        depth, name = key.split(".", 1)
        if int(depth) >= len(chain) or name not in STRATEGY_STATE:
            raise CheckpointError(f"the checkpoint holds strategy state {key!r} this run lacks")
    accountants = {
        f"{depth}.{ACCOUNTANT}": accountant
        for depth, current in enumerate(chain)
        if (accountant := _accountant_of(current)) is not None
    }
    for key in state.accountants:
        if key not in accountants:
            raise CheckpointError(f"the checkpoint holds accountant state {key!r} this run lacks")
    for key, accountant in accountants.items():
        if key not in state.accountants:
            raise CheckpointError(
                f"the checkpoint holds no state for the run's accountant {key!r} (written "
                f"before checkpoint format 2?); its privacy spending cannot be continued"
            )
        _load_accountant(key, accountant, state.accountants[key])
    for key, arrays in state.arrays.items():
        depth, name = key.split(".", 1)
        setattr(chain[int(depth)], name, {k: np.array(v) for k, v in arrays.items()})


def strategy_chain(strategy: Strategy) -> list[object]:
    """Return ``strategy`` and the strategies it wraps, outermost first."""
    chain: list[object] = []
    current: object = strategy
    while current is not None:
        chain.append(current)
        current = getattr(current, "strategy", None)
    return chain


def _accountant_of(strategy: object) -> PrivacyAccountant | None:
    """Return the accountant of a Flower DP wrapper, if ``strategy`` is one that keeps one."""
    if isinstance(strategy, DifferentialPrivacyFixedClippingBase):
        return strategy.accountant
    return None


def _load_accountant(key: str, accountant: PrivacyAccountant, saved: dict[str, object]) -> None:
    """Continue ``accountant`` from ``saved`` (its ``state_dict()`` in the checkpoint)."""
    ours = accountant.state_dict()["config"]
    theirs = saved.get("config")
    if isinstance(ours, dict) and isinstance(theirs, dict) and theirs != ours:
        differences = "; ".join(
            f"{name} {theirs.get(name)!r}, this run {value!r}"
            for name, value in ours.items()
            if theirs.get(name) != value
        )
        raise CheckpointError(
            f"the checkpoint's accountant {key!r} was kept under another privacy "
            f"configuration ({differences})"
        )
    try:
        accountant.load_state_dict(saved)
    except ValueError as err:
        raise CheckpointError(
            f"the checkpoint's accountant {key!r} is unreadable ({err})"
        ) from None
