"""PNG plots of a run's rounds, drawn from ``metrics.jsonl`` records."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from fedrisk.models.calibration_metrics import CalibrationCurve


def _series(rounds: Sequence[dict], section: str, key: str) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for record in rounds:
        value = (record.get(section) or {}).get(key)
        if value is not None:
            xs.append(int(record["round"]))
            ys.append(float(value))
    return xs, ys


def plot_rounds(
    rounds: Sequence[dict], out_dir: Path, *, budgets: dict[str, float] | None = None
) -> list[Path]:
    """Write ``auc.png``, ``loss.png`` and (under DP) ``epsilon.png``.

    Parameters
    ----------
    rounds : Sequence[dict]
        Lines of ``metrics.jsonl``.
    out_dir : Path
        Where the PNG files go.
    budgets : dict[str, float] | None (default: None)
        Each institution's ε budget, drawn as a dashed line.

    Returns
    -------
    list[Path]
        The files written.
    """
    panels = {
        "auc.png": (
            "ROC-AUC of the global model",
            [
                ("central", "auc", "held-out set (coordinator)"),
                ("federated", "auc", "institutions' validation rows (weighted)"),
            ],
        ),
        "loss.png": (
            "Loss",
            [
                ("train", "loss", "local training loss (weighted)"),
                ("central", "log_loss", "held-out log-loss"),
                ("federated", "log_loss", "validation log-loss (weighted)"),
            ],
        ),
    }
    written = []
    for name, (title, lines) in panels.items():
        fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
        for section, key, label in lines:
            xs, ys = _series(rounds, section, key)
            if xs:
                ax.plot(xs, ys, marker="o", markersize=3, label=label)
        ax.set_xlabel("round")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
        fig.tight_layout()
        path = out_dir / name
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    if any(record.get("epsilon") for record in rounds):
        written.append(plot_epsilon(rounds, budgets or {}, out_dir))
    return written


def plot_epsilon(rounds: Sequence[dict], budgets: dict[str, float], out_dir: Path) -> Path:
    """Write ``epsilon.png``: each institution's cumulative ε per round and its budget."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
    names = sorted({name for record in rounds for name in (record.get("epsilon") or {})})
    for name in names:
        xs, ys = _series(rounds, "epsilon", name)
        (line,) = ax.plot(xs, ys, marker="o", markersize=3, label=name)
        if name in budgets:
            ax.axhline(budgets[name], color=line.get_color(), linestyle="--", linewidth=0.8)
    ax.set_xlabel("round")
    ax.set_ylabel("cumulative ε (record-level)")
    ax.set_title("Privacy spent per institution (dashed: budget)")
    ax.grid(alpha=0.3)
    if names:
        ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    path = out_dir / "epsilon.png"
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_calibration(curve: CalibrationCurve, path: Path) -> Path:
    """Write the reliability diagram of the global model on the held-out set.

    Parameters
    ----------
    curve : CalibrationCurve
        Mean predicted probability, observed rate and rows of each non-empty bin.
    path : Path
        The PNG file to write.

    Returns
    -------
    Path
        ``path``.
    """
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(6.4, 5.6), dpi=110, sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    top.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=0.8, label="perfect")
    top.plot(
        curve.mean_predicted, curve.observed_rate, marker="o", markersize=4, label="global model"
    )
    top.set_ylabel("observed positive rate")
    top.set_title("Calibration of the global model (held-out set)")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.grid(alpha=0.3)
    top.legend(fontsize=8, loc="upper left")
    bottom.bar(curve.mean_predicted, curve.count, width=0.05, color="tab:blue", alpha=0.6)
    bottom.set_yscale("log")
    bottom.set_xlabel("predicted probability (bin mean)")
    bottom.set_ylabel("rows")
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
