"""The end-of-run risk query (``query.risk``): its message type and fairness record.

At the end of a run the coordinator sends the final global model to every institution;
each answers with the risk metrics of that model on its own validation rows (a
MetricRecord, as in federated evaluation) and, when the schema names protected
attributes, with four decision counts per group of each attribute (a ConfigRecord).
No row, score or label leaves the node. Under secure aggregation counts would reveal the
bank's row count, which the protocol keeps from the coordinator, so the bank sends only
its own two gaps per attribute (:data:`FAIRNESS_GAPS`) and no row count.
"""

from __future__ import annotations

from flwr.app import ConfigRecord

from fedrisk.models.group_counts import COUNT_FIELDS, GroupCounts
from fedrisk.strategies.messages import MalformedMessage

RISK_MESSAGE_TYPE = "query.risk"
#: RecordDict key of the fairness counts in a reply.
FAIRNESS = "fairness"
#: RecordDict key of a bank's own fairness gaps (MetricRecord), sent instead of counts
#: under secure aggregation.
FAIRNESS_GAPS = "fairness-gaps"
#: The gaps sent, per attribute, as ``<attribute>/<gap>``.
GAP_KEYS = ("demographic_parity_difference", "equal_opportunity_difference")
#: Separates the attribute from the field in a fairness record's keys.
_SEP = "/"


def counts_record(counts: dict[str, GroupCounts]) -> ConfigRecord:
    """Encode each protected attribute's group counts as ``<attribute>/<field>`` lists."""
    record = ConfigRecord()
    for attribute, part in counts.items():
        for field, values in part.as_dict().items():
            record[f"{attribute}{_SEP}{field}"] = values
    return record


def counts_of(record: ConfigRecord, attributes: list[str]) -> dict[str, GroupCounts]:
    """Decode the counts of ``attributes`` from a reply's fairness record.

    Raises
    ------
    MalformedMessage
        If an attribute's lists are missing, of the wrong type, or inconsistent.
    """
    out = {}
    for attribute in attributes:
        fields = {}
        for field in ("groups", *COUNT_FIELDS):
            value = record.get(f"{attribute}{_SEP}{field}")
            kind = str if field == "groups" else int
            if not isinstance(value, list) or not all(
                isinstance(v, kind) and not isinstance(v, bool) for v in value
            ):
                raise MalformedMessage(
                    f"fairness record must carry `{attribute}{_SEP}{field}` as a list of "
                    f"{kind.__name__}; got {value!r}"
                )
            fields[field] = tuple(value)
        try:
            out[attribute] = GroupCounts(**fields)  # type: ignore[arg-type]
        except ValueError as err:
            raise MalformedMessage(f"fairness counts of `{attribute}`: {err}") from None
    return out


def gaps_record(gaps: dict[str, dict[str, float]]) -> dict[str, float]:
    """Flatten each attribute's finite gaps to ``<attribute>/<gap>`` (for a MetricRecord)."""
    return {
        f"{attribute}{_SEP}{key}": float(value)
        for attribute, values in gaps.items()
        for key, value in values.items()
        if key in GAP_KEYS and value == value
    }


def gaps_of(record: dict[str, float], attributes: list[str]) -> dict[str, dict[str, float]]:
    """Each attribute's gaps from a flattened record; a gap a bank could not compute is NaN.

    Raises
    ------
    MalformedMessage
        If a value is not a number in [0, 1].
    """
    out: dict[str, dict[str, float]] = {}
    for attribute in attributes:
        out[attribute] = {}
        for key in GAP_KEYS:
            value = record.get(f"{attribute}{_SEP}{key}", float("nan"))
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise MalformedMessage(f"`{attribute}{_SEP}{key}` must be a number; got {value!r}")
            if value == value and not 0.0 <= value <= 1.0:
                raise MalformedMessage(f"`{attribute}{_SEP}{key}` must be in [0, 1]; got {value}")
            out[attribute][key] = float(value)
    return out
