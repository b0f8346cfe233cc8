"""Hand the coordinator this institution's signed privacy ledger (``query.ledger``).

The ledger is the institution's own record of the privacy it spent on this population of customers,
signed with its key; the coordinator keeps a verified copy in the run directory so an
auditor can check the run from that folder alone. It holds privacy parameters and
digests of what the node sent, never rows.
"""

from __future__ import annotations

from flwr.app import ConfigRecord, Context, Message, RecordDict

from fedrisk.client.node_keys import locations
from fedrisk.client.node_setup import node_setup
from fedrisk.client.private_round import ledger_file
from fedrisk.privacy.ledger_reader import read_ledger_bytes
from fedrisk.strategies import messages


def ledger(msg: Message, context: Context) -> Message:
    """Reply with the ledger file of this institution's dataset (empty if none yet)."""
    setup = node_setup(context)
    state_dir, _ = locations(context, setup.institution)
    path = ledger_file(state_dir, institution=setup.institution, policy=setup.policy)
    record = ConfigRecord(
        {messages.LEDGER_FILE: path.name, messages.LEDGER_CONTENT: read_ledger_bytes(path)}
    )
    return Message(content=RecordDict({messages.LEDGER: record}), reply_to=msg)
