"""PNG plots of a run's rounds, drawn from ``metrics.jsonl`` records."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _series(rounds: Sequence[dict], section: str, key: str) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for record in rounds:
        value = (record.get(section) or {}).get(key)
        if value is not None:
            xs.append(int(record["round"]))
            ys.append(float(value))
    return xs, ys


def plot_rounds(rounds: Sequence[dict], out_dir: Path) -> list[Path]:
    """Write ``auc.png`` and ``loss.png`` for the given round records.

    Parameters
    ----------
    rounds : Sequence[dict]
        Lines of ``metrics.jsonl``.
    out_dir : Path
        Where the PNG files go.

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
    return written
