"""``fedrisk audit empirical``: canaries in, one training run, a lower bound on ε out.

The one-run audit of Steinke, Nasr and Jagielski (NeurIPS 2023): draw ``m`` canary
records, put each into one institution's training file with probability 1/2, run the
ordinary simulation, score every canary by its loss under the final global model and
turn the membership guesses into an empirical lower bound on ε
(:mod:`fedrisk.privacy.empirical_bound`). The bound is reported beside the theoretical ε
of the canary institution's ledger; a bound above it means the DP implementation or its
accounting is broken.

Everything the audit needs is written under ``RUN/empirical/`` (the canaries, which were
included, the report), so :func:`score_run` reproduces the bound from files alone.

Notes
-----
Canaries have features uniform over the schema's ranges and levels and a fair-coin
label, so the model can fit one only by memorising it. The included ones are placed at
positions the node's seeded split (:func:`fedrisk.client.node_data.load_node_data`)
puts in its training part, and the hook checks this with the node's own loader. The
attack scores each canary by minus its BCE loss under the final global model; the best
of a fixed grid of guess counts is reported with β split over the grid (see
:func:`fedrisk.privacy.empirical_bound.audit_scores`), so the bound holds with confidence
``1 - β`` overall. The theorem assumes add/remove DP for each canary; DP-SGD's sample
rate is computed from the institution's row count, which the canaries change, as in
any run (the ledger accounts for the file actually trained on). The bound is for the
canary institution's record-level guarantee, so it is compared with that
institution's ``epsilon_spent`` (``privacy=dpsgd``); other modes show no theoretical ε.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from fedrisk.client.node_data import VALIDATION_FRACTION, institution_seed, load_node_data
from fedrisk.conf.root import ConfigError, FedriskConfig
from fedrisk.data.encoding import TableEncoder
from fedrisk.data.schema import FeatureKind, TableSchema
from fedrisk.privacy.empirical_bound import OneRunAudit, audit_scores
from fedrisk.simulations.consortium import TRAIN_FILE, BuiltConsortium

USAGE = (
    "usage: fedrisk audit empirical [--canaries=M] [--bank=NAME] [--beta=B] [OVERRIDES…]\n"
    "  Insert M canary records (default 1000) into one institution's training data (default:\n"
    "  the largest), each with probability 1/2; run `fedrisk simulate OVERRIDES…`; attack the\n"
    "  final model with a loss threshold and report the one-run empirical lower bound on ε\n"
    "  (confidence 1-B, default B=0.05) beside the institution's theoretical ε.\n"
    "  Writes RUN/empirical/{canaries.parquet,canaries.json,report.json}. Exit 0 when the\n"
    "  bound is consistent, 1 when it exceeds the theoretical ε, 2 on bad input.\n"
    "  e.g. fedrisk audit empirical consortium=banks_3 privacy=dpsgd privacy.target_epsilon=2"
)
EXIT_VIOLATION = 1
EXIT_USAGE = 2
EMPIRICAL_DIR = "empirical"
CANARY_FILE = "canaries.parquet"
CANARY_META = "canaries.json"
REPORT_FILE = "report.json"
DEFAULT_CANARIES = 1000
_CANARY_STREAM = 0xCA4A21


def empirical_audit_command(argv: Sequence[str]) -> int:
    """Run ``fedrisk audit empirical``; return the exit code.

    Parameters
    ----------
    argv : Sequence[str]
        Options (``--canaries=M``, ``--bank=NAME``, ``--beta=B``) and Hydra overrides.

    Returns
    -------
    int
        0 if the empirical bound does not exceed the theoretical ε, 1 if it does,
        2 on bad input (one line on stderr).
    """
    from fedrisk.simulations.entry import check_overrides, simulate

    try:
        m, bank, beta, overrides = _parse(argv)
        if m is None:
            print(USAGE)
            return 0
        check_overrides(overrides)
    except (ConfigError, ValueError) as err:
        print(f"fedrisk audit empirical: {err}", file=sys.stderr)
        return EXIT_USAGE
    inserter = CanaryInserter(m=m, bank=bank)
    try:
        code = simulate(overrides, data_hook=inserter)
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else EXIT_USAGE
    if code != 0 or inserter.run_dir is None:
        return code or EXIT_USAGE
    report = score_run(inserter.run_dir, beta=beta)
    _print_report(report)
    return EXIT_VIOLATION if report["exceeds_theoretical"] else 0


class CanaryInserter:
    """Data hook: draw the canaries and put the included ones into one training file.

    Parameters
    ----------
    m : int
        Number of canaries, at least 2.
    bank : str | None (default: None)
        Institution that receives them; ``None`` picks the one with the most rows.

    Raises
    ------
    ValueError
        If ``m`` is below 2.
    """

    def __init__(self, *, m: int, bank: str | None = None) -> None:
        if m < 2:
            raise ValueError(f"`m` must be at least 2; got {m}")
        self.m, self.bank = m, bank
        self.run_dir: Path | None = None

    def __call__(self, settings: FedriskConfig, built: BuiltConsortium) -> None:
        """Insert the canaries into ``built``'s chosen institution (see class doc).

        Raises
        ------
        ConfigError
            If the chosen institution does not exist or is too small to hold them.
        """
        files = {name: built.data_dir / name / TRAIN_FILE for name in built.institutions}
        tables = {name: pd.read_parquet(path) for name, path in files.items()}
        bank = self.bank or max(tables, key=lambda name: len(tables[name]))
        if bank not in tables:
            raise ConfigError(f"`--bank` must be one of {sorted(tables)}; got {bank!r}")
        rng = np.random.default_rng(np.random.SeedSequence([settings.seed, _CANARY_STREAM]))
        canaries = draw_canaries(built.schema, self.m, rng).astype(tables[bank].dtypes.to_dict())
        included = rng.random(self.m) < 0.5
        merged, positions = _merge_into_training_part(
            tables[bank], canaries[included], settings.seed, bank
        )
        merged.to_parquet(files[bank], index=False)
        node = load_node_data(
            files[bank], built.schema, institution=bank, min_rows=1, seed=settings.seed
        )
        if node.n_train < int(included.sum()) or not _rows_in(
            merged.iloc[positions], node.x_train, built.schema
        ):
            raise ConfigError(f"canaries did not all land in {bank}'s training split")
        self.run_dir = built.data_dir.parent
        out = self.run_dir / EMPIRICAL_DIR
        out.mkdir(parents=True, exist_ok=True)
        canaries.assign(canary_id=np.arange(self.m), included=included).to_parquet(
            out / CANARY_FILE, index=False
        )
        meta = {
            "bank": bank,
            "m": self.m,
            "included": int(included.sum()),
            "seed": settings.seed,
            "kind": "features uniform over the schema's ranges and levels, label a fair coin",
            "inclusion_probability": 0.5,
        }
        (out / CANARY_META).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def draw_canaries(schema: TableSchema, m: int, rng: np.random.Generator) -> pd.DataFrame:
    """Draw ``m`` atypical records: features uniform over the schema, random labels.

    Numeric features are uniform over ``[low, high]`` (on the ``log1p`` scale for
    ``log`` features, rounded for ``integer`` ones), categorical ones uniform over their
    levels, and the label is a fair coin, so a model can fit a canary's label only by
    memorising that canary.
    """
    columns: dict[str, np.ndarray] = {}
    for spec in schema.features:
        if spec.kind is FeatureKind.categorical:
            columns[spec.name] = np.asarray(spec.levels, dtype=object)[
                rng.integers(len(spec.levels), size=m)
            ]
            continue
        low, high = float(spec.low or 0.0), float(spec.high or 0.0)
        if spec.log:
            values = np.expm1(rng.uniform(np.log1p(low), np.log1p(high), size=m))
        else:
            values = rng.uniform(low, high, size=m)
        columns[spec.name] = np.clip(np.round(values), low, high) if spec.integer else values
    columns[schema.label] = rng.integers(2, size=m)
    return pd.DataFrame(columns)


def score_run(run_dir: Path, *, beta: float = 0.05) -> dict:
    """Attack the run's final model on its canaries and write ``empirical/report.json``.

    Raises
    ------
    FileNotFoundError
        If the run has no canaries, model, config or summary.
    ValueError
        If ``beta`` is not in (0, 1).
    """
    import torch
    import yaml

    from fedrisk.conf.privacy import PrivacyMode
    from fedrisk.conf.root import load_settings
    from fedrisk.models.tabular import build_model, predict_logits
    from fedrisk.server.records import MODEL_FILE, load_model
    from fedrisk.simulations.consortium import resolve_schema

    out = run_dir / EMPIRICAL_DIR
    settings = resolve_schema(load_settings(yaml.safe_load((run_dir / "config.yaml").read_text())))
    schema = settings.task.schema
    if schema is None:  # resolve_schema always fills it
        raise ValueError("`task.schema` must be resolved; got None")
    meta = json.loads((out / CANARY_META).read_text())
    canaries = pd.read_parquet(out / CANARY_FILE)
    encoder = TableEncoder(schema)
    model = build_model(settings.task.model, encoder.n_inputs, seed=0)
    weights = load_model(run_dir / MODEL_FILE)
    model.load_state_dict({name: torch.from_numpy(array) for name, array in weights.items()})
    logits = predict_logits(model, encoder.encode(canaries))
    labels = encoder.labels(canaries).astype(np.float64)
    losses = np.logaddexp(0.0, np.where(labels > 0.5, -logits, logits))
    summary = json.loads((run_dir / "summary.json").read_text())
    bank = meta["bank"]
    facts = summary.get("institutions", {}).get(bank, {})
    private = settings.privacy.mode is PrivacyMode.dpsgd
    delta = float(facts.get("delta", settings.privacy.delta))
    audit = audit_scores(-losses, canaries["included"].to_numpy(bool), beta=beta, delta=delta)
    theoretical = float(facts["epsilon_spent"]) if private and "epsilon_spent" in facts else None
    report = _report(meta, audit, theoretical, settings.privacy.mode.value, losses, canaries)
    out.mkdir(exist_ok=True)
    (out / REPORT_FILE).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    return report


def _report(
    meta: dict,
    audit: OneRunAudit,
    theoretical: float | None,
    mode: str,
    losses: np.ndarray,
    canaries: pd.DataFrame,
) -> dict:
    inside = canaries["included"].to_numpy(bool)
    return {
        "bank": meta["bank"],
        "privacy": mode,
        "canaries": meta["m"],
        "canaries_in": int(inside.sum()),
        "attack": "loss threshold on the final global model (score = -BCE loss)",
        "method": "one-run audit, Steinke, Nasr and Jagielski (NeurIPS 2023), Bonferroni grid",
        "audit": asdict(audit),
        "mean_loss_in": float(losses[inside].mean()) if inside.any() else None,
        "mean_loss_out": float(losses[~inside].mean()) if (~inside).any() else None,
        "epsilon_lower_bound": audit.epsilon,
        "epsilon_theoretical": theoretical,
        "exceeds_theoretical": theoretical is not None and audit.epsilon > theoretical,
        "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _print_report(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    audit = report["audit"]
    table = Table(title=f"empirical privacy audit — canaries in {report['bank']}")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    theoretical = report["epsilon_theoretical"]
    rows = [
        ("privacy", report["privacy"]),
        ("canaries (in / total)", f"{report['canaries_in']} / {report['canaries']}"),
        ("guesses in / out", f"{audit['k_in']} / {audit['k_out']}"),
        ("correct guesses", f"{audit['correct']} of {audit['k_in'] + audit['k_out']}"),
        ("confidence", f"{1 - audit['beta']:.0%} (δ = {audit['delta']:g})"),
        ("mean loss in / out", f"{_num(report['mean_loss_in'])} / {_num(report['mean_loss_out'])}"),
        ("empirical ε (lower bound)", f"{report['epsilon_lower_bound']:.3f}"),
        ("theoretical ε (ledger)", "∞ (no DP)" if theoretical is None else f"{theoretical:.3f}"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    console = Console()
    console.print(table)
    if report["exceeds_theoretical"]:
        console.print("[bold red]the empirical bound exceeds the theoretical ε[/bold red]")


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _merge_into_training_part(
    table: pd.DataFrame, canaries: pd.DataFrame, seed: int, bank: str
) -> tuple[pd.DataFrame, np.ndarray]:
    """Interleave ``canaries`` into ``table`` at positions the node will train on."""
    total = len(table) + len(canaries)
    order = np.random.default_rng(institution_seed(seed, bank)).permutation(total)
    n_val = round(total * VALIDATION_FRACTION)
    if total - n_val < len(canaries):
        raise ConfigError(f"{bank} is too small to hold {len(canaries)} canaries")
    positions = np.sort(order[n_val : n_val + len(canaries)])
    is_canary = np.zeros(total, dtype=bool)
    is_canary[positions] = True
    merged = pd.concat([table, canaries], ignore_index=True)
    index = np.empty(total, dtype=np.int64)
    index[~is_canary] = np.arange(len(table))
    index[is_canary] = len(table) + np.arange(len(canaries))
    return merged.iloc[index].reset_index(drop=True), positions


def _rows_in(rows: pd.DataFrame, x_train: np.ndarray, schema: TableSchema) -> bool:
    encoded = TableEncoder(schema).encode(rows)
    known = {row.tobytes() for row in np.ascontiguousarray(x_train)}
    return all(row.tobytes() in known for row in encoded)


def _parse(argv: Sequence[str]) -> tuple[int | None, str | None, float, list[str]]:
    m: int | None = DEFAULT_CANARIES
    bank: str | None = None
    beta = 0.05
    overrides: list[str] = []
    for arg in argv:
        key, _, value = arg.partition("=")
        if arg in ("-h", "--help"):
            m = None
        elif key == "--canaries":
            if not value.isdigit() or int(value) < 2:
                raise ValueError(f"`--canaries` must be an integer >= 2; got {value!r}")
            m = int(value) if m is not None else None
        elif key == "--bank" and value:
            bank = value
        elif key == "--beta":
            try:
                beta = float(value)
            except ValueError:
                raise ValueError(f"`--beta` must be a number in (0, 1); got {value!r}") from None
            if not 0.0 < beta < 1.0:
                raise ValueError(f"`--beta` must be a number in (0, 1); got {value!r}")
        elif arg.startswith("-"):
            raise ValueError(f"unknown option {arg!r} (multirun is not supported); see --help")
        else:
            overrides.append(arg)
    return m, bank, beta, overrides
