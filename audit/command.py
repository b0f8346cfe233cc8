"""``fedrisk audit PATH``: verify ledgers and recompute every ε from files alone."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from fedrisk.audit.report import write_report
from fedrisk.audit.report_page import render_audit, render_unusable, write_html
from fedrisk.audit.verify import AuditInputError, audit_path
from fedrisk.privacy.manifest import MANIFEST_FILE

EXIT_OK, EXIT_VIOLATION, EXIT_UNUSABLE = 0, 1, 2


def audit_command(argv: Sequence[str]) -> int:
    """Run ``fedrisk audit PATH``; return 0 (all checks pass), 1 (violation), 2 (unusable).

    Writes ``PATH/audit/report.json`` and ``PATH/audit/report.html``; when the input is
    unusable but PATH is a folder with a manifest, only the HTML page saying why.
    """
    if len(argv) != 1 or argv[0].startswith("-"):
        print("usage: fedrisk audit RUN_DIR_OR_LEDGER_FOLDER", file=sys.stderr)
        return EXIT_UNUSABLE
    path = Path(argv[0])
    # dp_accounting logs (through absl) each fractional RDP order it drops when a series
    # does not converge; the bound stays valid and the report states the method, so
    # those lines would only bury the verdict.
    logging.getLogger("absl").setLevel(logging.ERROR)
    try:
        report = audit_path(path)
    except AuditInputError as err:
        print(f"fedrisk audit: {err}", file=sys.stderr)
        if path.is_dir() and (path / MANIFEST_FILE).is_file():
            write_html(render_unusable(str(err), target=str(path)), path / "audit")
        return EXIT_UNUSABLE
    out = write_report(report, path / "audit")
    run_directory = path.is_dir() and (path / "summary.json").is_file()
    page = write_html(
        render_audit(report, target=str(path), run_directory=run_directory), out.parent
    )
    console = Console()
    table = Table(title=f"Privacy audit of {path}")
    for title in ("bank", "entries", "claimed ε", "recomputed ε", "independent ε", "budget ε"):
        table.add_column(title, justify="left" if title == "bank" else "right")
    table.add_column("verdict")
    for name in sorted(report.institutions):
        facts = report.institutions[name]
        failed = [c.name for c in report.checks if c.institution == name and not c.passed]
        table.add_row(
            name,
            str(facts.get("entries", 0)),
            _fmt(facts.get("claimed_epsilon")),
            _figures(facts.get("recomputed_epsilon")),
            _figures(facts.get("independent_epsilon")),
            _fmt((facts.get("budget") or {}).get("epsilon")),
            "FAIL: " + ", ".join(failed) if failed else "pass",
        )
    console.print(table)
    for check in report.checks:
        if not check.passed:
            console.print(f"[red]✗[/red] {check.institution or '-'} {check.name}: {check.detail}")
    verdict = "every check passed" if report.passed else "VIOLATIONS found"
    console.print(f"{verdict}; report: {out} and {page.name}")
    return EXIT_OK if report.passed else EXIT_VIOLATION


def _fmt(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "–"


def _figures(values: object) -> str:
    if not isinstance(values, dict) or not values:
        return "–"
    return " / ".join(f"{_fmt(v)} ({k})" for k, v in values.items())
