"""The runs of a Hydra multirun and the one configuration key they sweep.

Reads files only: every run directory's ``config.yaml`` (the resolved configuration)
and ``summary.json``. A run without a readable summary is *failed*: listed and left out.
The swept key is the one configuration key whose value differs between the runs. Two
exceptions keep common sweeps readable:

- ``seed`` varying beside one other key makes the seeds replicates of each point;
- when runs with ``privacy.mode: none`` sit beside private runs, they are the
  non-private baseline (a horizontal line), and the key is found among the private runs.

A swap of the consortium group (``consortium=banks_3,banks_5``) changes many keys under
``consortium.``; it is read as a sweep over the number of institutions.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

CONFIG_FILE = "config.yaml"
SUMMARY_FILE = "summary.json"
#: The pseudo-key of a consortium-group sweep: the number of institutions.
BANKS_KEY = "institutions (count)"
SEED_KEY = "seed"
PRIVACY_MODE_KEY = "privacy.mode"


class SweepReportError(Exception):
    """The folder is not a usable sweep; the message is one line naming the cause."""


@dataclass(frozen=True)
class SweepRun:
    """One run of the sweep.

    Attributes
    ----------
    name : str
        The run's folder name (Hydra's job number).
    path : Path
        The run directory.
    config : dict[str, object]
        ``config.yaml`` flattened to dotted keys (lists kept whole).
    summary : dict
        ``summary.json``.
    """

    name: str
    path: Path
    config: dict[str, object]
    summary: dict

    def metric(self, name: str) -> float | None:
        """Return the held-out ``name`` (``summary.global``), or None if not recorded."""
        value = (self.summary.get("global") or {}).get(name)
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            return None
        return float(value)

    def epsilon_spent(self) -> float | None:
        """Return the largest cumulative record-level ε any institution spent, if any."""
        values = [
            entry.get("epsilon_spent")
            for entry in (self.summary.get("institutions") or {}).values()
            if isinstance(entry, dict)
        ]
        numbers = [float(v) for v in values if isinstance(v, int | float)]
        return max(numbers) if numbers else None

    def n_institutions(self) -> int:
        """How many institutions took part (from ``summary.json``)."""
        return len(self.summary.get("institutions") or {})


@dataclass(frozen=True)
class Sweep:
    """The runs of a multirun, split by role, and the swept key.

    Attributes
    ----------
    key : str
        The swept configuration key (dotted), or :data:`BANKS_KEY`.
    runs : list[SweepRun]
        The sweep's points (replicates share a value).
    baselines : list[SweepRun]
        Non-private runs drawn as horizontal lines.
    failed : dict[str, str]
        Run folder → why it was left out.
    replicated : bool
        Whether ``seed`` varies too (points are means over seeds).
    """

    key: str
    runs: list[SweepRun]
    baselines: list[SweepRun]
    failed: dict[str, str]
    replicated: bool

    def value(self, run: SweepRun) -> object:
        """Return the swept key's value in ``run``."""
        return run.n_institutions() if self.key == BANKS_KEY else run.config.get(self.key)


def load_sweep(folder: Path, *, baselines: Sequence[Path] = ()) -> Sweep:
    """Read a multirun folder and find the key it sweeps.

    Parameters
    ----------
    folder : Path
        A Hydra multirun directory (one subfolder per run, each with ``config.yaml``).
    baselines : Sequence[Path] (default: ())
        Extra run directories to draw as baselines (e.g. a non-private run).

    Returns
    -------
    Sweep
        The runs, the baselines, the failed runs and the swept key.

    Raises
    ------
    SweepReportError
        If the folder has no runs, fewer than two runs completed, the runs differ in
        no key or in more than one (the keys are named), or a baseline is unreadable.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise SweepReportError(f"{folder}: no such directory (expected a multirun folder)")
    dirs = sorted(
        (d for d in folder.iterdir() if d.is_dir() and (d / CONFIG_FILE).is_file()),
        key=lambda d: (not d.name.isdigit(), int(d.name) if d.name.isdigit() else 0, d.name),
    )
    if not dirs:
        raise SweepReportError(
            f"{folder}: no runs (no subfolder with {CONFIG_FILE}; pass the folder "
            "`fedrisk simulate --multirun` printed)"
        )
    runs, failed = [], {}
    for path in dirs:
        try:
            runs.append(read_run(path))
        except SweepReportError as err:
            failed[path.name] = str(err)
    extra = [read_run(Path(p)) for p in baselines]
    private = [r for r in runs if r.config.get(PRIVACY_MODE_KEY) not in (None, "none")]
    plain = [r for r in runs if r.config.get(PRIVACY_MODE_KEY) in (None, "none")]
    points, base = (private, plain) if private and plain else (runs, [])
    if len(points) < 2:
        raise SweepReportError(
            f"{folder}: {len(points)} completed run(s) to compare; a sweep needs at least two"
            + (f" ({len(failed)} failed: {', '.join(sorted(failed))})" if failed else "")
        )
    key, replicated = swept_key(points, folder)
    return Sweep(key, points, base + extra, failed, replicated)


def read_run(path: Path) -> SweepRun:
    """Read one run directory's ``config.yaml`` and ``summary.json``.

    Raises
    ------
    SweepReportError
        If either file is missing or malformed (the message names the file).
    """
    summary_path, config_path = path / SUMMARY_FILE, path / CONFIG_FILE
    if not summary_path.is_file():
        raise SweepReportError(f"{summary_path}: missing (the run did not finish)")
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as err:
        raise SweepReportError(" ".join(f"{path}: unreadable record ({err})".split())) from None
    if not isinstance(summary, dict) or not isinstance(summary.get("global", {}), dict):
        raise SweepReportError(f"{summary_path}: not a run summary (no `global` object)")
    if not isinstance(config, dict):
        raise SweepReportError(f"{config_path}: not a configuration mapping")
    return SweepRun(path.name, path, flatten(config), summary)


def flatten(mapping: Mapping[str, object], prefix: str = "") -> dict[str, object]:
    """Flatten nested mappings to dotted keys; lists stay whole (compared as values)."""
    out: dict[str, object] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def swept_key(runs: Sequence[SweepRun], folder: Path) -> tuple[str, bool]:
    """Find the one key whose value differs between ``runs``, and whether seeds replicate.

    Raises
    ------
    SweepReportError
        If no key or more than one key differs.
    """
    keys = sorted({k for r in runs for k in r.config})
    differing = [k for k in keys if len({_canonical(r.config.get(k)) for r in runs}) > 1]
    replicated = SEED_KEY in differing and len(differing) > 1
    if replicated:
        differing.remove(SEED_KEY)
    if (
        len(differing) > 1
        and all(k.startswith("consortium.") for k in differing)
        and len({r.n_institutions() for r in runs}) > 1
    ):
        return BANKS_KEY, replicated
    if not differing:
        raise SweepReportError(f"{folder}: the runs do not differ in any configuration key")
    if len(differing) > 1:
        shown = ", ".join(differing[:8]) + (" …" if len(differing) > 8 else "")
        raise SweepReportError(
            f"{folder}: the runs differ in {len(differing)} keys ({shown}); a sweep report "
            "plots one key (seeds may vary beside it)"
        )
    return differing[0], replicated


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, default=str)
