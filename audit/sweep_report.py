"""``fedrisk report sweep MULTIRUN_DIR``: a held-out metric against the swept key.

From a multirun's files alone (:mod:`fedrisk.audit.sweep_runs`) it writes, into the
multirun folder, ``sweep.png`` (the metric against the swept key; non-private runs as
horizontal lines), ``sweep.csv`` and ``sweep.md`` (the same table, with the plot), and
prints the table. A privacy sweep (``privacy.target_epsilon``) is the privacy–utility
curve; the table then also shows the ε each run actually spent (its largest per bank).
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator
from rich.console import Console
from rich.table import Table

from fedrisk.audit.sweep_runs import Sweep, SweepReportError, SweepRun, load_sweep
from fedrisk.privacy.atomic_file import write_atomically

PLOT_FILE = "sweep.png"
CSV_FILE = "sweep.csv"
MARKDOWN_FILE = "sweep.md"
USAGE = "usage: fedrisk report sweep MULTIRUN_DIR [--baseline RUN_DIR]… [--metric NAME]"


@dataclass(frozen=True)
class SweepPoint:
    """The runs that share one value of the swept key."""

    value: object
    metric: float
    spread: float | None
    epsilon: float | None
    runs: list[str]
    stop_reasons: list[str]


def sweep_points(sweep: Sweep, metric: str) -> list[SweepPoint]:
    """Group the runs by the swept value (numbers ascending) and average the metric.

    Raises
    ------
    SweepReportError
        If no run recorded ``metric`` in ``summary.json`` ``global``.
    """
    groups: dict[str, list[SweepRun]] = {}
    for run in sweep.runs:
        if run.metric(metric) is not None:
            groups.setdefault(json.dumps(sweep.value(run), default=str), []).append(run)
    if not groups:
        available = sorted({k for r in sweep.runs for k in r.summary.get("global") or {}})
        raise SweepReportError(
            f"no run recorded `global.{metric}` in summary.json; available: {', '.join(available)}"
        )
    points = []
    for runs in groups.values():
        values = [v for r in runs if (v := r.metric(metric)) is not None]
        mean = sum(values) / len(values)
        spread = (
            math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
            if len(values) > 1
            else None
        )
        spent = [e for r in runs if (e := r.epsilon_spent()) is not None]
        points.append(
            SweepPoint(
                value=sweep.value(runs[0]),
                metric=mean,
                spread=spread,
                epsilon=sum(spent) / len(spent) if spent else None,
                runs=[r.name for r in runs],
                stop_reasons=sorted({str(r.summary.get("stop_reason", "")) for r in runs}),
            )
        )
    if all(_is_number(p.value) for p in points):
        points.sort(key=lambda p: float(p.value))  # type: ignore[arg-type]
    return points


def plot_sweep(sweep: Sweep, points: Sequence[SweepPoint], metric: str, path: Path) -> Path:
    """Write the metric against the swept key; baselines as dashed horizontal lines."""
    fig = Figure(figsize=(6.4, 4.2), dpi=110)
    ax = fig.subplots()
    numeric = all(_is_number(p.value) for p in points)
    xs = [float(p.value) if numeric else i for i, p in enumerate(points)]  # type: ignore[arg-type]
    ys = [p.metric for p in points]
    errors = [p.spread or 0.0 for p in points]
    ax.errorbar(
        xs,
        ys,
        yerr=errors if sweep.replicated else None,
        marker="o",
        capsize=3,
        label=f"federated model ({metric})",
    )
    if numeric and min(xs) > 0 and (max(xs) / min(xs) >= 10 or sweep.key.endswith("epsilon")):
        ax.set_xscale("log")
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticks(xs, [f"{x:g}" for x in xs])
    if not numeric:
        ax.set_xticks(xs, [str(p.value) for p in points])
    for baseline in sweep.baselines:
        value = baseline.metric(metric)
        if value is not None:
            ax.axhline(
                value,
                linestyle="--",
                color="grey",
                label=f"non-private run {baseline.name} ({value:.4f})",
            )
    ax.set_xlabel(sweep.key)
    ax.set_ylabel(f"held-out {metric}")
    ax.set_title(f"Held-out {metric} against {sweep.key}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    return path


def table_rows(sweep: Sweep, points: Sequence[SweepPoint], metric: str) -> list[list[str]]:
    """Header and rows of the sweep table (points, then baselines)."""
    rows = [[sweep.key, metric, f"{metric} std", "ε spent (max bank)", "runs", "stop reason"]]
    for p in points:
        rows.append(
            [
                str(p.value),
                f"{p.metric:.6f}",
                "" if p.spread is None else f"{p.spread:.6f}",
                "" if p.epsilon is None else f"{p.epsilon:.4f}",
                " ".join(p.runs),
                " ".join(p.stop_reasons),
            ]
        )
    for b in sweep.baselines:
        value = b.metric(metric)
        rows.append(
            [
                "non-private baseline",
                "" if value is None else f"{value:.6f}",
                "",
                "",
                b.name,
                str(b.summary.get("stop_reason", "")),
            ]
        )
    return rows


def write_sweep_report(
    folder: Path, *, metric: str = "auc", baselines: Sequence[Path] = ()
) -> tuple[Sweep, list[list[str]]]:
    """Read the sweep in ``folder`` and write ``sweep.png``, ``sweep.csv``, ``sweep.md``.

    Raises
    ------
    SweepReportError
        As :func:`fedrisk.audit.sweep_runs.load_sweep`, or if no run recorded ``metric``.
    """
    sweep = load_sweep(folder, baselines=baselines)
    points = sweep_points(sweep, metric)
    rows = table_rows(sweep, points, metric)
    plot_sweep(sweep, points, metric, folder / PLOT_FILE)
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    write_atomically(folder / CSV_FILE, buffer.getvalue().encode("utf-8"))
    write_atomically(folder / MARKDOWN_FILE, _markdown(sweep, rows, metric).encode("utf-8"))
    return sweep, rows


def sweep_command(argv: Sequence[str]) -> int:
    """Run ``fedrisk report sweep``; 0 when written, 2 with one line when unusable."""
    try:
        folder, metric, baselines = _parse(argv)
        sweep, rows = write_sweep_report(folder, metric=metric, baselines=baselines)
    except SweepReportError as err:
        print(f"fedrisk report sweep: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"fedrisk report sweep: cannot write the report ({err})", file=sys.stderr)
        return 2
    console = Console()
    table = Table(title=f"Sweep over {sweep.key} ({len(sweep.runs)} runs)")
    for header in rows[0]:
        table.add_column(header, justify="left" if header in ("runs", "stop reason") else "right")
    for row in rows[1:]:
        table.add_row(*row)
    console.print(table)
    for name, reason in sorted(sweep.failed.items()):
        console.print(f"[yellow]skipped failed run {name}[/yellow]: {reason}")
    for name in (PLOT_FILE, CSV_FILE, MARKDOWN_FILE):
        console.print(str(folder / name))
    return 0


def _parse(argv: Sequence[str]) -> tuple[Path, str, list[Path]]:
    args, folder, metric, baselines = list(argv), None, "auc", []
    while args:
        arg = args.pop(0)
        name, _, inline = arg.partition("=")
        if name in ("--baseline", "--metric"):
            value = inline or (args.pop(0) if args else "")
            if not value:
                raise SweepReportError(f"{name} needs a value; {USAGE}")
            if name == "--metric":
                metric = value
            else:
                baselines.append(Path(value))
        elif arg.startswith("-") or folder is not None:
            raise SweepReportError(f"unexpected argument {arg!r}; {USAGE}")
        else:
            folder = Path(arg)
    if folder is None:
        raise SweepReportError(USAGE)
    return folder, metric, baselines


def _markdown(sweep: Sweep, rows: list[list[str]], metric: str) -> str:
    lines = [f"# Sweep over `{sweep.key}`: held-out {metric}", ""]
    lines.append("| " + " | ".join(rows[0]) + " |")
    lines.append("|" + "---|" * len(rows[0]))
    lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
    lines += ["", f"![{metric} against {sweep.key}]({PLOT_FILE})", ""]
    if sweep.replicated:
        lines.append("Points are means over seeds; std is the sample standard deviation.")
    for name, reason in sorted(sweep.failed.items()):
        lines.append(f"- skipped failed run `{name}`: {reason}")
    return "\n".join(lines) + "\n"


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
