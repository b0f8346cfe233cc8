"""The fairness record of the end-of-run risk query: round trip and malformed replies."""

from __future__ import annotations

import pytest
from flwr.app import ConfigRecord

from fedrisk.models.group_counts import GroupCounts
from fedrisk.strategies.messages import MalformedMessage
from fedrisk.strategies.risk_wire import counts_of, counts_record


def test_counts_round_trip_through_a_config_record() -> None:
    counts = {
        "black": GroupCounts(("0", "1"), (300, 40), (20, 9), (30, 12), (15, 6)),
        "male": GroupCounts(("0", "1"), (70, 270), (8, 21), (9, 33), (5, 16)),
    }

    assert counts_of(counts_record(counts), ["black", "male"]) == counts


@pytest.mark.parametrize(
    ("record", "match"),
    [
        ({}, "`black/groups` as a list of str"),
        (
            {"black/groups": ["0"], "black/count": [1.5], "black/flagged": [0]},
            "`black/count` as a list of int",
        ),
        (
            {
                "black/groups": ["0"],
                "black/count": [1],
                "black/flagged": [2],
                "black/positives": [0],
                "black/caught": [0],
            },
            "fairness counts of `black`: counts of group '0' must satisfy",
        ),
    ],
)
def test_malformed_fairness_records_raise(record: dict, match: str) -> None:
    with pytest.raises(MalformedMessage, match=match):
        counts_of(ConfigRecord(record), ["black"])
