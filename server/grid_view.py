"""A view of Flower's grid that shows a strategy only the eligible nodes, in order."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

from flwr.app import Message
from flwr.serverapp import Grid

from fedrisk.strategies.exchange import longest_pull_of


class EligibleGrid:
    """Expose only some nodes to a strategy's node sampling, in a fixed order.

    ``flwr.serverapp.strategy`` samples nodes with the module-level ``random``;
    :meth:`seed_sampling` reseeds it from the run seed and round so that the same
    seed selects the same institutions in every run. Everything else is delegated
    to the wrapped grid.

    Parameters
    ----------
    grid : Grid
        The real grid.
    nodes : Sequence[int]
        Node ids a strategy may select, in institution order.
    """

    def __init__(self, grid: Grid, nodes: Sequence[int]) -> None:
        self._grid = grid
        self._nodes = list(nodes)

    def get_node_ids(self) -> Iterable[int]:
        """Eligible node ids in institution order."""
        return list(self._nodes)

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        """Send messages and wait for replies (delegated)."""
        return self._grid.send_and_receive(messages, timeout=timeout)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        """Push messages (delegated)."""
        return self._grid.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        """Pull replies (delegated)."""
        return self._grid.pull_messages(message_ids)

    @property
    def longest_pull(self) -> float:
        """Longest wait between two pulls suited to the wrapped grid."""
        return longest_pull_of(self._grid)

    @staticmethod
    def seed_sampling(seed: int, server_round: int, stage: int) -> None:
        """Make the next ``sample_nodes`` call reproducible."""
        random.seed(f"fedrisk/{seed}/{server_round}/{stage}")
