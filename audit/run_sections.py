"""The tables of a run report, each from ``summary.json`` and ``metrics.jsonl`` records.

Every function takes the parsed files and returns escaped `Html`; a field of the wrong
type raises `TypeError`, `ValueError`, `AttributeError` or `KeyError`, which
`fedrisk.audit.run_report` turns into one readable line.
"""

from __future__ import annotations

from collections.abc import Sequence

from fedrisk.audit.html_page import MISSING, Html, number, table, tag

UTILITY_COLUMNS = (
    ("auc", "AUC"),
    ("pr_auc", "PR-AUC"),
    ("ks", "KS"),
    ("brier", "Brier"),
    ("log_loss", "log-loss"),
)


def _text(value: object) -> str:
    if value is None or value == "" or value == [] or value == {}:
        return MISSING
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    if isinstance(value, dict):
        return "; ".join(f"{key}: {_text(item)}" for key, item in value.items())
    return str(value)


def _fact(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return _text(value)


def overview(summary: dict) -> Html:
    """Return the run's facts: consortium, task, modes, rounds, stop reason, seed."""
    seconds = (summary.get("seconds") or {}).get("total")
    rows = [
        ("consortium", summary.get("consortium")),
        ("task", summary.get("task")),
        ("strategy", summary.get("strategy")),
        ("privacy", summary.get("privacy")),
        ("secure aggregation", summary.get("secagg")),
        (
            "rounds completed / planned",
            f"{_text(summary.get('rounds_completed'))} / {_text(summary.get('rounds_planned'))}",
        ),
        ("stop reason", summary.get("stop_reason")),
        ("seed", summary.get("seed")),
        ("randomness", summary.get("randomness")),
        ("institutions", sorted(summary.get("institutions") or {})),
        ("rejected nodes", summary.get("rejected_nodes")),
        ("duration", f"{number(seconds, 1)} s" if seconds is not None else None),
    ]
    return table(["", "value"], [(name, _text(value)) for name, value in rows])


def utility(summary: dict) -> Html:
    """Return the global model beside the pooled, local-only and oracle models."""
    institutions = summary.get("institutions") or {}
    counts = [facts.get("n_train") for facts in institutions.values()]
    total = "masked" if None in counts or not counts else str(sum(counts))
    rows = [("federated (global model)", total, summary.get("global") or {})]
    if summary.get("federated"):
        rows.append(("federated (institutions' validation rows)", "", summary["federated"]))
    if "pooled" in summary:
        rows.append(("pooled (if data could be shared)", total, summary["pooled"]))
    for name, metrics in (summary.get("local_only") or {}).items():
        n_train = (institutions.get(name) or {}).get("n_train")
        rows.append((f"local only: {name}", _text(n_train).replace(MISSING, "masked"), metrics))
    if summary.get("oracle_auc") is not None:
        rows.append(("oracle (true default probability)", "", {"auc": summary["oracle_auc"]}))
    headers = ["model", "rows", *(title for _, title in UTILITY_COLUMNS)]
    cells = [
        [name, n, *(number(metrics.get(key)) for key, _ in UTILITY_COLUMNS)]
        for name, n, metrics in rows
    ]
    comparison = summary.get("comparison")
    note = ""
    if comparison:
        note = tag(
            "p",
            f"global − pooled AUC {number(comparison.get('global_minus_pooled_auc'))}; "
            f"global − mean local-only AUC "
            f"{number(comparison.get('global_minus_mean_local_auc'))}; beats "
            f"{_text(comparison.get('banks_beaten'))} local-only models",
        )
    return Html(table(headers, cells, numeric=range(1, len(headers))) + note)


def privacy(summary: dict) -> Html | None:
    """Return record-level ε per institution (dpsgd) or institution-level ε (central)."""
    mode = summary.get("privacy")
    if mode == "dpsgd":
        headers = ["bank", "ε spent", "ε budget", "δ", "noise multiplier", "accountant"]
        headers += ["ledger entries", "status"]
        rows = []
        for name, facts in (summary.get("institutions") or {}).items():
            delta = facts.get("delta")
            rows.append(
                [
                    name,
                    number(facts.get("epsilon_spent")),
                    number(facts.get("epsilon_budget")),
                    f"{delta:.0e}" if isinstance(delta, int | float) and delta else MISSING,
                    number(facts.get("noise_multiplier")),
                    _text(facts.get("accountant")),
                    _text(facts.get("ledger_entries")),
                    f"refused: {facts['refused']}" if "refused" in facts else "within budget",
                ]
            )
        scope = next(
            (f.get("epsilon_scope") for f in (summary.get("institutions") or {}).values()), None
        )
        note = tag("p", f"ε scope: {_text(scope)}; verify with fedrisk audit RUN.", class_="muted")
        return Html(table(headers, rows, numeric=range(1, 5)) + note)
    if mode == "central":
        level = summary.get("institution_level") or {}
        facts = [(key, _fact(value)) for key, value in level.items()]
        if not facts:
            return Html(tag("p", "institution-level ε: not recorded (no round aggregated)"))
        return Html(
            tag("p", "Institution-level differential privacy at the server:")
            + table(["", "value"], facts)
        )
    return None


def secure(summary: dict, rounds: Sequence[dict]) -> Html:
    """Return the secure-aggregation record: the summary and one row per round."""
    record = summary.get("secure_aggregation") or {}
    failed = record.get("failed_rounds") or {}
    head = tag(
        "p",
        f"{_text(record.get('rounds_unmasked', 0))} rounds unmasked, "
        f"{len(failed)} failed closed"
        + "".join(f"; round {r}: {why}" for r, why in failed.items()),
    )
    rows = []
    for item in rounds:
        secagg = item.get("secagg")
        if not isinstance(secagg, dict):
            continue
        dropped = secagg.get("dropped") or {}
        outcome = (
            "unmasked" if secagg.get("unmasked") else f"failed: {_text(secagg.get('failure'))}"
        )
        rows.append(
            [
                str(item["round"]),
                _text(secagg.get("participants")),
                "; ".join(f"{stage}: {_text(names)}" for stage, names in dropped.items())
                or MISSING,
                _text({**(secagg.get("rejected") or {}), **(secagg.get("excluded") or {})}),
                outcome,
                Html(tag("code", _text(secagg.get("aggregate_sha256")))),
            ]
        )
    headers = ["round", "participants", "dropped by stage", "rejected / excluded", "outcome"]
    classes = ["pass" if row[4] == "unmasked" else "fail" for row in rows]
    return Html(head + table([*headers, "aggregate SHA-256"], rows, row_classes=classes))


def rounds(records: Sequence[dict]) -> Html:
    """Return one row per recorded round: who trained, who refused or failed, and why."""
    if not records:
        return Html(tag("p", "metrics.jsonl records no round."))
    rows, classes = [], []
    for item in records:
        problems = bool(item.get("refusals") or item.get("failures")) or not item.get("aggregated")
        rows.append(
            [
                str(item["round"]),
                _text(item.get("selected")),
                _text(item.get("trained")),
                "yes" if item.get("aggregated") else "no",
                _text(item.get("refusals")),
                _text(item.get("failures")),
            ]
        )
        classes.append("fail" if problems else "pass")
    headers = ["round", "selected", "trained", "aggregated", "refusals", "failures"]
    return table(headers, rows, row_classes=classes)
