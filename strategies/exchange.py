"""One message exchange with the banks: push, then pull replies promptly as they arrive.

Flower's grids wait a fixed time between two pulls for replies (0.1 s on the simulation
engine, 3 s on the deployment engine). :func:`collect` pulls through the public
``push_messages``/``pull_messages`` API instead, first after :data:`FIRST_PULL_S`,
then backing off geometrically to a longest interval: :data:`IN_MEMORY_LONGEST_PULL_S`
on Flower's in-memory grid (simulations; a pull is a lookup costing well under a
millisecond), :data:`LONGEST_PULL_S` on a networked grid (each pull is a request to the
SuperLink). It can hand each reply to a callback the moment it is pulled and stop as
soon as the callback says the exchange has what it needs, which lets secure aggregation
reconstruct secrets while later replies are still on their way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from flwr.app import Message
from flwr.serverapp import Grid
from flwr.superlink.grid.inmemory_grid import InMemoryGrid

FIRST_PULL_S = 0.002
#: Longest wait between pulls on a networked grid (each pull is a request).
LONGEST_PULL_S = 0.25
#: Longest wait between pulls on Flower's in-memory (simulation) grid.
IN_MEMORY_LONGEST_PULL_S = 0.005
BACKOFF = 1.5


def pull_delays(longest: float = LONGEST_PULL_S) -> Iterator[float]:
    """Yield the waits between two pulls: geometric from the first to ``longest``."""
    delay = min(FIRST_PULL_S, longest)
    while True:
        yield delay
        delay = min(delay * BACKOFF, longest)


def longest_pull_of(grid: Grid) -> float:
    """Return the longest wait between pulls suited to ``grid``.

    A grid that states its own (``grid.longest_pull``, as ``PromptGrid`` does) keeps it.
    """
    stated = getattr(grid, "longest_pull", None)
    if isinstance(stated, int | float) and stated > 0:
        return float(stated)
    return IN_MEMORY_LONGEST_PULL_S if isinstance(grid, InMemoryGrid) else LONGEST_PULL_S


@dataclass
class Collected:
    """What one exchange brought back."""

    replies: list[Message] = field(default_factory=list)
    #: Ids of pushed messages without a reply when the exchange ended.
    unanswered: set[str] = field(default_factory=set)
    #: True when ``on_reply`` ended the exchange before every reply arrived.
    stopped_early: bool = False


def collect(
    grid: Grid,
    messages: Iterable[Message],
    *,
    timeout: float | None,
    on_reply: Callable[[Message], bool] | None = None,
    longest_pull: float | None = None,
) -> Collected:
    """Push ``messages`` and pull replies until all arrived, or ``on_reply`` or ``timeout`` ends it.

    Parameters
    ----------
    grid : Grid
        Where to push and pull (any Flower grid).
    messages : Iterable[Message]
        The instructions to send.
    timeout : float | None
        Seconds to wait for replies; ``None`` waits for all of them.
    on_reply : Callable[[Message], bool] | None (default: None)
        Called with each reply as soon as it is pulled; once it has returned True the
        exchange ends after the replies pulled together with that one (each still
        handed over) without waiting for the others.
    longest_pull : float | None (default: None)
        Longest wait between two pulls; by default :func:`longest_pull_of` ``grid``.
    """
    pending = set(grid.push_messages(messages))
    deadline = None if timeout is None else time.monotonic() + timeout
    out = Collected()
    longest = longest_pull_of(grid) if longest_pull is None else longest_pull
    satisfied = False
    for delay in pull_delays(longest):
        for reply in grid.pull_messages(pending):  # pulled replies leave the grid: keep all
            out.replies.append(reply)
            pending.discard(reply.metadata.reply_to_message_id)
            if on_reply is not None:  # every reply that arrived, even once satisfied
                satisfied = on_reply(reply) or satisfied
        if satisfied or not pending:
            out.stopped_early = bool(pending)
            break
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            delay = min(delay, left)
        time.sleep(delay)
    out.unanswered = pending
    return out
