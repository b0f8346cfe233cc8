"""Injected dropouts for simulations (``faults.dropouts``): a node fails on purpose.

The mod raises before the handler runs, so Flower sends the coordinator an error reply
exactly as for a crashed ClientApp; the node's state is untouched. Deployments never
install it.
"""

from __future__ import annotations

from collections.abc import Callable

from flwr.app import Context, Message, MessageType

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


class InjectedDropout(RuntimeError):
    """A configured fault made this node drop out."""


def fault_mod(
    msg: Message, context: Context, call_next: Callable[[Message, Context], Message]
) -> Message:
    """Fail the message when a configured dropout strikes this institution now.

    Raises
    ------
    InjectedDropout
        When ``faults.dropouts`` names this institution, stage and round.
    """
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
                    raise InjectedDropout(
                        f"injected dropout: {institution} at {fault_stage.value} in round {value}"
                    )
    return call_next(msg, context)
