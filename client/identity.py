"""The node's half of the roll call's identity proof.

The node signs the coordinator's challenge with its institution's signing key (the key
the consortium manifest lists for it), so no other node can take its place.
"""

from __future__ import annotations

from flwr.app import ConfigRecord, Context, RecordDict

from fedrisk.client.node_keys import locations, signing_key
from fedrisk.client.node_setup import run_id_of
from fedrisk.secure.signing import sign
from fedrisk.strategies import messages
from fedrisk.strategies.roll_call_identity import (
    CHALLENGE,
    IDENTITY,
    IDENTITY_LABEL,
    SIGNATURE,
    identity_statement,
)


def proof_records(query: RecordDict, context: Context, institution: str) -> dict[str, ConfigRecord]:
    """Return the roll-call reply's proof of ``institution`` (empty if none was asked).

    Raises
    ------
    fedrisk.strategies.messages.MalformedMessage
        If the challenge is not bytes.
    ValueError
        If the node has no state folder or manifest to find its signing key in.
    OSError
        If the signing key cannot be read.
    """
    if IDENTITY not in query.config_records:
        return {}
    challenge = messages.config_of(query, IDENTITY).get(CHALLENGE)
    if not isinstance(challenge, bytes):
        raise messages.MalformedMessage(
            f"`{IDENTITY}.{CHALLENGE}` must be bytes; got {type(challenge).__name__}"
        )
    state_dir, _ = locations(context, institution)
    statement = identity_statement(
        challenge=challenge,
        run_id=run_id_of(context),
        node_id=int(context.node_id),
        institution=institution,
    )
    signature = sign(signing_key(state_dir), statement, context=IDENTITY_LABEL)
    return {IDENTITY: ConfigRecord({SIGNATURE: signature})}
