"""Names on the wire of fedrisk's SecAgg+: record keys, labels and protocol errors.

Every protocol record carries ``version``, ``run-tag`` and ``round``; a record whose
version, run or round is not the one expected is rejected (this is what makes a replayed
message from another run or round useless). Keys below are the only ones either side
reads.
"""

from __future__ import annotations

from enum import Enum

from fedrisk.strategies.messages import ARRAYS

PROTOCOL_NAME = "fedrisk-secagg+"
PROTOCOL_VERSION = 1

#: Message type of the unmask round (a Flower ``query`` with a custom action).
UNMASK_MESSAGE_TYPE = "query.secagg_unmask"
#: Message type of the consistency round.
CONSISTENCY_MESSAGE_TYPE = "query.secagg_consistency"
#: Message type of the once-per-key exchange that hands out shares of round keys.
KEYS_MESSAGE_TYPE = "query.secagg_keys"

# Record names (keys of a message's RecordDict).
SETUP = "secagg-setup"  # roll call query: run tag and salt
ADVERT = "secagg-advert"  # roll call reply / re-advertisement: the signed advertisement
ROUND = "secagg-round"  # train config: participants of the round
PEER_ADVERTS = "secagg-peer-adverts"  # train config: advertisements the node has not seen
MASKED = ARRAYS  # train reply ArrayRecord holding only the masked vector
SHARES = "secagg-shares"  # train reply: sealed self-mask shares, one per neighbour
UNMASK = "secagg-unmask"  # unmask request
REVEAL = "secagg-reveal"  # unmask reply
CONSISTENCY = "secagg-consistency"  # consistency request / reply
ABORT = "secagg-abort"  # any reply: the institution stopped the protocol, and why
KEYS = "secagg-keys"  # key-share request (with ADVERTS) / reply (sealed round-key shares)
ADVERTS = "secagg-adverts"  # key-share request: every advertisement of the run

# Keys inside those records.
VERSION_KEY = "version"
RUN_TAG_KEY = "run-tag"
SALT_KEY = "salt"
ROUND_KEY = "round"
INSTITUTION_KEY = "institution"
PARTICIPANTS_KEY = "participants"  # list[str] institutions, aligned with NODE_IDS_KEY
NODE_IDS_KEY = "node-ids"
SURVIVORS_KEY = "survivors"
DROPPED_KEY = "dropped"
ADVERT_KEY = "advert"
VECTOR_KEY = "vector"
SHARE_PREFIX = "share:"  # + recipient (train reply) or sender (unmask request)
REVEALED_SHARE_PREFIX = "share-of:"  # + owner of the self-mask
KEY_SHARE_PREFIX = "key-share:"  # + owner [+ ":" + round] of a sealed round-key share
REVEALED_KEY_PREFIX = "key-share-of:"  # + dropped owner of the round key
SIGNATURE_PREFIX = "signature:"  # + signer (consistency round)
STAGE_KEY = "stage"
REASON_KEY = "reason"
PEER_KEY = "peer"
RULE_KEY = "rule"

# Domain-separation labels (signatures, AEAD associated data, public graph seed).
ADVERT_CONTEXT = b"fedrisk/secagg-advertisement/v1"
CONSISTENCY_CONTEXT = b"fedrisk/secagg-consistency/v1"
SHARE_AAD_LABEL = b"fedrisk/secagg-share/v1"
SELF_MASK_SHARE = b"self-mask"  # kind of share in its associated data
ROUND_KEY_SHARE = b"round-key"
STATE_AAD_LABEL = b"fedrisk/secagg-node-state/v1"
GRAPH_LABEL = b"fedrisk/secagg-graph/v1"


class Stage(str, Enum):
    """Stages of one run of the protocol."""

    advertise = "advertise"
    keys = "keys"
    train = "train"
    consistency = "consistency"
    unmask = "unmask"


class Rule(str, Enum):
    """Rules by which a bank refuses to go on; named in its `ProtocolAbort`."""

    #: The run's threshold is below the bank's own minimum (its node policy).
    min_threshold = "secagg.min_threshold"
    #: Fewer of the bank's share holders are in the survivor set than its threshold.
    survivor_threshold = "unmask.survivors-below-threshold"
    #: Fewer survivors signed the survivor set the bank is shown than the quorum.
    signature_quorum = "consistency.signature-quorum"
    #: A signature over another survivor set, or from a non-survivor.
    consistent_set = "consistency.one-survivor-set"


class ProtocolAbort(Exception):
    """A party stopped the protocol; the message names the stage and, if known, the peer.

    Parameters
    ----------
    stage : Stage
        Where the protocol stopped.
    reason : str
        What went wrong, in one sentence.
    peer : str | None (default: None)
        The institution at fault, when one is identified.
    rule : Rule | None (default: None)
        The security rule by which a bank refused, when the abort is a refusal.
    """

    def __init__(
        self, stage: Stage, reason: str, *, peer: str | None = None, rule: Rule | None = None
    ) -> None:
        self.stage = stage
        self.peer = peer
        self.reason = reason
        self.rule = rule
        who = f" (peer {peer})" if peer else ""
        by = f" [rule {rule.value}]" if rule else ""
        super().__init__(f"secure aggregation aborted at stage {stage.value}{who}{by}: {reason}")
