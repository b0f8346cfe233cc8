"""What a node's error reply may say: a short code and what to do, never a value or a path.

Flower turns an exception raised in a ClientApp into an error reply carrying
``str(exception)``, and fedrisk's exceptions are written for the operator who reads
them: a `fedrisk.data.errors.DataValidationError` quotes the offending cell and the
file's path, a policy error the path of the policy file. `error_mod`, the outermost mod
of the ClientApp, catches every exception of a handler (or of an inner mod), logs the
full detail in the node's own log and answers the coordinator with an error reply whose
reason holds only a code (`ErrorKind`) and a fixed sentence. Only a policy refusal
(its rule and reason, written without data values), a malformed coordinator message
(about the coordinator's own message) and a secure aggregation abort (stage, peer and
rule) are quoted, since they describe what the coordinator sent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from enum import Enum

from flwr.app import Context, Error, Message
from flwr.common.constant import ErrorCode

from fedrisk.client.policy import PolicyError
from fedrisk.client.policy_rules import PolicyRefusal
from fedrisk.conf.root import ConfigError
from fedrisk.data.errors import DataValidationError
from fedrisk.privacy.budget import PrivacyBudgetExceeded, PrivacyConfigError
from fedrisk.privacy.calibration import PrivacyPlanError
from fedrisk.strategies import messages
from fedrisk.strategies.secagg.wire import ProtocolAbort

_LOG = logging.getLogger(__name__)
#: The longest quoted text of a coordinator-facing exception (policy, message, protocol).
_MAX_QUOTED = 300
#: Modules whose exceptions concern the bank's privacy ledger.
_LEDGER_MODULES = "fedrisk.privacy.ledger"


class ErrorKind(str, Enum):
    """The code an error reply carries, one per kind of failure at the node."""

    data_validation = "data-validation"
    policy = "policy"
    policy_file = "policy-file"
    ledger = "ledger"
    config = "config"
    privacy_budget = "privacy-budget"
    privacy_plan = "privacy-plan"
    message = "message"
    secure_aggregation = "secure-aggregation"
    internal = "internal"


#: What the coordinator is told for each kind whose exception text stays at the node.
_ADVICE = {
    ErrorKind.data_validation: (
        "the bank's table failed validation; the bank's operator finds the file, column "
        "and row in the node's log"
    ),
    ErrorKind.policy_file: (
        "the bank's policy file is missing or invalid; the bank's operator finds the file "
        "and field in the node's log"
    ),
    ErrorKind.ledger: (
        "the bank's privacy ledger could not be read, verified or written; the node "
        "releases nothing until its operator fixes it (details in the node's log)"
    ),
    ErrorKind.config: "the run's configuration is not valid at this node (details in its log)",
    ErrorKind.privacy_budget: "the bank's privacy budget does not allow this (see its ledger)",
    ErrorKind.privacy_plan: "the node cannot plan DP-SGD noise for this run (details in its log)",
    ErrorKind.internal: "the node failed unexpectedly; its operator finds why in the node's log",
}


def error_mod(
    msg: Message, context: Context, call_next: Callable[[Message, Context], Message]
) -> Message:
    """Answer an exception anywhere below with a coded error reply; log the detail here."""
    try:
        return call_next(msg, context)
    except Exception as err:  # every failure becomes a sanitised reply
        kind, reason = error_reason(err)
        _LOG.error(
            "%s message failed at this node (the coordinator is told only [%s]): %s",
            msg.metadata.message_type,
            kind.value,
            err,
            exc_info=err,
        )
        return Message(Error(ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason), reply_to=msg)


def error_reason(err: BaseException) -> tuple[ErrorKind, str]:
    """Return the code of ``err`` and the reason an error reply may carry for it."""
    kind = _kind_of(err)
    if kind is ErrorKind.policy and isinstance(err, PolicyRefusal):
        text = f"policy rule `{err.rule}`: {err.reason}"
    elif kind in (ErrorKind.message, ErrorKind.secure_aggregation):
        text = str(err)
    else:
        text = _ADVICE[kind]
    if len(text) > _MAX_QUOTED:
        text = text[: _MAX_QUOTED - 1] + "…"
    return kind, f"fedrisk node error [{kind.value}]: {text}"


def _kind_of(err: BaseException) -> ErrorKind:
    if isinstance(err, DataValidationError):
        return ErrorKind.data_validation
    if isinstance(err, PolicyRefusal):
        return ErrorKind.policy
    if isinstance(err, PolicyError):
        return ErrorKind.policy_file
    if type(err).__module__.startswith(_LEDGER_MODULES):
        return ErrorKind.ledger
    if isinstance(err, PrivacyBudgetExceeded):
        return ErrorKind.privacy_budget
    if isinstance(err, PrivacyPlanError):
        return ErrorKind.privacy_plan
    if isinstance(err, ConfigError | PrivacyConfigError):
        return ErrorKind.config
    if isinstance(err, messages.MalformedMessage):
        return ErrorKind.message
    if isinstance(err, ProtocolAbort):
        return ErrorKind.secure_aggregation
    return ErrorKind.internal
