"""The audit as a self-contained HTML page: ``audit/report.html`` beside ``report.json``.

The page shows the same figures as the console table and ``report.json``: the verdict
and what the exit code means, one row per institution, every check (failed ones first),
and each ledger's ε entry by entry as recomputed from its mechanisms, against the budget.
Institution names, file names and check details come from the audited files and are
escaped (`fedrisk.audit.html_page`).
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from fedrisk.audit.html_page import Html, esc, figure, number, page, section, table, tag
from fedrisk.audit.recompute import EpsilonPoint
from fedrisk.audit.report import METHOD
from fedrisk.audit.verify import AuditReport
from fedrisk.privacy.atomic_file import write_atomically

HTML_FILE = "report.html"
RUN_REPORT_LINK = "../report.html"

#: Exit code, verdict class and what the code means (as `fedrisk audit` exits).
EXIT_MEANINGS = (
    (0, "pass", "every check passed"),
    (1, "fail", "at least one check failed: a violation (named below)"),
    (2, "unusable", "the input could not be audited at all"),
)


def render_audit(report: AuditReport, *, target: str, run_directory: bool) -> str:
    """Return the audit report as a complete HTML document.

    Parameters
    ----------
    report : AuditReport
        The audit's outcome, as `audit_path` returned it.
    target : str
        The audited path, as given on the command line.
    run_directory : bool
        Whether the path is a run directory, whose report (``../report.html``) is linked.

    Returns
    -------
    str
        The document; every string from the audited files is escaped.
    """
    failed = [check for check in report.checks if not check.passed]
    code = 0 if report.passed else 1
    if report.passed:
        headline = f"PASS: all {len(report.checks)} checks passed"
    else:
        headline = f"VIOLATIONS: {len(failed)} of {len(report.checks)} checks failed"
    parts: list[object] = [_header(target, code, headline)]
    if run_directory:
        parts.append(
            Html(
                "<p>The run's own report: "
                + tag("a", "report.html", href=RUN_REPORT_LINK, id="run-report")
                + " (written by <code>fedrisk report RUN</code>).</p>"
            )
        )
    parts += [
        section("Institutions", _institution_table(report)),
        section("Checks (failed first)", _check_table(report)),
    ]
    if report.curves:
        parts.append(section("Privacy spent per ledger entry", _epsilon_figure(report)))
    parts.append(section("Method", table(["check", "what is verified"], METHOD.items())))
    return page(f"fedrisk audit: {target}", *parts)


def render_unusable(reason: str, *, target: str) -> str:
    """Return the page of an audit that could not be made (exit code 2).

    Parameters
    ----------
    reason : str
        The one-line reason (`AuditInputError`'s message).
    target : str
        The path given on the command line.

    Returns
    -------
    str
        The document.
    """
    body = tag("p", reason, id="reason")
    return page(f"fedrisk audit: {target}", _header(target, 2, "UNUSABLE: nothing audited"), body)


def write_html(text: str, out_dir: Path) -> Path:
    """Write ``report.html`` into ``out_dir`` (created if missing) atomically.

    Parameters
    ----------
    text : str
        The document.
    out_dir : Path
        The folder.

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    OSError
        If the file cannot be written; an existing one is then left intact.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / HTML_FILE
    write_atomically(path, text.encode("utf-8"))
    return path


def _header(target: str, code: int, headline: str) -> Html:
    css = next(css for exit_code, css, _ in EXIT_MEANINGS if exit_code == code)
    meanings = "".join(
        tag("li", Html(tag("strong", f"{c}: {m}") if c == code else esc(f"{c}: {m}")))
        for c, _, m in EXIT_MEANINGS
    )
    return Html(
        tag("h1", f"Privacy audit of {target}")
        + tag("p", headline, class_=f"verdict {css}", id="verdict")
        + tag("p", f"fedrisk audit exits with code {code}.", class_="muted")
        + tag("ul", Html(meanings), class_="muted")
    )


def _accountants(report: AuditReport, key: str) -> list[str]:
    names: set[str] = set()
    for facts in report.institutions.values():
        names.update((facts.get(key) or {}).keys())
    return sorted(names)


def _institution_table(report: AuditReport) -> Html:
    same = _accountants(report, "recomputed_epsilon")
    other = _accountants(report, "independent_epsilon")
    headers = ["bank", "entries", "rounds", "claimed ε"]
    headers += [f"recomputed ε ({name})" for name in same]
    headers += [f"independent ε ({name})" for name in other]
    headers += ["budget ε", "budget δ", "verdict"]
    rows, classes = [], []
    for name in sorted(report.institutions):
        facts = report.institutions[name]
        budget = facts.get("budget") or {}
        failed = [c.name for c in report.checks if c.institution == name and not c.passed]
        rows.append(
            [
                name,
                str(facts.get("entries", 0)),
                str(facts.get("rounds", 0)),
                number(facts.get("claimed_epsilon")),
                *(number((facts.get("recomputed_epsilon") or {}).get(k)) for k in same),
                *(number((facts.get("independent_epsilon") or {}).get(k)) for k in other),
                number(budget.get("epsilon")),
                f"{budget['delta']:.0e}" if budget.get("delta") else "–",
                "FAIL: " + ", ".join(failed) if failed else str(facts.get("verdict", "pass")),
            ]
        )
        classes.append("fail" if failed else "pass")
    numeric = range(1, len(headers) - 1)
    return table(headers, rows, numeric=list(numeric), row_classes=classes)


def _check_table(report: AuditReport) -> Html:
    ordered = sorted(report.checks, key=lambda check: check.passed)  # stable: failed first
    rows = [
        [
            "✗ failed" if not c.passed else "✓ passed",
            c.name,
            c.institution or "–",
            c.detail,
        ]
        for c in ordered
    ]
    classes = ["fail" if not c.passed else "pass" for c in ordered]
    return table(["outcome", "check", "bank", "detail"], rows, row_classes=classes)


def _plain(text: str, limit: int = 40) -> str:
    """Input text for a matplotlib label: no mathtext, bounded length."""
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return text.replace("$", r"\$")


def _epsilon_figure(report: AuditReport) -> Html:
    owner = {
        row.get("file"): name
        for name, facts in report.institutions.items()
        for row in facts.get("ledgers", [])
    }
    files = sorted(report.curves, key=lambda file: (str(owner.get(file)), file))
    columns = min(3, len(files))
    rows = -(-len(files) // columns)
    fig = Figure(figsize=(4.4 * columns, 3.2 * rows), layout="constrained")
    for index, file in enumerate(files):
        ax = fig.add_subplot(rows, columns, index + 1)
        name = str(owner.get(file, file))
        budget = (report.institutions.get(name, {}).get("budget") or {}).get("epsilon")
        _plot_curve(ax, report.curves[file], budget)
        title = name if sum(owner.get(f) == name for f in files) == 1 else f"{name}: {file}"
        ax.set_title(_plain(title), fontsize=10)
    caption = (
        "ε after each ledger entry, recomputed by the auditor from the entries' mechanisms: "
        "Opacus with the entry's accountant (solid) and dp_accounting (crosses); the "
        "entries' own claimed ε in grey (dotted) and the manifest's budget in red (dashed). "
        "rdp ledgers are recomputed at every entry; prv ledgers only at each run's last "
        "entry and the final one (there the grey line is the unverified claim)."
    )
    return figure(fig, alt="ε per ledger entry for each bank, against its budget", caption=caption)


def _plot_curve(ax: Axes, points: list[EpsilonPoint], budget: float | None) -> None:
    one_run = len({p.run_id for p in points}) == 1
    xs = [p.round if one_run else i + 1 for i, p in enumerate(points)]
    ax.plot(xs, [p.claimed for p in points], color="0.6", linestyle=":", label="claimed")
    same = [(x, p.recomputed) for x, p in zip(xs, points, strict=True) if p.recomputed is not None]
    other = [
        (x, p.independent) for x, p in zip(xs, points, strict=True) if p.independent is not None
    ]
    if same:
        ax.plot(*zip(*same, strict=True), marker="o", markersize=4, label="recomputed (Opacus)")
    if other:
        ax.plot(*zip(*other, strict=True), "x", color="black", label="dp_accounting")
    top = max([p.claimed for p in points] + [y for _, y in same] + [y for _, y in other])
    if budget is not None:
        ax.axhline(budget, color="#b3261e", linestyle="--", linewidth=1, label="budget")
        top = max(top, budget)
    ax.set_ylim(0, top * 1.1 if top > 0 else 1)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("round" if one_run else "ledger entry (runs in order)")
    ax.set_ylabel("cumulative ε")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
