"""A grid whose ``send_and_receive`` notices replies promptly.

Flower's grids wait a fixed time between two pulls for replies: 0.1 s on the
simulation engine (``InMemoryGrid.pull_interval``) and 3 s on the deployment engine
(``HttpGrid``). Every message exchange of a round therefore lasts at least until the
next pull after its last reply; for a pilot that is up to 3 s per exchange, and
secure aggregation has two exchanges per round. :class:`PromptGrid` pulls through
the same public ``push_messages``/``pull_messages`` API, first after
:data:`FIRST_PULL_S`, then backing off geometrically to :data:`LONGEST_PULL_S`, so a
quick exchange is seen within milliseconds and a slow one costs a pull every
quarter-second at most.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from flwr.app import Message, RecordDict
from flwr.serverapp import Grid
from flwr.supercore.run import Run

FIRST_PULL_S = 0.002
LONGEST_PULL_S = 0.25
BACKOFF = 1.5


def pull_delays() -> Iterable[float]:
    """Yield the waits between two pulls: geometric from the first to the longest."""
    delay = FIRST_PULL_S
    while True:
        yield delay
        delay = min(delay * BACKOFF, LONGEST_PULL_S)


class PromptGrid(Grid):
    """Delegate to ``grid``, but wait for replies with short, growing pull intervals.

    Parameters
    ----------
    grid : Grid
        Flower's grid (in memory for simulations, over the network for a pilot).
    """

    def __init__(self, grid: Grid) -> None:
        self._grid = grid

    def set_run(self, run: Run) -> None:
        """Set the run (delegated)."""
        self._grid.set_run(run)

    @property
    def run(self) -> Run:
        """The run (delegated)."""
        return self._grid.run

    def create_message(
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str,
        ttl: float | None = None,
    ) -> Message:
        """Create a message (delegated)."""
        return self._grid.create_message(content, message_type, dst_node_id, group_id, ttl)

    def get_node_ids(self) -> Iterable[int]:
        """Return the connected node ids (delegated)."""
        return self._grid.get_node_ids()

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        """Push messages (delegated)."""
        return self._grid.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        """Pull replies (delegated)."""
        return self._grid.pull_messages(message_ids)

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        """Push ``messages`` and collect replies until all arrived or ``timeout`` passed."""
        pending = set(self.push_messages(messages))
        deadline = None if timeout is None else time.monotonic() + timeout
        replies: list[Message] = []
        for delay in pull_delays():
            got = list(self.pull_messages(pending))
            replies.extend(got)
            pending.difference_update(m.metadata.reply_to_message_id for m in got)
            if not pending:
                break
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                delay = min(delay, left)
            time.sleep(delay)
        return replies
