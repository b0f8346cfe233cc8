"""Injected dropouts for simulations (``faults.dropouts``): a node fails on purpose.

The mod answers with an error reply (``NODE_UNAVAILABLE``) instead of calling the
handler, so the coordinator sees what it sees when a node is gone, and the node's state
is untouched. Deployments never install it.
"""

from __future__ import annotations

from collections.abc import Callable

from flwr.app import Context, Error, Message, MessageType
from flwr.common.constant import ErrorCode

from fedrisk.client.node_setup import node_setup
from fedrisk.conf.faults import FaultStage
from fedrisk.conf.root import settings_from_run_config
from fedrisk.strategies import messages
from fedrisk.strategies.secagg import wire

_STAGES = {
    MessageType.TRAIN: (FaultStage.train, messages.CONFIG, messages.SERVER_ROUND),
    MessageType.EVALUATE: (FaultStage.evaluate, messages.CONFIG, messages.SERVER_ROUND),
    wire.UNMASK_MESSAGE_TYPE: (FaultStage.unmask, wire.UNMASK, wire.ROUND_KEY),
    wire.CONSISTENCY_MESSAGE_TYPE: (FaultStage.consistency, wire.CONSISTENCY, wire.ROUND_KEY),
}


def fault_mod(
    msg: Message, context: Context, call_next: Callable[[Message, Context], Message]
) -> Message:
    """Reply with an error when a configured dropout strikes this institution now."""
    settings = settings_from_run_config(context.run_config)
    stage = _STAGES.get(msg.metadata.message_type)
    if settings.faults.dropouts and stage is not None:
        fault_stage, record_name, round_key = stage
        record = msg.content.config_records.get(record_name)
        value = None if record is None else record.get(round_key)
        if isinstance(value, int):
            institution = node_setup(context).institution
            for fault in settings.faults.dropouts:
                if fault.strikes(institution, fault_stage, value):
                    reason = (
                        f"injected dropout: {institution} at {fault_stage.value} in round {value}"
                    )
                    return Message(Error(ErrorCode.NODE_UNAVAILABLE, reason), reply_to=msg)
    return call_next(msg, context)
