"""PromptGrid and `collect`: replies are pulled with short, growing intervals.

Flower's real grids are exercised by every simulation test (fedrisk's ServerApp wraps
the grid it is given); here a scripted grid releases each reply at a set time so the
polling loop itself can be checked: all replies, only pending ids, the timeout.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable

import pytest
from flwr.app import ConfigRecord, Message, RecordDict
from flwr.serverapp import Grid
from flwr.supercore.run import Run

from fedrisk.server.prompt_grid import PromptGrid
from fedrisk.strategies.exchange import (
    BACKOFF,
    FIRST_PULL_S,
    IN_MEMORY_LONGEST_PULL_S,
    LONGEST_PULL_S,
    collect,
    longest_pull_of,
    pull_delays,
)


class ScriptedGrid(Grid):
    """Answer message ``i`` once ``delays[i]`` seconds have passed since the push."""

    def __init__(self, delays: list[float]) -> None:
        self.delays = delays
        self.pulls: list[set[str]] = []
        self._ready: dict[str, tuple[float, Message]] = {}

    def set_run(self, run: Run) -> None:
        raise NotImplementedError

    @property
    def run(self) -> Run:
        raise NotImplementedError

    def create_message(self, *args: object, **kwargs: object) -> Message:  # type: ignore[override]
        raise NotImplementedError

    def get_node_ids(self) -> Iterable[int]:
        return [1, 2, 3]

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        ids = []
        now = time.monotonic()
        for i, message in enumerate(messages):
            message_id = f"m{i}"
            message.metadata.__dict__["_message_id"] = message_id
            reply = Message(RecordDict({"r": ConfigRecord({"i": i})}), reply_to=message)
            self._ready[message_id] = (now + self.delays[i], reply)
            ids.append(message_id)
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        wanted = set(message_ids)
        self.pulls.append(wanted)
        now = time.monotonic()
        out = [reply for mid, (at, reply) in self._ready.items() if mid in wanted and at <= now]
        for reply in out:
            del self._ready[reply.metadata.reply_to_message_id]
        return out

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        raise AssertionError("PromptGrid must not use the wrapped grid's own waiting")


def outgoing(n: int) -> list[Message]:
    return [
        Message(RecordDict({"q": ConfigRecord({"i": i})}), dst_node_id=i + 1, message_type="query")
        for i in range(n)
    ]


def test_delays_grow_geometrically_to_the_cap() -> None:
    delays = list(itertools.islice(pull_delays(), 30))
    assert delays[0] == FIRST_PULL_S
    assert delays[1] == pytest.approx(FIRST_PULL_S * BACKOFF)
    assert all(b >= a for a, b in itertools.pairwise(delays))
    assert delays[-1] == LONGEST_PULL_S
    assert max(delays) == LONGEST_PULL_S


def test_collects_every_reply_and_pulls_only_pending_ids() -> None:
    grid = ScriptedGrid([0.0, 0.02, 0.05])
    replies = list(PromptGrid(grid).send_and_receive(outgoing(3), timeout=5))
    assert sorted(r.content.config_records["r"]["i"] for r in replies) == [0, 1, 2]
    assert grid.pulls[0] == {"m0", "m1", "m2"}
    assert grid.pulls[-1] == {"m2"}
    # the last reply is noticed promptly, not at Flower's 0.1 s (simulation) or 3 s pace
    assert len(grid.pulls) >= 3


def test_returns_what_arrived_when_the_timeout_passes() -> None:
    grid = ScriptedGrid([0.0, 60.0])
    began = time.monotonic()
    replies = list(PromptGrid(grid).send_and_receive(outgoing(2), timeout=0.3))
    waited = time.monotonic() - began
    assert [r.content.config_records["r"]["i"] for r in replies] == [0]
    assert 0.3 <= waited < 5.0


def test_delegates_node_ids() -> None:
    assert list(PromptGrid(ScriptedGrid([])).get_node_ids()) == [1, 2, 3]


def test_a_custom_cap_bounds_every_delay() -> None:
    delays = list(itertools.islice(pull_delays(0.001), 5))
    assert delays == [0.001] * 5


def test_flowers_in_memory_grid_is_pulled_at_the_short_cap_and_others_at_the_long() -> None:
    from flwr.server.superlink.linkstate import LinkStateFactory
    from flwr.supercore.constant import FLWR_IN_MEMORY_DB_NAME
    from flwr.supercore.object_store import ObjectStoreFactory
    from flwr.superlink.federation import NoOpFederationManager
    from flwr.superlink.grid.inmemory_grid import InMemoryGrid

    factory = LinkStateFactory(
        FLWR_IN_MEMORY_DB_NAME, NoOpFederationManager(), ObjectStoreFactory()
    )
    in_memory = PromptGrid(InMemoryGrid(state_factory=factory))

    assert in_memory.longest_pull == IN_MEMORY_LONGEST_PULL_S == 0.005
    assert PromptGrid(ScriptedGrid([])).longest_pull == LONGEST_PULL_S == 0.25
    assert PromptGrid(ScriptedGrid([]), longest_pull=0.05).longest_pull == 0.05
    with pytest.raises(ValueError, match="`longest_pull` must be positive; got 0"):
        PromptGrid(ScriptedGrid([]), longest_pull=0)


def test_replies_on_a_short_cap_are_waited_for_at_most_the_cap_apart(monkeypatch) -> None:
    waits: list[float] = []
    real_sleep = time.sleep

    def recorded_sleep(seconds: float) -> None:
        waits.append(seconds)
        real_sleep(seconds)

    monkeypatch.setattr("fedrisk.strategies.exchange.time.sleep", recorded_sleep)
    grid = ScriptedGrid([0.0, 0.0, 0.3])
    replies = list(PromptGrid(grid, longest_pull=0.005).send_and_receive(outgoing(3), timeout=5))

    assert len(replies) == 3
    assert waits and max(waits) == 0.005  # never the networked 250 ms cap
    assert len(grid.pulls) == len(waits) + 1


# --- collect: each reply handed over as it is pulled ----------------------------------


def test_collect_stops_as_soon_as_on_reply_is_satisfied_and_names_the_unanswered() -> None:
    grid = ScriptedGrid([0.0, 0.02, 60.0])
    seen: list[int] = []

    def enough(reply: Message) -> bool:
        seen.append(reply.content.config_records["r"]["i"])
        return len(seen) == 2

    began = time.monotonic()
    got = collect(grid, outgoing(3), timeout=30, on_reply=enough)

    assert time.monotonic() - began < 5.0  # not the 60 s straggler, nor the timeout
    assert sorted(seen) == [0, 1] and len(got.replies) == 2
    assert got.stopped_early and got.unanswered == {"m2"}


def test_collect_keeps_every_reply_of_the_pull_that_satisfied_it() -> None:
    grid = ScriptedGrid([0.0, 0.0, 0.0])  # all three arrive in the first pull
    calls: list[int] = []

    got = collect(grid, outgoing(3), timeout=5, on_reply=lambda r: calls.append(1) or True)

    assert len(got.replies) == 3 and len(calls) == 3  # every arrived reply is handed over
    assert not got.stopped_early and got.unanswered == set()


def test_collect_waits_for_all_when_on_reply_is_never_satisfied_or_until_the_timeout() -> None:
    done = collect(ScriptedGrid([0.0, 0.03]), outgoing(2), timeout=5, on_reply=lambda r: False)
    assert len(done.replies) == 2 and not done.stopped_early and done.unanswered == set()

    late = collect(ScriptedGrid([0.0, 60.0]), outgoing(2), timeout=0.2, on_reply=lambda r: False)
    assert len(late.replies) == 1 and not late.stopped_early and late.unanswered == {"m1"}


def test_collect_pulls_a_grid_at_the_pace_it_states_or_its_kind_suggests() -> None:
    assert longest_pull_of(PromptGrid(ScriptedGrid([]), longest_pull=0.05)) == 0.05
    assert longest_pull_of(ScriptedGrid([])) == LONGEST_PULL_S
