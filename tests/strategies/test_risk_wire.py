"""The fairness record of the end-of-run risk query: round trip and malformed replies."""

from __future__ import annotations

import math

import pytest
from flwr.app import ConfigRecord

from fedrisk.models.group_counts import GroupCounts
from fedrisk.strategies.messages import MalformedMessage
from fedrisk.strategies.risk_wire import counts_of, counts_record, gaps_of, gaps_record

NAN = float("nan")


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


def test_gaps_round_trip_and_missing_gaps_read_as_nan() -> None:
    flat = gaps_record(
        {
            "black": {"demographic_parity_difference": 0.25, "equal_opportunity_difference": 0.5},
            "male": {"demographic_parity_difference": 0.1, "equal_opportunity_difference": NAN},
        }
    )

    gaps = gaps_of(flat, ["black", "male"])

    assert "male/equal_opportunity_difference" not in flat
    assert gaps["black"] == {
        "demographic_parity_difference": 0.25,
        "equal_opportunity_difference": 0.5,
    }
    assert math.isnan(gaps["male"]["equal_opportunity_difference"])


def test_a_gap_outside_the_unit_interval_is_malformed() -> None:
    with pytest.raises(MalformedMessage, match=r"`black/demographic_parity_difference` must be"):
        gaps_of({"black/demographic_parity_difference": 1.5}, ["black"])
