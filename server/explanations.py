"""Explain the final global model at the institutions and aggregate (``query.explain``).

Mirrors the ledger collection at the end of a run: the coordinator sends the final model
and the Integrated Gradients baseline (the feature means of its own held-out set, so
every bank integrates from the same point) to every institution, each computes
per-feature importance sums on its own validation rows, and the coordinator forms the
row-weighted mean (:func:`fedrisk.models.explain.pool_importances`). No row moves. The
result goes to ``summary.json`` under ``explanations`` and to ``explanations.png``.

Under a privacy mechanism explanations run only by explicit opt-in
(``explain.enabled=true``); see :mod:`fedrisk.conf.explain` for what a reply reveals.
Per-bank values are written to the run record only when no privacy mechanism is on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, RecordDict
from flwr.serverapp import Grid

from fedrisk.conf.explain import ExplainConfig, release_warning, schema_groups, under_privacy
from fedrisk.conf.root import FedriskConfig
from fedrisk.models.explain import TITLES, UNITS, ExplainMethod, ImportanceSums, pool_importances
from fedrisk.server.bank_query import ask_every_bank
from fedrisk.strategies import messages

PLOT_FILE = "explanations.png"


def explain_final_model(
    grid: Grid,
    settings: FedriskConfig,
    node_of: Mapping[str, int],
    arrays: ArrayRecord,
    *,
    held_out_x: np.ndarray,
    run_dir: Path,
) -> dict[str, object]:
    """Build the run record's ``explanations``, or ``{"skipped": reason}``.

    Decides from the configuration whether to explain (see :mod:`fedrisk.conf.explain`),
    then calls :func:`collect_explanations` with the held-out feature means as baseline.
    """
    config = settings.explain
    private = under_privacy(settings.privacy, settings.secagg)
    if not config.active(private=private):
        if config.enabled is False:
            return {"skipped": "explain.enabled is false"}
        return {
            "skipped": (
                f"a privacy mechanism is on (privacy={settings.privacy.mode.value}, "
                f"secagg={settings.secagg.mode.value}); explain.enabled=true releases "
                "explanations anyway, outside the privacy guarantee"
            )
        }
    schema = settings.task.schema
    if schema is None or held_out_x.ndim != 2 or len(held_out_x) == 0:
        return {"skipped": "explanations support tabular models with a held-out set only"}
    return collect_explanations(
        grid,
        node_of,
        arrays,
        baseline=held_out_x.astype(np.float64).mean(axis=0),
        features=[g.name for g in schema_groups(schema)],
        config=config,
        warning=release_warning(settings.privacy, settings.secagg),
        secure=settings.secagg.enabled,
        run_dir=run_dir,
        timeout=settings.round_timeout,
    )


def collect_explanations(
    grid: Grid,
    node_of: Mapping[str, int],
    arrays: ArrayRecord,
    *,
    baseline: np.ndarray,
    features: Sequence[str],
    config: ExplainConfig,
    warning: str | None,
    secure: bool,
    run_dir: Path,
    timeout: float,
) -> dict[str, object]:
    """Ask every institution to explain ``arrays``, aggregate, plot; return the record.

    Parameters
    ----------
    grid : Grid
        The run's grid.
    node_of : Mapping[str, int]
        Node id of every institution that joined the run.
    arrays : ArrayRecord
        The final global model.
    baseline : numpy.ndarray
        Integrated Gradients baseline, one value per encoded column.
    features : Sequence[str]
        The table's feature names, in the order of the replies' sums.
    config : ExplainConfig
        Methods and plot settings.
    warning : str | None
        Why the release is outside the run's privacy guarantees, when a privacy
        mechanism is on (then per-bank values also stay out of the record).
    secure : bool
        Whether secure aggregation is on (then banks send means and weigh equally).
    run_dir : Path
        Where ``explanations.png`` goes.
    timeout : float
        Seconds to wait for the replies.

    Returns
    -------
    dict[str, object]
        One entry per method (feature → importance), plus ``units``, ``banks``,
        ``rows`` (None under secure aggregation), ``per_bank`` (None under privacy),
        ``failures`` (institution → reason), ``baseline``, ``data``, ``warning`` and
        ``plot``; or ``{"skipped": reason}`` if no institution answered.
    """
    request = RecordDict(
        {
            messages.ARRAYS: arrays,
            messages.CONFIG: ConfigRecord(
                {messages.EXPLAIN_BASELINE: [float(v) for v in baseline]}
            ),
        }
    )
    parts, failures = ask_every_bank(
        grid,
        node_of,
        request,
        messages.EXPLAIN_MESSAGE_TYPE,
        lambda reply, name: read_reply(reply, name, config.methods, features),
        timeout=timeout,
    )
    if not parts:
        return {"skipped": "no institution sent explanations", "failures": failures}
    banks = sorted(parts)
    record: dict[str, object] = {
        method.value: _named(features, pool_importances([parts[b][method] for b in banks]))
        for method in config.methods
    }
    record.update(
        units={m.value: UNITS[m] for m in config.methods},
        banks=banks,
        rows=None if secure else {b: parts[b][config.methods[0]].rows for b in banks},
        weighting="equal per institution (secure aggregation)" if secure else "rows",
        per_bank=None
        if warning is not None
        else {
            b: {m.value: _named(features, parts[b][m].mean()) for m in config.methods}
            for b in banks
        },
        failures=failures,
        baseline="feature means of the coordinator's held-out set",
        data=f"each institution's validation rows (at most {config.max_rows})",
        warning=warning,
        plot=PLOT_FILE,
    )
    plot_explanations(record, config.methods, run_dir / PLOT_FILE, top_k=config.top_k)
    return record


def read_reply(
    reply: Message,
    institution: str,
    methods: Sequence[ExplainMethod],
    features: Sequence[str],
) -> dict[ExplainMethod, ImportanceSums]:
    """Check one institution's explanation reply and return its sums per method.

    Raises
    ------
    fedrisk.strategies.messages.MalformedMessage
        If the reply is an error or a refusal, or lacks a method, or its features or row
        count are not what the coordinator expects (the message names the institution).
    """
    if reply.has_error():
        raise messages.MalformedMessage(
            f"{institution}'s node could not explain the model: "
            f"{messages.error_summary(reply.error.reason)}"
        )
    if messages.REFUSAL in reply.content.config_records:
        reason = reply.content.config_records[messages.REFUSAL].get(messages.REFUSAL_REASON)
        raise messages.MalformedMessage(
            f"{institution} declined: {reason if isinstance(reason, str) else repr(reason)}"
        )
    record = messages.config_of(reply.content, messages.EXPLANATION)
    sent = record.get(messages.EXPLAIN_FEATURES)
    if sent != list(features):
        raise messages.MalformedMessage(
            f"{institution}'s explanation must cover the features {list(features)}; got {sent!r}"
        )
    rows = record.get(messages.EXPLAIN_ROWS)
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
        raise messages.MalformedMessage(
            f"{institution}'s explanation `{messages.EXPLAIN_ROWS}` must be a positive "
            f"integer; got {rows!r}"
        )
    out = {}
    for method in methods:
        values = record.get(method.value)
        if not isinstance(values, list) or len(values) != len(features):
            raise messages.MalformedMessage(
                f"{institution}'s explanation must carry `{method.value}` as "
                f"{len(features)} numbers; got {values!r:.80}"
            )
        sums = np.asarray(values, dtype=np.float64)
        if not np.isfinite(sums).all():
            raise messages.MalformedMessage(
                f"{institution}'s explanation `{method.value}` must be finite"
            )
        out[method] = ImportanceSums(sums, rows)
    return out


def plot_explanations(
    record: Mapping[str, object], methods: Sequence[ExplainMethod], path: Path, *, top_k: int
) -> Path:
    """Write a bar chart of each method's ``top_k`` features (one panel per method)."""
    fig, axes = plt.subplots(
        1, len(methods), figsize=(5.2 * len(methods), 0.32 * top_k + 1.6), dpi=110, squeeze=False
    )
    for ax, method in zip(axes[0], methods, strict=True):
        values = record[method.value]
        if not isinstance(values, dict):
            continue
        ranked = sorted(values.items(), key=lambda kv: kv[1], reverse=True)[:top_k]
        names = [name for name, _ in ranked][::-1]
        ax.barh(names, [value for _, value in ranked][::-1], color="#3b6ea5")
        ax.set_title(TITLES[method], fontsize=10)
        ax.set_xlabel(UNITS[method], fontsize=8)
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle("What drives the global model (aggregated over institutions)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _named(features: Sequence[str], values: np.ndarray) -> dict[str, float]:
    return {name: float(v) for name, v in zip(features, values, strict=True)}
