"""The consistency round (Bonawitz et al., CCS 2017, the active-adversary variant).

Before anyone reveals a share, every survivor signs the statement "round ``r`` of run
``t``: these nodes sent masked vectors, these did not" with its Ed25519 key from the
manifest. The unmask request carries the signatures; an institution reveals only if at
least a quorum of survivors (``RoundInfo.signature_quorum``: the threshold on the
complete graph) signed the very statement it signed itself, and no signature in the
request is over another set. A coordinator that shows different survivor sets to
different institutions is then caught before it can collect a self-mask and the
pairwise seeds of the same institution, unless enough banks collude with it to sign
both sets (see `fedrisk.conf.secagg.SecAggConfig` for the exact bound).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from flwr.app import ConfigRecord, Message, RecordDict
from flwr.serverapp import Grid

from fedrisk.secure.signing import SignatureInvalid, verify_signature
from fedrisk.strategies.secagg.round_info import RoundInfo, check_header, header
from fedrisk.strategies.secagg.unmasking import RoundUnmasker
from fedrisk.strategies.secagg.wire import (
    CONSISTENCY,
    CONSISTENCY_CONTEXT,
    CONSISTENCY_MESSAGE_TYPE,
    DROPPED_KEY,
    SIGNATURE_PREFIX,
    SURVIVORS_KEY,
    ProtocolAbort,
    Rule,
    Stage,
)


def statement(info: RoundInfo, *, survivors: Sequence[int]) -> bytes:
    """Return the bytes every survivor signs: run tag, round, survivors and dropped, sorted."""
    tag = info.run_tag.encode("utf-8")
    alive = sorted(survivors)
    gone = sorted(set(info.institution_of) - set(alive))
    return (
        struct.pack(">H", len(tag))
        + tag
        + struct.pack(">III", info.round, len(alive), len(gone))
        + b"".join(struct.pack(">Q", node) for node in alive + gone)
    )


def collect_signatures(
    grid: Grid, unmasker: RoundUnmasker, *, timeout: float
) -> tuple[dict[str, bytes], list[str]]:
    """Ask every survivor to sign the survivor set.

    Returns
    -------
    tuple[dict[str, bytes], list[str]]
        ``signature:<institution>`` entries to put in each unmask request, and the
        survivors that did not sign.
    """
    info = unmasker.info
    request = header(run_tag=info.run_tag, round=info.round)
    request[SURVIVORS_KEY] = unmasker.survivors
    request[DROPPED_KEY] = unmasker.dropped
    messages = [
        Message(
            content=RecordDict({CONSISTENCY: request}),
            dst_node_id=node,
            message_type=CONSISTENCY_MESSAGE_TYPE,
        )
        for node in unmasker.survivors
    ]
    signatures: dict[str, bytes] = {}
    for answer in grid.send_and_receive(messages, timeout=timeout):
        node = answer.metadata.src_node_id
        if answer.has_error() or node not in unmasker.survivors:
            continue
        record = answer.content.config_records.get(CONSISTENCY)
        name = info.institution_of[node]
        signature = None if record is None else record.get(SIGNATURE_PREFIX + name)
        if isinstance(signature, bytes):
            signatures[SIGNATURE_PREFIX + name] = signature
    signed = {key[len(SIGNATURE_PREFIX) :] for key in signatures}
    silent = [
        info.institution_of[n] for n in unmasker.survivors if info.institution_of[n] not in signed
    ]
    return signatures, silent


def check_signatures(
    request: ConfigRecord,
    *,
    info: RoundInfo,
    survivors: Sequence[int],
    signers: Mapping[str, Ed25519PublicKey],
    quorum: int,
) -> None:
    """Check an unmask request's signatures before revealing anything.

    Every signature in the request must be a survivor's, over exactly ``survivors``;
    at least ``quorum`` distinct survivors must have signed.

    Parameters
    ----------
    quorum : int
        Signatures needed: at least ``info.signature_quorum`` (the caller may ask for
        more, e.g. a bank's own minimum threshold).

    Raises
    ------
    ProtocolAbort
        At stage ``consistency``: rule ``consistent_set`` if a signature does not verify
        over this survivor set (naming its signer) or comes from a non-survivor; rule
        ``signature_quorum`` if fewer than ``quorum`` survivors signed.
    """
    check_header(request, Stage.consistency, run_tag=info.run_tag, round=info.round)
    needed = max(quorum, info.signature_quorum)
    message = statement(info, survivors=survivors)
    alive = {info.institution_of[n] for n in survivors}
    valid = 0
    for key, signature in request.items():
        if not key.startswith(SIGNATURE_PREFIX):
            continue
        signer = key[len(SIGNATURE_PREFIX) :]
        if signer not in alive or not isinstance(signature, bytes):
            raise ProtocolAbort(
                Stage.consistency,
                "signature from a non-survivor",
                peer=signer,
                rule=Rule.consistent_set,
            )
        try:
            verify_signature(signers[signer], signature, message, context=CONSISTENCY_CONTEXT)
        except SignatureInvalid:
            raise ProtocolAbort(
                Stage.consistency,
                "signed a different survivor set",
                peer=signer,
                rule=Rule.consistent_set,
            ) from None
        valid += 1
    if valid < needed:
        raise ProtocolAbort(
            Stage.consistency,
            f"only {valid} survivors signed the survivor set (need {needed})",
            rule=Rule.signature_quorum,
        )
