"""The run directory: per-round metrics, summary and the final model, written safely.

Every JSON file is written atomically (temporary file, fsync, rename), and
non-finite floats become ``null`` so that every file is strict JSON.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from flwr.app import ArrayRecord

METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
MODEL_FILE = "model.npz"


def json_safe(value: object) -> object:
    """Return ``value`` with NaN/Inf replaced by ``None`` and numpy scalars as Python."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json_atomic(path: Path, payload: object) -> None:
    """Write ``payload`` as indented strict JSON, replacing ``path`` atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        json.dump(json_safe(payload), handle, indent=2, sort_keys=True, allow_nan=False)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def read_metrics(run_dir: Path) -> list[dict]:
    """Read every round's line of ``metrics.jsonl``."""
    path = run_dir / METRICS_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def save_model(path: Path, arrays: ArrayRecord) -> None:
    """Save a model's arrays as ``.npz`` (no pickle), keyed by parameter name."""
    tensors = {name: np.asarray(array.numpy()) for name, array in arrays.items()}
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    np.savez(tmp, **tensors)  # type: ignore[arg-type]  # numpy's stub types **kwds as allow_pickle
    os.replace(tmp, path)


def load_model(path: Path) -> dict[str, np.ndarray]:
    """Load arrays saved by :func:`save_model` (pickle disabled)."""
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


class RunRecorder:
    """Appends one JSON line per round to ``metrics.jsonl`` in the run directory.

    Parameters
    ----------
    run_dir : Path
        The run directory (created if missing). An existing ``metrics.jsonl`` is
        replaced: a run starts its record afresh.
    history : list[dict] (default: [])
        Earlier rounds' records (a resumed run's checkpoint), written first.
    """

    def __init__(self, run_dir: Path, *, history: list[dict] | None = None) -> None:
        self.run_dir = run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        self._metrics = run_dir / METRICS_FILE
        self._metrics.write_text("")
        for record in history or []:
            self.round(record)

    def history(self) -> list[dict]:
        """Return every record appended so far, read back from disk (none kept in memory)."""
        return read_metrics(self.run_dir)

    def amend_last(self, extra: Mapping[str, object]) -> None:
        """Add ``extra`` to the last record (e.g. the final model's evaluation), atomically.

        Raises
        ------
        ValueError
            If no record has been written yet.
        """
        records = self.history()
        if not records:
            raise ValueError(f"`{METRICS_FILE}` must hold a record to amend; got none")
        records[-1].update({str(k): json_safe(v) for k, v in extra.items()})
        tmp = self._metrics.with_name(f".{METRICS_FILE}.tmp")
        with tmp.open("w", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps(record, sort_keys=True, allow_nan=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self._metrics)

    def round(self, record: Mapping[str, object]) -> None:
        """Append one round's record and flush it to disk."""
        line = json.dumps(json_safe(record), sort_keys=True, allow_nan=False)
        with self._metrics.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())
