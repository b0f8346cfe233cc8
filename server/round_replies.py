"""How a round's replies are sorted: refusals, failures, protocol aborts, privacy figures.

The round loop sends and receives; everything it learns from one reply is read here, so
per-reply logic (a new figure to record, a new way for a reply to fail) has one place.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from flwr.app import Message

from fedrisk.privacy.resend import ResendInvalid, ResendStatement
from fedrisk.strategies import messages
from fedrisk.strategies.secagg import wire
from fedrisk.strategies.secagg.strategy import SecureAggregation
from fedrisk.strategies.secagg.wire import ProtocolAbort

#: Privacy figures an institution reports in its reply's MetricRecord.
PRIVACY_FIGURES = (
    messages.EPSILON,
    messages.EPSILON_BUDGET,
    messages.DELTA,
    messages.NOISE_MULTIPLIER,
)


@dataclass
class TrainingReplies:
    """What the institutions answered to one training round, by institution.

    Attributes
    ----------
    refused : dict[str, str]
        Institutions that declined to train (their privacy budget), with their reason.
    failures : dict[str, str]
        Institutions whose reply is missing, an error, carries no update, or aborted
        the secure aggregation protocol, with what went wrong.
    updates : dict[str, Message]
        Replies that carry an update, in institution order (not yet validated).
    update_sha256 : dict[str, str]
        Digest of each update in ``updates``.
    privacy : dict[str, dict[str, float]]
        Privacy figures each update's institution reported. A rejected update was
        still released, so its privacy is spent all the same.
    resent : dict[str, dict[str, str | int]]
        Signed resend statements (`fedrisk.privacy.resend.ResendStatement`, as JSON) of
        institutions that sent a round released before a crash again, masked anew; kept
        in ``metrics.jsonl`` for the auditor.
    """

    refused: dict[str, str] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    updates: dict[str, Message] = field(default_factory=dict)
    update_sha256: dict[str, str] = field(default_factory=dict)
    privacy: dict[str, dict[str, float]] = field(default_factory=dict)
    resent: dict[str, dict[str, str | int]] = field(default_factory=dict)

    def reasons(self, rejected: Mapping[str, str]) -> list[str]:
        """Return why institutions gave no valid update, given those ``rejected``.

        Refusals first, then failures, then rejected updates, one phrase each.
        """
        reasons = [f"{k} refused: {v}" for k, v in self.refused.items()]
        reasons += [f"{k}: {v}" for k, v in self.failures.items()]
        reasons += [f"{k} rejected: {v}" for k, v in rejected.items()]
        return reasons


class ReplySorter:
    """Sort the replies of a round by institution and by what they say.

    Parameters
    ----------
    institution_of : Mapping[int, str]
        Institution name by Flower node id (the roll call's nodes).
    timeout : float
        Seconds the loop waits for replies (named in a missing reply's failure).
    secure : SecureAggregation | None (default: None)
        The secure aggregation strategy, if the run uses one: it receives the
        re-advertisements of restarted nodes, and replies may carry protocol aborts.
    """

    def __init__(
        self,
        institution_of: Mapping[int, str],
        *,
        timeout: float,
        secure: SecureAggregation | None = None,
    ) -> None:
        self.institution_of = dict(institution_of)
        self._timeout = timeout
        self._secure = secure

    def name(self, reply: Message) -> str:
        """Return the institution that sent ``reply``."""
        return self.institution_of[reply.metadata.src_node_id]

    def selected(self, sent: Iterable[Message]) -> list[str]:
        """Return the institutions the instructions ``sent`` go to, sorted."""
        return sorted(self.institution_of[m.metadata.dst_node_id] for m in sent)

    def in_institution_order(self, replies: Iterable[Message]) -> list[Message]:
        """Return the replies of known institutions, sorted by institution."""
        known = [r for r in replies if r.metadata.src_node_id in self.institution_of]
        return sorted(known, key=self.name)

    def training(self, sent: Iterable[Message], replies: list[Message]) -> TrainingReplies:
        """Sort a training round's replies to the instructions ``sent``.

        Under secure aggregation this registers re-advertisements first (see
        `protocol_aborts`).
        """
        sent = list(sent)
        aborted = self.protocol_aborts(replies)
        refused = {
            self.name(r): reason
            for r in replies
            if not r.has_error() and (reason := refusal(r)) is not None
        }
        answered = [r for r in replies if not r.has_error() and self.name(r) not in refused]
        ok = [r for r in answered if messages.ARRAYS in r.content.array_records]
        failures = self.failures(sent, replies)
        failures.update({self.name(r): "reply carried no update" for r in answered if r not in ok})
        failures.update(aborted)
        resent: dict[str, dict[str, str | int]] = {}
        for reply in list(ok):
            try:
                statement = resend_statement(reply)
            except ResendInvalid as err:
                failures[self.name(reply)] = f"malformed resend statement: {err}"
                ok.remove(reply)
                continue
            if statement is not None:
                resent[self.name(reply)] = statement.to_json()
        privacy = {self.name(r): figures for r in ok if (figures := privacy_figures(r))}
        return TrainingReplies(
            refused=refused,
            failures=failures,
            updates={self.name(r): r for r in ok},
            update_sha256={
                self.name(r): messages.update_digest(messages.arrays_of(r.content)) for r in ok
            },
            privacy=privacy,
            resent=resent,
        )

    def failures(self, sent: Iterable[Message], replies: Iterable[Message]) -> dict[str, str]:
        """Return error replies and unanswered instructions by institution, sorted."""
        replies = list(replies)
        failures = {
            self.name(r): f"error: {messages.error_summary(r.error.reason)}"
            for r in replies
            if r.has_error()
        }
        answered = {r.metadata.src_node_id for r in replies}
        for message in sent:
            if message.metadata.dst_node_id not in answered:
                name = self.institution_of[message.metadata.dst_node_id]
                failures[name] = f"no reply within {self._timeout:g} s"
        return dict(sorted(failures.items()))

    def protocol_aborts(self, replies: Iterable[Message]) -> dict[str, str]:
        """Return protocol aborts by institution; register re-advertisements.

        A node that restarted re-advertises its keys in its reply; the secure
        aggregation strategy takes the new advertisement or rejects it, and a rejected
        one counts as an abort. Without secure aggregation there is nothing to abort.
        """
        secure = self._secure
        if secure is None:
            return {}
        aborted: dict[str, str] = {}
        for reply in replies:
            if reply.has_error():
                continue
            records = reply.content.config_records
            if wire.ADVERT in records:
                advert = records[wire.ADVERT].get(wire.ADVERT_KEY)
                try:
                    secure.register(self.name(reply), reply.metadata.src_node_id, advert)
                except ProtocolAbort as err:
                    aborted[self.name(reply)] = f"re-advertisement rejected: {err.reason}"
                    continue
            if wire.ABORT in records:
                reason = records[wire.ABORT].get(wire.REASON_KEY)
                peer = records[wire.ABORT].get(wire.PEER_KEY)
                aborted[self.name(reply)] = f"secure aggregation: {reason!s}" + (
                    f" (peer {peer!s})" if peer else ""
                )
        return aborted


def refusal(reply: Message) -> str | None:
    """Return why ``reply`` declines to train, or None if it does not."""
    if messages.REFUSAL not in reply.content.config_records:
        return None
    return messages.text(
        messages.config_of(reply.content, messages.REFUSAL), messages.REFUSAL_REASON
    )


def privacy_figures(reply: Message) -> dict[str, float]:
    """Return the privacy figures ``reply`` reports (see `PRIVACY_FIGURES`)."""
    metrics = messages.metrics_of(reply.content)
    return {key: messages.number(metrics, key) for key in PRIVACY_FIGURES if key in metrics}


def resend_statement(reply: Message) -> ResendStatement | None:
    """Return the resend statement ``reply`` carries, or None.

    Raises
    ------
    ResendInvalid
        If the statement is malformed (its signature is the auditor's to verify).
    """
    record = reply.content.config_records.get(messages.RESENT)
    return None if record is None else ResendStatement.from_json(dict(record))
