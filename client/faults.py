"""Injected faults for simulations (``faults``): a node fails, lags, or misbehaves on purpose.

The mod sits between Flower and the handlers. A dropout answers with an error reply
(``NODE_UNAVAILABLE``) instead of calling the handler, so the coordinator sees what it
sees when a node is gone, and the node's state is untouched. A straggler sleeps before
the handler runs. A corrupt bank breaks the update in the handler's reply; a replaying
bank answers a training instruction with its previous round's reply, kept in the node's
``Context.state``. Deployments never install it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from flwr.app import Array, ArrayRecord, Context, Error, Message, MessageType, RecordDict
from flwr.common.constant import ErrorCode

from fedrisk.client.node_setup import node_setup
from fedrisk.conf.faults import CorruptionKind, FaultsConfig, FaultStage
from fedrisk.conf.root import settings_from_run_config
from fedrisk.strategies import messages
from fedrisk.strategies.secagg import wire

_STAGES = {
    MessageType.TRAIN: (FaultStage.train, messages.CONFIG, messages.SERVER_ROUND),
    MessageType.EVALUATE: (FaultStage.evaluate, messages.CONFIG, messages.SERVER_ROUND),
    wire.UNMASK_MESSAGE_TYPE: (FaultStage.unmask, wire.UNMASK, wire.ROUND_KEY),
    wire.CONSISTENCY_MESSAGE_TYPE: (FaultStage.consistency, wire.CONSISTENCY, wire.ROUND_KEY),
}
#: Prefix of the records in ``Context.state`` that keep a replaying bank's last reply.
_REPLAY_PREFIX = "fedrisk-fault-replay:"
#: Factor a ``huge_norm`` corruption scales the update by.
HUGE_NORM_FACTOR = 1e6


def fault_mod(
    msg: Message, context: Context, call_next: Callable[[Message, Context], Message]
) -> Message:
    """Apply the configured faults that strike this institution at this message."""
    settings = settings_from_run_config(context.run_config)
    faults = settings.faults
    stage = _STAGES.get(msg.metadata.message_type)
    if not faults.any or stage is None:
        return call_next(msg, context)
    fault_stage, record_name, round_key = stage
    record = msg.content.config_records.get(record_name)
    server_round = None if record is None else record.get(round_key)
    if not isinstance(server_round, int) or isinstance(server_round, bool):
        return call_next(msg, context)
    institution = node_setup(context).institution
    if _drops(faults, institution, fault_stage, server_round, seed=settings.seed):
        reason = f"injected dropout: {institution} at {fault_stage.value} in round {server_round}"
        return Message(Error(ErrorCode.NODE_UNAVAILABLE, reason), reply_to=msg)
    for straggler in faults.stragglers:
        if straggler.strikes(institution, fault_stage, server_round):
            time.sleep(straggler.delay)
    if fault_stage is not FaultStage.train:
        return call_next(msg, context)
    replays = any(f.strikes(institution, server_round) for f in faults.replay)
    kept = _kept_reply(context)
    if replays and kept is not None:
        return Message(content=kept, reply_to=msg)
    reply = call_next(msg, context)
    if any(f.institution == institution for f in faults.replay) and not reply.has_error():
        _keep_reply(context, reply.content)
    for fault in faults.corrupt:
        if fault.strikes(institution, server_round) and not reply.has_error():
            reply = _corrupted(msg, reply, fault.corruption)
    return reply


def _drops(
    faults: FaultsConfig, institution: str, stage: FaultStage, server_round: int, *, seed: int
) -> bool:
    return any(f.strikes(institution, stage, server_round) for f in faults.dropouts) or any(
        f.strikes(institution, stage, server_round, seed=seed) for f in faults.random_dropouts
    )


def corrupt_arrays(
    arrays: ArrayRecord, received: ArrayRecord | None, kind: CorruptionKind
) -> ArrayRecord:
    """Return a broken copy of ``arrays`` (``received`` is the global model, for huge_norm)."""
    items = [(name, np.array(array.numpy(), copy=True)) for name, array in arrays.items()]
    name, first = items[0]
    if kind is CorruptionKind.nan:
        first.flat[0] = np.nan
    elif kind is CorruptionKind.inf:
        first.flat[0] = np.inf
    elif kind is CorruptionKind.wrong_shape:
        items[0] = (name, np.ascontiguousarray(first[:-1]))
    elif kind is CorruptionKind.wrong_dtype:
        items = [(n, a.astype(np.float64)) for n, a in items]
    elif kind is CorruptionKind.huge_norm:
        if received is None:
            raise ValueError("a huge_norm corruption needs the received global model")
        reference = {n: a.numpy() for n, a in received.items()}
        items = [
            (n, (reference[n] + HUGE_NORM_FACTOR * (a - reference[n])).astype(a.dtype))
            for n, a in items
        ]
    return ArrayRecord({n: Array(a) for n, a in items})


def _corrupted(msg: Message, reply: Message, kind: CorruptionKind) -> Message:
    content = RecordDict(dict(reply.content.items()))
    received = msg.content.array_records.get(messages.ARRAYS)
    sent = content.array_records[messages.ARRAYS]
    content[messages.ARRAYS] = corrupt_arrays(sent, received, kind)
    return Message(content=content, reply_to=msg)


def _keep_reply(context: Context, content: RecordDict) -> None:
    for key in [k for k in context.state if k.startswith(_REPLAY_PREFIX)]:
        del context.state[key]
    for key, record in content.items():
        context.state[_REPLAY_PREFIX + key] = record


def _kept_reply(context: Context) -> RecordDict | None:
    kept = {
        key.removeprefix(_REPLAY_PREFIX): record
        for key, record in context.state.items()
        if key.startswith(_REPLAY_PREFIX)
    }
    return RecordDict(kept) if kept else None
