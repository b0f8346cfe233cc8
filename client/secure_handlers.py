"""The node's secure-aggregation message handlers and its protocol-abort replies."""

from __future__ import annotations

from collections.abc import Callable

from flwr.app import Context, Message, RecordDict

from fedrisk.client import secagg_node
from fedrisk.client.node_keys import locations
from fedrisk.client.node_setup import NodeSetup, node_record, node_setup, run_id_of
from fedrisk.client.policy_rules import threshold_floor
from fedrisk.client.revealed_rounds import note_revealed, revealed
from fedrisk.conf.privacy import PrivacyMode
from fedrisk.strategies import messages
from fedrisk.strategies.secagg import wire
from fedrisk.strategies.secagg.wire import ROUND_KEY, UNMASK, ProtocolAbort, Stage


def abort_reply(msg: Message, setup: NodeSetup, err: ProtocolAbort) -> Message:
    """Reply that this institution stopped the protocol, and why."""
    content = RecordDict(
        {wire.ABORT: secagg_node.abort_record(err), messages.NODE: node_record(setup)}
    )
    return Message(content=content, reply_to=msg)


def as_abort(err: Exception, stage: Stage) -> ProtocolAbort:
    """Turn a malformed-message error into a protocol abort at ``stage``."""
    return err if isinstance(err, ProtocolAbort) else ProtocolAbort(stage, str(err))


def check_rows(setup: NodeSetup) -> None:
    """Refuse, before training, to weigh more rows than the public ``secagg.max_rows``.

    Raises
    ------
    ProtocolAbort
        At stage ``train`` if the institution has more training rows than allowed.
    """
    limit = setup.settings.secagg.max_rows
    if setup.settings.privacy.mode is not PrivacyMode.central and setup.data.n_train > limit:
        raise ProtocolAbort(
            Stage.train,
            f"{setup.institution} has {setup.data.n_train} training rows; `secagg.max_rows` "
            f"must be at least that; got {limit}",
        )


def unmask(msg: Message, context: Context) -> Message:
    """Reveal this institution's part of the round's unmasking.

    The round is noted on the node's disk before anything is revealed (see
    `fedrisk.client.revealed_rounds`), so a resumed run never gets it again.
    """

    def step(setup: NodeSetup) -> RecordDict:
        content = secagg_node.unmask(
            msg,
            context,
            secagg=setup.settings.secagg,
            institution=setup.institution,
            min_threshold_fraction=threshold_floor(setup.policy),
        )
        state_dir, _ = locations(context, setup.institution)
        server_round = int(messages.number(msg.content.config_records[UNMASK], ROUND_KEY))
        note_revealed(state_dir, run_id=run_id_of(context), server_round=server_round)
        return content

    return _answer(msg, context, step)


def check_not_revealed(context: Context, institution: str, server_round: int) -> None:
    """Refuse to contribute to a round whose unmasking this node answered before a crash.

    Raises
    ------
    ProtocolAbort
        At the training stage, if ``server_round`` of this run was already unmasked with
        this institution's shares.
    """
    state_dir, _ = locations(context, institution)
    run_id = run_id_of(context)
    if server_round in revealed(state_dir, run_id=run_id):
        raise ProtocolAbort(
            Stage.train,
            f"{institution} already answered the unmasking of round {server_round} of "
            f"run {run_id} (before a crash); sending it again could expose its update, so it "
            "sits this round out",
        )


def consistency(msg: Message, context: Context) -> Message:
    """Sign the survivor set of the round (the consistency round)."""
    return _answer(
        msg,
        context,
        lambda setup: secagg_node.consistency(
            msg,
            context,
            secagg=setup.settings.secagg,
            institution=setup.institution,
            min_threshold_fraction=threshold_floor(setup.policy),
        ),
    )


def key_shares(msg: Message, context: Context) -> Message:
    """Hand out sealed shares of this institution's round keys (once per advertisement)."""
    return _answer(
        msg,
        context,
        lambda setup: secagg_node.key_shares(msg, context, institution=setup.institution),
    )


def _answer(msg: Message, context: Context, step: Callable[[NodeSetup], RecordDict]) -> Message:
    """Run one protocol step for this node; a protocol abort becomes an abort reply."""
    setup = node_setup(context)
    try:
        content = step(setup)
    except ProtocolAbort as err:
        return abort_reply(msg, setup, err)
    return Message(content=content, reply_to=msg)
