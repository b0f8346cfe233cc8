"""The end-of-run risk query (``query.risk``): its message type and fairness record.

At the end of a run the coordinator sends the final global model to every institution;
each answers with the risk metrics of that model on its own validation rows (a
MetricRecord, as in federated evaluation) and, when the schema names protected
attributes, with four decision counts per group of each attribute (a ConfigRecord).
No row, score or label leaves the node.
"""

from __future__ import annotations

from flwr.app import ConfigRecord

from fedrisk.models.group_counts import COUNT_FIELDS, GroupCounts
from fedrisk.strategies.messages import MalformedMessage

RISK_MESSAGE_TYPE = "query.risk"
#: RecordDict key of the fairness counts in a reply.
FAIRNESS = "fairness"
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
