"""Ask every institution one end-of-run question and read each answer.

The end-of-run queries (ledgers, risk report, explanations) share one exchange: the
coordinator sends the same content to every institution that joined the run, waits
up to ``timeout`` seconds, reads each reply with a query-specific function and keeps,
per institution, either what that function returned or why there is nothing (no reply
in time, or the reply did not read).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

from flwr.app import Message, RecordDict
from flwr.serverapp import Grid

from fedrisk.strategies import messages

T = TypeVar("T")


def ask_every_bank(
    grid: Grid,
    node_of: Mapping[str, int],
    content: RecordDict,
    message_type: str,
    read: Callable[[Message, str], T],
    *,
    timeout: float,
) -> tuple[dict[str, T], dict[str, str]]:
    """Send ``content`` to every institution and read the replies with ``read``.

    Parameters
    ----------
    grid : Grid
        The run's grid.
    node_of : Mapping[str, int]
        Node id of every institution that joined the run.
    content : RecordDict
        What every institution is sent (the same payload for all, as Flower's
        strategies do).
    message_type : str
        The query's message type, e.g. ``query.ledger``.
    read : Callable[[Message, str], T]
        Reads one reply, given the institution's name; raises
        :class:`~fedrisk.strategies.messages.MalformedMessage` for a reply that is an
        error or does not read.
    timeout : float
        Seconds to wait for the replies.

    Returns
    -------
    tuple[dict[str, T], dict[str, str]]
        ``answers`` (institution → what ``read`` returned, in reply order) and
        ``failures`` (institution → one-line reason, in ``node_of`` order): every
        institution is in exactly one of the two. Replies from nodes outside
        ``node_of`` are ignored.
    """
    institution_of = {node: name for name, node in node_of.items()}
    replies = grid.send_and_receive(
        [
            Message(content=content, dst_node_id=node, message_type=message_type)
            for node in institution_of
        ],
        timeout=timeout,
    )
    answers: dict[str, T] = {}
    failures = {name: f"no reply within {timeout:g} s" for name in node_of}
    for reply in replies:
        name = institution_of.get(reply.metadata.src_node_id)
        if name is None:
            continue
        try:
            answers[name] = read(reply, name)
        except messages.MalformedMessage as err:
            answers.pop(name, None)
            failures[name] = str(err)
        else:
            failures.pop(name, None)
    return answers, failures
