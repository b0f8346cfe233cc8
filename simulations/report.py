"""The simulation's comparison: summary.json fields and the terminal table."""

from __future__ import annotations

import json
import math
from pathlib import Path

from rich.console import Console
from rich.table import Table

from fedrisk.data.package_table import PROVENANCE_SUFFIX
from fedrisk.server.records import SUMMARY_FILE, write_json_atomic
from fedrisk.simulations.baselines import Baselines
from fedrisk.simulations.consortium import VAR_BACKTEST_FILE

_COLUMNS = (("auc", "AUC"), ("pr_auc", "PR-AUC"), ("ks", "KS"), ("brier", "Brier"))
#: Each task's headline metrics (summary.json ``headline``); hit rate = recall at threshold.
HEADLINE_METRICS = {"fraud": ("pr_auc", "recall_at_fpr"), "market_risk": ("auc", "recall")}
_HEADLINE_NAMES = {"recall": "hit rate"}
#: The second table's columns: calibration and the cost-aware decision metrics.
_RISK_COLUMNS = (
    ("ece", "ECE"),
    ("recall_at_fpr", "recall@FPR"),
    ("expected_cost", "expected cost"),
)


def merge_summary(
    run_dir: Path,
    baselines: Baselines | None,
    extra: dict[str, object],
) -> dict:
    """Add the baselines and run facts to the server's ``summary.json``.

    The institutions' verified ledgers are already in it: the ServerApp collects them.
    """
    path = run_dir / SUMMARY_FILE
    summary = json.loads(path.read_text())
    summary.update(extra)
    provenance = sorted((run_dir / "data").glob(f"*{PROVENANCE_SUFFIX}"))
    if provenance:  # a table read from a package: where it came from, what was dropped
        summary["data_source"] = json.loads(provenance[0].read_text())
    backtest = run_dir / "data" / VAR_BACKTEST_FILE
    if backtest.exists():  # market_risk: Kupiec's test of each bank's VaR, held-out window
        summary["var_backtest"] = json.loads(backtest.read_text())
    if baselines is not None:
        summary["pooled"] = baselines.pooled
        summary["local_only"] = baselines.local_only
        summary["oracle_auc"] = baselines.oracle_auc
        local = [m["auc"] for m in baselines.local_only.values() if math.isfinite(m["auc"])]
        fed = summary["global"].get("auc")
        if fed is not None and local:
            summary["comparison"] = {
                "global_minus_pooled_auc": fed - baselines.pooled["auc"],
                "global_minus_mean_local_auc": fed - sum(local) / len(local),
                "banks_beaten": sum(fed > a for a in local),
            }
        summary["headline"] = _headline(summary, baselines)
    write_json_atomic(path, summary)
    return json.loads(path.read_text())


def _headline(summary: dict, baselines: Baselines) -> dict[str, dict[str, float]]:
    """Return the task's headline metrics: global, pooled, mean local-only, banks beaten."""
    out: dict[str, dict[str, float]] = {}
    for key in HEADLINE_METRICS.get(str(summary.get("task")), ("auc",)):
        fed = summary["global"].get(key)
        local = [
            m[key] for m in baselines.local_only.values() if math.isfinite(m.get(key, math.nan))
        ]
        if fed is None or not local:
            continue
        out[key] = {
            "global": fed,
            "pooled": baselines.pooled.get(key, math.nan),
            "mean_local_only": sum(local) / len(local),
            "banks_beaten": float(sum(fed > a for a in local)),
        }
    return out


