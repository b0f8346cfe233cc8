"""Sequence and rounds: one release per round per run, and one run per run directory.

The ledger reader already enforces a contiguous sequence and a hash chain. Here: within
a run, a bank records each round at most once (a second entry for the same round would
be a double-counted or replayed release), and in a run directory every bank's latest
run is the same run, the one the coordinator's ``metrics.jsonl`` describes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from fedrisk.privacy.ledger import LedgerEntry


def round_problems(entries: Sequence[LedgerEntry]) -> list[str]:
    """Return one sentence per (run, round) that a ledger records more than once."""
    counts = Counter((entry.run_id, entry.round) for entry in entries)
    return [
        f"run {run_id}, round {round_}: {count} entries (one release per round expected)"
        for (run_id, round_), count in sorted(counts.items())
        if count > 1
    ]


def run_mismatches(latest: Mapping[str, str]) -> list[str]:
    """Return a sentence if the banks' latest runs (institution → run id) are not one run."""
    runs = Counter(latest.values())
    if len(runs) <= 1:
        return []
    common, _ = runs.most_common(1)[0]
    odd = ", ".join(f"{name} ({run})" for name, run in sorted(latest.items()) if run != common)
    return [f"the banks' latest runs differ: most are in run {common}, but {odd}"]
