"""One end-of-run query to every bank: answers, refusals, silence and stray replies."""

from __future__ import annotations

from collections.abc import Iterable

from flwr.app import ConfigRecord, Message, RecordDict

from fedrisk.server.bank_query import ask_every_bank
from fedrisk.strategies import messages

NODE_OF = {"bank_a": 7, "bank_b": 8, "bank_c": 9}
STRAY = 99


class EchoGrid:
    """Nodes 7 and 8 answer with their node id; 9 stays silent; a stranger answers too."""

    def __init__(self) -> None:
        self.sent: list[Message] = []

    def send_and_receive(
        self, messages_: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        replies = []
        for message in [*messages_]:
            self.sent.append(message)
            if message.metadata.dst_node_id == 9:
                continue
            for src in (message.metadata.dst_node_id, STRAY):
                content = RecordDict({"echo": ConfigRecord({"node": src})})
                reply = Message(content=content, reply_to=message)
                reply.metadata.__dict__["_src_node_id"] = src
                replies.append(reply)
        return replies


def read(reply: Message, institution: str) -> tuple[str, int]:
    node = reply.content.config_records["echo"]["node"]
    if institution == "bank_b":
        raise messages.MalformedMessage(f"{institution} sent node {node}")
    assert isinstance(node, int)
    return institution, node


def test_every_bank_is_asked_once_and_ends_up_answered_or_failed() -> None:
    grid = EchoGrid()
    content = RecordDict({messages.LEDGER: ConfigRecord()})

    answers, failures = ask_every_bank(
        grid,  # type: ignore[arg-type]
        NODE_OF,
        content,
        messages.LEDGER_MESSAGE_TYPE,
        read,
        timeout=2.5,
    )

    assert sorted(m.metadata.dst_node_id for m in grid.sent) == [7, 8, 9]
    assert {m.metadata.message_type for m in grid.sent} == {messages.LEDGER_MESSAGE_TYPE}
    assert all(m.content is content for m in grid.sent)
    assert answers == {"bank_a": ("bank_a", 7)}
    assert failures == {"bank_b": "bank_b sent node 8", "bank_c": "no reply within 2.5 s"}
    assert list(failures) == ["bank_b", "bank_c"]