def print_comparison(summary: dict, console: Console | None = None) -> None:
    """Print the federated model beside the pooled, local-only and oracle models."""
    console = console or Console()
    source = summary.get("data_source")
    if source:
        missing = ", ".join(f"{k} {v}" for k, v in source["missing_by_column"].items())
        console.print(
            f"data: {source['source']} (package version {source['package_version']}): "
            f"{source['rows_read']} rows, {source['rows_dropped']} dropped for a missing "
            f"value ({missing or 'none'}), {source['rows_written']} used"
        )
    console.print(
        _model_table(
            summary, _COLUMNS, f"Held-out performance after {summary['rounds_completed']} rounds"
        )
    )
    if "ece" in summary["global"]:
        console.print(_model_table(summary, _RISK_COLUMNS, "Calibration and decisions (held-out)"))
    settings = summary.get("risk_metrics")
    if settings:
        console.print(
            f"recall@FPR: recall at a {settings['false_alarm_rate']:.0%} false-alarm rate; "
            f"expected cost: (cost_ratio · missed + false alarms) / rows at threshold "
            f"{settings['threshold']:g}, cost_ratio {settings['cost_ratio']:g}"
        )
    if summary.get("per_bank"):
        print_per_bank(summary, console)
    if summary.get("fairness"):
        print_fairness(summary["fairness"], console)
    if summary.get("privacy") == "dpsgd":
        print_privacy(summary, console)
    secure = summary.get("secure_aggregation")
    if secure:
        failed = secure.get("failed_rounds", {})
        console.print(
            f"secure aggregation: {secure.get('rounds_unmasked', 0)} rounds unmasked, "
            f"{len(failed)} failed closed"
            + "".join(f"\n  round {r}: {why}" for r, why in failed.items())
        )
    if summary.get("stop_reason") != "completed":
        console.print(f"[yellow]run stopped early: {summary['stop_reason']}[/yellow]")
    comparison = summary.get("comparison")
    if comparison:
        n_local = len(summary["local_only"])
        console.print(
            f"global − pooled AUC: {comparison['global_minus_pooled_auc']:+.4f}   "
            f"global − mean local-only AUC: {comparison['global_minus_mean_local_auc']:+.4f}   "
            f"beats {comparison['banks_beaten']} of {n_local} local-only models"
        )
    for key, row in summary.get("headline", {}).items():
        if key != "auc" or summary.get("task") in HEADLINE_METRICS:
            console.print(
                f"headline {_HEADLINE_NAMES.get(key, key)}: global {row['global']:.4f}, "
                f"mean local-only {row['mean_local_only']:.4f}, pooled {row['pooled']:.4f}; "
                f"beats {int(row['banks_beaten'])} of {len(summary['local_only'])} banks"
            )
    backtest = summary.get("var_backtest")
    if backtest:
        cells = [
            f"{bank} {b['exceptions']}/{b['periods']} (p={b['p_value']:.3f}"
            + (", rejected)" if b["reject"] else ")")
            for bank, b in backtest["banks"].items()
        ]
        console.print(
            f"VaR {backtest['coverage']:.0%} exceptions in the held-out window, Kupiec: "
            + ", ".join(cells)
        )


def _model_table(summary: dict, columns: tuple[tuple[str, str], ...], title: str) -> Table:
    """One row per model (federated, pooled, each local-only, oracle), ``columns`` of metrics."""
    table = Table(title=title)
    table.add_column("model")
    table.add_column("rows", justify="right")
    for _, heading in columns:
        table.add_column(heading, justify="right")

    def row(name: str, rows: str, metrics: dict | None, style: str | None = None) -> None:
        cells = [_fmt((metrics or {}).get(key)) for key, _ in columns]
        if any(cell != "–" for cell in cells):
            table.add_row(name, rows, *cells, style=style)

    counts = [i.get("n_train") for i in summary["institutions"].values()]
    total = "masked" if None in counts else str(sum(counts))
    row("federated (global model)", total, summary["global"], style="bold")
    if "pooled" in summary:
        row("pooled (if data could be shared)", total, summary["pooled"])
        for name, metrics in summary["local_only"].items():
            rows = summary["institutions"][name].get("n_train")
            row(f"local only: {name}", "masked" if rows is None else str(rows), metrics)
    if summary.get("oracle_auc") is not None:
        row("oracle (true default prob.)", "", {"auc": summary["oracle_auc"]}, "dim")
    return table


