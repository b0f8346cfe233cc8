"""The budget check: no entry may spend more than the manifest allows.

Every entry's claimed ε and, where recomputed, its recomputed ε must not exceed the
manifest's ε budget; its δ must not exceed the budget δ; and the budget it records must
equal the manifest's (an institution cannot raise its own limit). ε never decreases
along a ledger, so the recomputation at the final entry bounds every earlier one.
"""

from __future__ import annotations

from fedrisk.privacy.ledger import LedgerEntry
from fedrisk.privacy.manifest import InstitutionRecord


def budget_problems(
    entries: list[LedgerEntry], recomputed: dict[int, float], record: InstitutionRecord
) -> list[str]:
    """Return one sentence per budget violation, in ledger order.

    Parameters
    ----------
    entries : list[LedgerEntry]
        A verified ledger.
    recomputed : dict[int, float]
        Opacus ε recomputed per entry ``seq`` (where recomputed).
    record : InstitutionRecord
        The institution's manifest record, whose budget is the limit.
    """
    budget = {"epsilon": record.budget_epsilon, "delta": record.budget_delta}
    problems = []
    for entry in entries:
        where = f"entry {entry.seq} (run {entry.run_id}, round {entry.round})"
        again = recomputed.get(entry.seq)
        if entry.epsilon > budget["epsilon"]:
            limit = budget["epsilon"]
            problems.append(f"{where}: claimed ε {entry.epsilon} exceeds budget {limit}")
        elif again is not None and again > budget["epsilon"]:
            problems.append(f"{where}: recomputed ε {again} exceeds budget {budget['epsilon']}")
        if entry.delta > budget["delta"]:
            problems.append(f"{where}: δ {entry.delta} exceeds budget δ {budget['delta']}")
        if entry.budget != budget:
            problems.append(f"{where}: records budget {entry.budget}, manifest says {budget}")
    return problems
