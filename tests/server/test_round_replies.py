"""How the round loop sorts training replies: updates, refusals, failures, resends."""

import hashlib

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

from fedrisk.privacy.resend import ResendStatement
from fedrisk.secure.signing import generate_signing_key
from fedrisk.server.round_replies import ReplySorter
from fedrisk.strategies import messages

NODES = {11: "bank_a", 12: "bank_b", 13: "bank_c"}


def _sent() -> list[Message]:
    return [Message(RecordDict(), dst_node_id=node, message_type="train") for node in NODES]


def _update(value: float) -> RecordDict:
    return RecordDict(
        {
            messages.ARRAYS: ArrayRecord({"w": Array(np.full(3, value, np.float32))}),
            messages.METRICS: MetricRecord({"train_loss": 0.5}),
        }
    )


def _statement(institution: str, sent_sha256: str) -> ResendStatement:
    return ResendStatement(
        run_id="run-1",
        round=3,
        institution=institution,
        ledger_seq=2,
        ledger_sha256=hashlib.sha256(b"first").hexdigest(),
        sent_sha256=sent_sha256,
    ).signed(generate_signing_key())


def test_a_resend_statement_is_kept_for_the_auditor_beside_the_update() -> None:
    sent = _sent()
    contents = [_update(1.0), _update(2.0), _update(3.0)]
    digest = messages.update_digest(contents[1].array_records[messages.ARRAYS])
    statement = _statement("bank_b", digest)
    contents[1][messages.RESENT] = ConfigRecord(dict(statement.to_json().items()))
    replies = [Message(c, reply_to=s) for c, s in zip(contents, sent, strict=True)]

    sorted_replies = ReplySorter(NODES, timeout=5.0).training(sent, replies)

    assert list(sorted_replies.updates) == ["bank_a", "bank_b", "bank_c"]
    assert sorted_replies.resent == {"bank_b": statement.to_json()}
    assert sorted_replies.update_sha256["bank_b"] == digest
    assert sorted_replies.failures == {}


def test_a_malformed_resend_statement_drops_that_update_and_names_the_bank() -> None:
    sent = _sent()
    contents = [_update(1.0), _update(2.0), _update(3.0)]
    contents[2][messages.RESENT] = ConfigRecord({"round": 3})
    replies = [Message(c, reply_to=s) for c, s in zip(contents, sent, strict=True)]

    sorted_replies = ReplySorter(NODES, timeout=5.0).training(sent, replies)

    assert list(sorted_replies.updates) == ["bank_a", "bank_b"]
    assert sorted_replies.failures["bank_c"].startswith("malformed resend statement: ")
    assert "missing" in sorted_replies.failures["bank_c"]
    assert sorted_replies.resent == {} and "bank_c" not in sorted_replies.update_sha256


def test_a_missing_reply_is_a_failure_naming_the_timeout() -> None:
    sent = _sent()
    replies = [Message(_update(1.0), reply_to=sent[0])]

    sorted_replies = ReplySorter(NODES, timeout=7.0).training(sent, replies)

    assert sorted_replies.failures == {
        "bank_b": "no reply within 7 s",
        "bank_c": "no reply within 7 s",
    }
    assert list(sorted_replies.updates) == ["bank_a"] and sorted_replies.resent == {}
