"""``fedrisk report RUN``: a run directory's record as one self-contained HTML page.

The page is rendered from the run's files alone (``summary.json``, ``metrics.jsonl`` and
``config.yaml``): the overview, utility against the baselines, AUC and loss per round,
privacy per institution, the secure-aggregation record and every round's failures and
refusals. Nothing is recomputed here; ``fedrisk audit RUN`` verifies the privacy claims.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from fedrisk.audit import run_sections
from fedrisk.audit.html_page import Html, figure, page, section, tag
from fedrisk.privacy.atomic_file import write_atomically

SUMMARY_FILE = "summary.json"
METRICS_FILE = "metrics.jsonl"
CONFIG_FILE = "config.yaml"
HTML_FILE = "report.html"
AUDIT_PAGE = "audit/report.html"


class RunReportError(Exception):
    """The folder is not a run directory, or one of its files is malformed."""


@dataclass(frozen=True)
class RunFiles:
    """What a run directory records.

    Attributes
    ----------
    summary : dict
        ``summary.json``.
    rounds : list[dict]
        The lines of ``metrics.jsonl`` (empty if the run recorded no round).
    config : str | None
        The text of ``config.yaml``, if present.
    """

    summary: dict
    rounds: list[dict]
    config: str | None


def load_run(run_dir: Path) -> RunFiles:
    """Read and check a run directory's record.

    Parameters
    ----------
    run_dir : Path
        A directory written by ``fedrisk simulate``.

    Returns
    -------
    RunFiles
        The parsed files.

    Raises
    ------
    RunReportError
        With a one-line message naming the file, if there is no ``summary.json`` or a
        file is not what it should be (bad JSON or YAML, wrong types).
    """
    run_dir = Path(run_dir)
    summary_path = run_dir / SUMMARY_FILE
    if not run_dir.exists():
        raise RunReportError(f"{run_dir}: no such directory")
    if not run_dir.is_dir():
        raise RunReportError(f"{run_dir}: not a directory (expected a run directory)")
    if not summary_path.is_file():
        raise RunReportError(f"{run_dir}: no {SUMMARY_FILE} (not a run directory)")
    summary = _json_object(_text(summary_path), summary_path)
    for key in ("institutions", "global"):
        if not isinstance(summary.get(key, {}), dict):
            raise RunReportError(f"{summary_path}: `{key}` must be an object")
    rounds: list[dict] = []
    metrics_path = run_dir / METRICS_FILE
    if metrics_path.is_file():
        for number, line in enumerate(_text(metrics_path).splitlines(), start=1):
            if line.strip():
                record = _json_object(line, metrics_path, line=number)
                if not isinstance(record.get("round"), int):
                    raise RunReportError(f"{metrics_path}, line {number}: no integer `round`")
                rounds.append(record)
    config_path = run_dir / CONFIG_FILE
    config = _text(config_path) if config_path.is_file() else None
    if config is not None:
        try:
            yaml.safe_load(config)
        except yaml.YAMLError as exc:
            raise RunReportError(" ".join(f"{config_path}: not YAML ({exc})".split())) from None
    return RunFiles(summary=summary, rounds=rounds, config=config)


def render_run(run: RunFiles, *, title: str, audited: bool = False) -> str:
    """Return the run report as a complete HTML document.

    Parameters
    ----------
    run : RunFiles
        The run's files, from `load_run`.
    title : str
        The run's name for the heading (its directory).
    audited : bool (default: False)
        Whether ``audit/report.html`` exists, which is then linked.

    Returns
    -------
    str
        The document; every string from the run's files is escaped.

    Raises
    ------
    RunReportError
        If a field of ``summary.json`` or ``metrics.jsonl`` has the wrong type.
    """
    summary, rounds = run.summary, run.rounds
    parts: list[object] = [tag("h1", f"Run report: {title}")]
    if audited:
        link = tag("a", "audit/report.html", href=AUDIT_PAGE, id="audit-report")
        parts.append(Html(f"<p>The auditor's verification of this run: {link}.</p>"))
    try:
        parts.append(section("Overview", run_sections.overview(summary)))
        parts.append(section("Utility (held-out set)", run_sections.utility(summary)))
        if rounds:
            caption = "Per round, from metrics.jsonl: the global model after aggregation."
            parts.append(
                section(
                    "Per round",
                    figure(_round_figure(rounds), alt="AUC and loss per round", caption=caption),
                )
            )
        privacy = run_sections.privacy(summary)
        if privacy is not None:
            parts.append(section("Privacy", privacy))
        if summary.get("secagg") == "secaggplus":
            parts.append(section("Secure aggregation", run_sections.secure(summary, rounds)))
        parts.append(section("Rounds: failures and refusals", run_sections.rounds(rounds)))
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        raise RunReportError(f"{SUMMARY_FILE} or {METRICS_FILE}: malformed ({exc})") from None
    if run.config is not None:
        config = Html(
            f"<details><summary>{CONFIG_FILE}</summary>{tag('pre', run.config)}</details>"
        )
        parts.append(section("Configuration", config))
    return page(f"fedrisk run report: {title}", *parts)


def report_command(argv: Sequence[str]) -> int:
    """Run ``fedrisk report RUN``: write ``RUN/report.html``; 0 on success, 2 otherwise.

    Parameters
    ----------
    argv : Sequence[str]
        The arguments after ``report``: one run directory.

    Returns
    -------
    int
        0 when the page was written (its path is printed), 2 with one line on stderr
        when RUN is not a run directory, a file is malformed, or the page cannot be
        written.
    """
    if len(argv) != 1 or argv[0].startswith("-"):
        print("usage: fedrisk report RUN_DIR", file=sys.stderr)
        return 2
    run_dir = Path(argv[0])
    try:
        run = load_run(run_dir)
        text = render_run(
            run, title=run_dir.resolve().name, audited=(run_dir / AUDIT_PAGE).is_file()
        )
        path = run_dir / HTML_FILE
        write_atomically(path, text.encode("utf-8"))
    except RunReportError as err:
        print(f"fedrisk report: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"fedrisk report: {run_dir}: cannot write {HTML_FILE} ({err})", file=sys.stderr)
        return 2
    print(path)
    return 0


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RunReportError(" ".join(f"{path}: cannot be read ({exc})".split())) from None


def _json_object(text: str, path: Path, *, line: int | None = None) -> dict:
    where = f"{path}" if line is None else f"{path}, line {line}"
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RunReportError(f"{where}: not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise RunReportError(f"{where}: must be a JSON object; got {type(value).__name__}")
    return value


def _series(rounds: Sequence[dict], section_: str, key: str) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for record in rounds:
        value = (record.get(section_) or {}).get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            xs.append(int(record["round"]))
            ys.append(float(value))
    return xs, ys


def _round_figure(rounds: Sequence[dict]) -> Figure:
    fig = Figure(figsize=(11, 3.8), layout="constrained")
    panels = (
        ("ROC-AUC", (("central", "auc", "held-out set"), ("federated", "auc", "validation"))),
        (
            "Loss",
            (
                ("central", "log_loss", "held-out log-loss"),
                ("federated", "log_loss", "validation log-loss"),
                ("train", "loss", "local training loss"),
            ),
        ),
    )
    for index, (title, lines) in enumerate(panels):
        ax = fig.add_subplot(1, 2, index + 1)
        for section_, key, label in lines:
            xs, ys = _series(rounds, section_, key)
            if xs:
                ax.plot(xs, ys, marker="o", markersize=3, label=label)
        ax.set_title(title)
        ax.set_xlabel("round")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    return fig
