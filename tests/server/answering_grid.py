"""A stand-in for Flower's Grid whose nodes answer in-process, one reply per message."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from flwr.app import Message

#: Builds a node's reply to one message; ``None`` means the node stays silent.
Answer = Callable[[Message], Message | None]


class AnsweringGrid:
    """Each node answers with what ``answers[node]`` builds (override :meth:`answer`).

    Every message sent is kept in ``sent``; every reply carries the node it was sent
    to as its source, as Flower's grids do.
    """

    def __init__(self, answers: Mapping[int, Answer] | None = None) -> None:
        self.answers = dict(answers or {})
        self.sent: list[Message] = []

    def answer(self, message: Message) -> Message | None:
        """Return the reply of the node ``message`` is addressed to."""
        return self.answers[message.metadata.dst_node_id](message)

    def send_and_receive(
        self, messages_: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        replies = []
        for message in messages_:
            self.sent.append(message)
            reply = self.answer(message)
            if reply is not None:
                reply.metadata.__dict__["_src_node_id"] = message.metadata.dst_node_id
                replies.append(reply)
        return replies
