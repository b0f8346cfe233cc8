"""The coordinator's ServerApp (Flower Message API).

Started by Flower's simulation engine (``fedrisk simulate``) or by ``flwr run`` on a
SuperLink; in both cases it rebuilds the run's configuration from ``run_config``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from flwr.app import ArrayRecord, Context
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import Strategy

from fedrisk.conf.privacy import PrivacyMode
from fedrisk.conf.root import FedriskConfig, settings_from_run_config
from fedrisk.conf.secagg import FailurePolicy
from fedrisk.models.tabular import build_model
from fedrisk.privacy.manifest import MANIFEST_FILE, ConsortiumManifest
from fedrisk.server.checkpoint import CheckpointWriter, config_digest, load_checkpoint
from fedrisk.server.evaluation import CentralEvaluator, HeldOutSet
from fedrisk.server.explanations import explain_final_model
from fedrisk.server.ledger_collection import collect_ledgers
from fedrisk.server.plots import plot_rounds
from fedrisk.server.prompt_grid import PromptGrid
from fedrisk.server.records import (
    MODEL_FILE,
    SUMMARY_FILE,
    RunRecorder,
    read_metrics,
    save_model,
    write_json_atomic,
)
from fedrisk.server.risk_report import final_risk_report
from fedrisk.server.roll_call import Roster, roll_call
from fedrisk.server.rounds import LoopResult, LoopSettings, RoundLoop
from fedrisk.server.update_validation import validator_for
from fedrisk.strategies import build_strategy, messages
from fedrisk.strategies.central_dp import SCOPE, wrap_central_dp
from fedrisk.strategies.secagg import wire
from fedrisk.strategies.secagg.strategy import (
    RunKeys,
    SecureAggregation,
    wrap_secure_aggregation,
)
from fedrisk.strategies.secagg.wire import ProtocolAbort


def make_server_app(run_config: Mapping[str, str] | None = None) -> ServerApp:
    """Build the fedrisk ServerApp.

    Parameters
    ----------
    run_config : Mapping[str, str] | None (default: None)
        Used instead of ``context.run_config`` when given: ``flwr run`` supplies
        the run config itself, ``flwr.simulation.run_simulation`` cannot.
    """
    server = ServerApp()

    @server.main()
    def main(grid: Grid, context: Context) -> None:
        config = dict(run_config) if run_config is not None else dict(context.run_config)
        settings = settings_from_run_config(config)
        coordinate(
            PromptGrid(grid),
            settings,
            run_dir=Path(str(config[messages.RUN_DIR])),
            run_config=config,
        )

    return server


def coordinate(
    grid: Grid, settings: FedriskConfig, *, run_dir: Path, run_config: Mapping[str, object]
) -> LoopResult:
    """Roll call, rounds, and run records for one run.

    Raises
    ------
    fedrisk.server.roll_call.RollCallError
        If too few institutions answered the roll call.
    fedrisk.server.checkpoint.CheckpointError
        If the run is resumed and its checkpoint is missing or of another run.
    """
    torch.set_num_threads(1)
    schema = settings.task.schema
    if schema is None:
        raise ValueError("`task.schema` must be resolved before the run starts; got None")
    institutions = messages.institutions_of(run_config)
    minimum = settings.strategy.min_train_nodes
    manifest = _manifest(run_config)
    keys = _run_keys(settings, manifest)
    run_id = messages.run_id_of(run_config) or str(grid.run.run_id)
    roster = roll_call(
        grid,
        expected=institutions,
        minimum=minimum,
        timeout=settings.roll_call_timeout,
        identities={r.name: manifest.public_key(r.name) for r in manifest.institutions},
        run_id=run_id,
        setup=None if keys is None else {wire.SETUP: keys.setup_record()},
    )

    held_out = HeldOutSet.load(str(run_config[messages.TEST_PATH]), schema)
    evaluator = CentralEvaluator(
        settings.task.model,
        held_out,
        threshold=settings.task.threshold,
        fpr=settings.task.false_alarm_rate,
        cost_ratio=settings.task.cost_ratio,
    )
    initial = ArrayRecord(
        build_model(settings.task.model, held_out.x.shape[1], seed=settings.seed).state_dict()
    )
    strategy = build_strategy(settings.strategy, n_institutions=len(institutions))
    if settings.privacy.mode is PrivacyMode.central:
        strategy = wrap_central_dp(
            strategy,
            settings.privacy,
            settings.strategy,
            n_institutions=len(institutions),
            seed=settings.seed,
            noise_source=settings.privacy.noise_source,
        )
    if keys is not None:
        strategy = _secure(strategy, settings, keys, roster, n_institutions=len(institutions))
    resumed = None
    if run_config.get(messages.RESUME) == "true":
        resumed = load_checkpoint(run_dir)
        resumed.check_against(run_id=run_id, settings=settings)
    recorder = RunRecorder(run_dir, history=None if resumed is None else resumed.records)
    loop = RoundLoop(
        grid,
        strategy,
        roster,
        evaluator,
        recorder,
        LoopSettings(
            rounds=settings.rounds,
            seed=settings.seed,
            timeout=settings.secagg.timeouts.train or settings.round_timeout,
            min_train_nodes=minimum,
            show_progress=True,
            skip_failed_rounds=settings.secagg.on_failure is FailurePolicy.skip,
        ),
        validator=validator_for(
            settings, run_id=run_id, initial=initial, n_institutions=len(institutions)
        ),
        checkpoints=CheckpointWriter(
            run_dir, run_id=run_id, seed=settings.seed, config_sha256=config_digest(settings)
        ),
    )
    result = loop.run(initial, resume=resumed)

    save_model(run_dir / MODEL_FILE, result.arrays)
    ledgers = (
        _collect_ledgers(grid, settings, roster, run_dir, run_config)
        if settings.privacy.mode is PrivacyMode.dpsgd
        else {}
    )
    explanations = explain_final_model(
        grid, settings, dict(roster.node_of), result.arrays, held_out_x=held_out.x, run_dir=run_dir
    )
    budgets = {
        name: figures[messages.EPSILON_BUDGET]
        for name, figures in result.privacy.items()
        if messages.EPSILON_BUDGET in figures
    }
    plot_rounds(read_metrics(run_dir), run_dir, budgets=budgets)
    risk = final_risk_report(
        grid,
        settings.task,
        dict(roster.node_of),
        result.arrays,
        evaluator,
        run_dir,
        timeout=settings.round_timeout,
    )
    write_json_atomic(
        run_dir / SUMMARY_FILE,
        {
            "rounds_completed": result.rounds_completed,
            "rounds_planned": settings.rounds,
            "stop_reason": result.stop_reason,
            "global": result.last_central,
            "federated": result.last_federated,
            "institutions": {
                name: {
                    **institution_summary(name, roster.n_train.get(name), result, settings),
                    **ledgers.get(name, {}),
                }
                for name in roster.institutions
            },
            "refusals": result.refusals,
            "institution_level": (
                {
                    **result.institution_level,
                    "noise_multiplier": settings.privacy.central_noise_multiplier,
                    "clipping_norm": settings.privacy.central_clipping_norm,
                    "noise_source": settings.privacy.noise_source.value,
                    "scope": SCOPE,
                }
                if result.institution_level
                else None
            ),
            "rejected_nodes": {str(k): v for k, v in roster.rejected.items()},
            "seed": settings.seed,
            "run_id": run_id,
            "strategy": settings.strategy.name.value,
            "privacy": settings.privacy.mode.value,
            "secagg": settings.secagg.mode.value,
            "secure_aggregation": result.secagg or None,
            "model_file": MODEL_FILE,
            **risk,
            "explanations": explanations,
        },
    )
    return result


app = make_server_app()


def _manifest(run_config: Mapping[str, object]) -> ConsortiumManifest:
    """Load the consortium manifest: every institution's key (roll call, SecAgg, ledgers).

    Raises
    ------
    ValueError
        If the run config names no manifest, or it does not validate.
    """
    path = run_config.get(messages.MANIFEST)
    if not path:
        raise ValueError(
            f"`{messages.MANIFEST}` in the run config must name the consortium manifest "
            "(nodes prove their institution against it); got none"
        )
    return ConsortiumManifest.load(Path(str(path)))


def _run_keys(settings: FedriskConfig, manifest: ConsortiumManifest) -> RunKeys | None:
    """Fresh run tag and salt, and the manifest's signing keys, under secure aggregation."""
    if not settings.secagg.enabled:
        return None
    return RunKeys.fresh({r.name: manifest.public_key(r.name) for r in manifest.institutions})