def _fmt(value: object) -> str:
    if isinstance(value, int | float) and math.isfinite(float(value)):
        return f"{float(value):.4f}"
    return "–"


def print_privacy(summary: dict, console: Console) -> None:
    """Print each institution's cumulative record-level ε against its budget."""
    table = Table(title="Record-level privacy per institution (cumulative ε, all runs)")
    for title in ("bank", "ε spent", "ε budget", "δ", "σ/C", "ledger", "status"):
        table.add_column(title, justify="left" if title in ("bank", "status") else "right")
    for name, entry in summary["institutions"].items():
        spent, budget = entry.get("epsilon_spent"), entry.get("epsilon_budget")
        status = "refused (see summary.json)" if "refused" in entry else "within budget"
        table.add_row(
            name,
            _fmt(spent),
            _fmt(budget),
            f"{entry['delta']:.0e}" if entry.get("delta") else "–",
            _fmt(entry.get("noise_multiplier")),
            f"{entry.get('ledger_entries', 0)} ✓" if entry.get("ledger_verified") else "–",
            status,
        )
    console.print(table)
    accountants = {e.get("accountant") for e in summary["institutions"].values()} - {None}
    console.print(
        f"ε by the {', '.join(sorted(accountants)) or '?'} accountant from each signed ledger; "
        f"randomness: {summary.get('randomness', '?')}"
    )


_BANK_COLUMNS = (
    ("n", "rows"),
    ("auc", "AUC"),
    ("pr_auc", "PR-AUC"),
    ("ece", "ECE"),
    ("recall_at_fpr", "recall@FPR"),
    ("expected_cost", "exp. cost"),
)


def print_per_bank(summary: dict, console: Console) -> None:
    """Print the final global model's risk metrics on each bank's validation rows."""
    table = Table(title="Global model at each institution (its own validation rows)")
    table.add_column("bank")
    for _, title in _BANK_COLUMNS:
        table.add_column(title, justify="right")
    for name, metrics in summary["per_bank"].items():
        if "error" in metrics:
            table.add_row(name, *["–"] * len(_BANK_COLUMNS), style="dim")
            continue
        cells = [
            str(int(metrics["n"])) if key == "n" and "n" in metrics else _fmt(metrics.get(key))
            for key, _ in _BANK_COLUMNS
        ]
        table.add_row(name, *cells)
    console.print(table)


#: Consortia larger than this get only the held-out and pooled fairness rows printed.
_MAX_BANK_ROWS = 8


def print_fairness(fairness: dict, console: Console) -> None:
    """Print demographic-parity and equal-opportunity gaps of the global model."""
    table = Table(
        title=f"Fairness of the global model's decisions (threshold {fairness['threshold']:g})"
    )
    for title in ("attribute", "where", "groups", "DP gap", "EO gap"):
        table.add_column(title, justify="left" if title in ("attribute", "where") else "right")
    for attribute, report in fairness["attributes"].items():
        rows = [
            ("held-out set", report.get("global")),
            ("banks pooled", report.get("pooled_banks")),
        ]
        banks = report.get("per_bank", {})
        if len(banks) <= _MAX_BANK_ROWS:  # more are in summary.json
            rows += [(f"  {bank}", entry) for bank, entry in banks.items()]
        for where, entry in rows:
            if entry is None:
                continue
            table.add_row(
                attribute,
                where,
                str(len(entry["groups"])) if "groups" in entry else "–",
                _fmt(entry.get("demographic_parity_difference")),
                _fmt(entry.get("equal_opportunity_difference")),
                style="bold" if where == "held-out set" else None,
            )
    console.print(table)
    console.print(
        "DP gap: demographic-parity difference (max − min share decided positive across "
        "groups); EO gap: equal-opportunity difference (max − min true-positive rate); "
        "per bank from its own rows, pooled from the banks' counts"
        + (
            "; under secure aggregation banks send only their own gaps (no counts to pool)"
            if any(r.get("pooled_banks") is None for r in fairness["attributes"].values())
            else ""
        )
    )