def _collect_ledgers(
    grid: Grid,
    settings: FedriskConfig,
    roster: Roster,
    run_dir: Path,
    run_config: Mapping[str, object],
) -> dict[str, dict[str, object]]:
    """Keep a verified copy of every institution's ledger, and the manifest, in ``run_dir``."""
    source = Path(str(run_config[messages.MANIFEST]))
    manifest = ConsortiumManifest.load(source)
    copy = run_dir / MANIFEST_FILE
    if not copy.exists():
        manifest.save(copy)
    return collect_ledgers(
        grid, dict(roster.node_of), manifest, run_dir, timeout=settings.roll_call_timeout
    )


def _secure(
    strategy: Strategy,
    settings: FedriskConfig,
    keys: RunKeys,
    roster: Roster,
    *,
    n_institutions: int,
) -> SecureAggregation:
    """Wrap the strategy in SecAgg+ and register the advertisements of the roll call."""
    secure = wrap_secure_aggregation(strategy, settings, keys=keys, n_institutions=n_institutions)
    for name in roster.institutions:
        advert = roster.adverts.get(name)
        if advert is None:
            roster.refusals.setdefault(name, "no secure-aggregation key advertisement")
            continue
        try:
            secure.register(name, roster.node_of[name], advert)
        except ProtocolAbort as err:
            roster.refusals[name] = f"key advertisement rejected: {err.reason}"
    return secure


def institution_summary(
    name: str, n_train: int | None, result: LoopResult, settings: FedriskConfig
) -> dict[str, object]:
    """One institution's entry in ``summary.json`` (privacy figures under DP).

    ``n_train`` is None under secure aggregation: the coordinator never learns it.
    """
    entry: dict[str, object] = {"n_train": n_train}
    figures = result.privacy.get(name)
    if settings.privacy.mode is PrivacyMode.dpsgd and figures is not None:
        entry.update(
            epsilon_spent=figures.get(messages.EPSILON),
            epsilon_budget=figures.get(messages.EPSILON_BUDGET),
            delta=figures.get(messages.DELTA),
            noise_multiplier=figures.get(messages.NOISE_MULTIPLIER),
            accountant=settings.privacy.accountant.value,
            epsilon_scope="record-level, cumulative over every run on this dataset",
        )
    if name in result.refusals:
        entry["refused"] = result.refusals[name]
    return entry
