"""The coordinator's round loop over a ``flwr.serverapp.strategy`` strategy.

Each round: select eligible institutions (seeded), train, aggregate in a fixed
institution order (so the same seed gives the same model to the last digit),
evaluate centrally (the new aggregate) and federated, and append the round to
``metrics.jsonl``. After the last round, one federated evaluation of the final model.

A bank's node evaluates only models it was sent to train from in the run, and the
run's final model once (`fedrisk.client.released_models`): evaluation must not be an
oracle that scores any model the coordinator crafts. So the federated evaluation of
round r is of the model round r *started from*, on the institutions that were sent it
(``federated_model: "round_start"`` in the round's record), and the final model's
federated evaluation, flagged ``final-model``, is added to the last record under
``final`` and is the summary's ``federated``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from flwr.app import ArrayRecord, ConfigRecord, Message
from flwr.serverapp import Grid
from flwr.serverapp.exception import PrivacyBudgetExhausted
from flwr.serverapp.strategy import Strategy
from flwr.serverapp.strategy.dp_fixed_clipping import DifferentialPrivacyFixedClippingBase
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fedrisk.server.checkpoint import Checkpoint, CheckpointWriter
from fedrisk.server.evaluation import FederatedEvaluation, federated_metrics
from fedrisk.server.grid_view import EligibleGrid
from fedrisk.server.loop_state import loop_state, restore_loop
from fedrisk.server.records import RunRecorder
from fedrisk.server.roll_call import Roster
from fedrisk.server.round_replies import ReplySorter
from fedrisk.server.strategy_state import restore_strategy, strategy_chain
from fedrisk.server.update_validation import UpdateValidator
from fedrisk.strategies import messages
from fedrisk.strategies.secagg.strategy import SecureAggregation
from fedrisk.strategies.secagg.wire import ProtocolAbort

TRAIN_STAGE, EVALUATE_STAGE, FINAL_STAGE = 0, 1, 2
#: The local training loss in a training reply's metrics (sent only if the bank allows).
TRAIN_LOSS = "train_loss"
#: What a round record's ``federated`` metrics describe: the model the round trained from.
FEDERATED_MODEL = "round_start"


@dataclass
class LoopResult:
    """How the loop ended."""

    arrays: ArrayRecord
    rounds_completed: int
    stop_reason: str
    last_central: dict[str, float] = field(default_factory=dict)
    last_federated: dict[str, float] = field(default_factory=dict)
    privacy: dict[str, dict[str, float]] = field(default_factory=dict)
    refusals: dict[str, str] = field(default_factory=dict)
    institution_level: dict[str, float] = field(default_factory=dict)
    secagg: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class LoopSettings:
    """What the loop needs from the run's configuration."""

    rounds: int
    seed: int
    timeout: float
    min_train_nodes: int
    show_progress: bool = True
    skip_failed_rounds: bool = False


class RoundLoop:
    """Run the federated rounds of one run.

    Parameters
    ----------
    grid : Grid
        Flower's grid.
    strategy : Strategy
        The aggregation rule.
    roster : Roster
        Institutions that answered the roll call.
    evaluate : Callable[[ArrayRecord], dict[str, float]]
        Centralised evaluation of a global model.
    recorder : RunRecorder
        Where each round is recorded.
    settings : LoopSettings
        Rounds, seed, timeout and the training quorum.
    validator : UpdateValidator | None (default: None)
        Checks every update before aggregation; a rejected one is recorded under
        ``rejected`` in ``metrics.jsonl`` with its reason and left out.
    checkpoints : CheckpointWriter | None (default: None)
        Writes the checkpoint of every completed round, before its record is appended
        to ``metrics.jsonl`` (a round in ``metrics.jsonl`` is always checkpointed), and
        one of round 0 before round 1 (so a crash in round 1 resumes in the same run).
    """

    def __init__(
        self,
        grid: Grid,
        strategy: Strategy,
        roster: Roster,
        evaluate: Callable[[ArrayRecord], dict[str, float]],
        recorder: RunRecorder,
        settings: LoopSettings,
        *,
        validator: UpdateValidator | None = None,
        checkpoints: CheckpointWriter | None = None,
    ) -> None:
        self._grid = grid
        self._strategy = strategy
        self._roster = roster
        self._evaluate = evaluate
        self._recorder = recorder
        self._settings = settings
        self._exhausted: dict[str, str] = dict(roster.refusals)
        self._privacy = {name: dict(figures) for name, figures in roster.privacy.items()}
        self._secagg = strategy if isinstance(strategy, SecureAggregation) else None
        self._replies = ReplySorter(
            {node: name for name, node in roster.node_of.items()},
            timeout=settings.timeout,
            secure=self._secagg,
        )
        self._dp = _dp_wrapper(strategy)
        self._validator = validator
        self._checkpoints = checkpoints

    def run(self, initial: ArrayRecord, *, resume: Checkpoint | None = None) -> LoopResult:
        """Train for the configured rounds or until too few institutions can train.

        With ``resume``, continue after its completed round from its model and state
        (``initial`` is then unused).
        """
        result = LoopResult(
            arrays=initial,
            rounds_completed=0,
            stop_reason="completed",
            privacy=self._privacy,
            refusals=self._exhausted,
        )
        if resume is None:
            self._checkpoint(0, result, [])  # the run id and start, before round 1
        first = 1 if resume is None else self._restore(resume, result)
        columns = (
            TextColumn("[bold]federated rounds"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"),
        )
        with Progress(*columns, disable=not self._settings.show_progress) as bar:
            task = bar.add_task(
                "rounds", total=self._settings.rounds, completed=first - 1, status=""
            )
            for server_round in range(first, self._settings.rounds + 1):
                stop = self._round(server_round, result)
                if stop:
                    result.stop_reason = stop
                    break
                auc = result.last_central.get("auc", float("nan"))
                bar.update(task, advance=1, status=f"held-out AUC {auc:.4f}")
        if result.rounds_completed > 0:
            self._final_evaluation(result)
        return result

    def _final_evaluation(self, result: LoopResult) -> None:
        """Evaluate the final model federated, once, on every institution of the roster.

        Its mean becomes ``result.last_federated`` (the summary's ``federated``); the
        whole evaluation is added to the last record of ``metrics.jsonl`` as ``final``.
        """
        nodes = [self._roster.node_of[name] for name in self._roster.institutions]
        final = self._federated(result.rounds_completed, result.arrays, nodes, final=True)
        result.last_federated = final.mean
        if self._recorder.history():
            self._recorder.amend_last(
                {"final": {**final.record(), "model_round": result.rounds_completed}}
            )

    def _federated(
        self, server_round: int, arrays: ArrayRecord, nodes: list[int], *, final: bool
    ) -> FederatedEvaluation:
        """Ask the strategy's sample of ``nodes`` (institution order) to evaluate ``arrays``."""
        if len(nodes) < self._settings.min_train_nodes:
            return FederatedEvaluation()  # the strategy would wait for more nodes
        view = EligibleGrid(self._grid, nodes)
        view.seed_sampling(
            self._settings.seed, server_round, FINAL_STAGE if final else EVALUATE_STAGE
        )
        config = ConfigRecord({messages.FINAL_MODEL: True} if final else {})
        sent = list(self._strategy.configure_evaluate(server_round, arrays, config, view))  # type: ignore[arg-type]
        return federated_metrics(self._exchange(sent), name_of=self._replies.name)

    def _round(self, server_round: int, result: LoopResult) -> str | None:
        started = time.perf_counter()
        eligible = [i for i in self._roster.institutions if i not in self._exhausted]
        if len(eligible) < self._settings.min_train_nodes:
            return (
                f"before round {server_round}: only {len(eligible)} institutions can still "
                f"train (need {self._settings.min_train_nodes}); "
                + "; ".join(f"{k} refused: {v}" for k, v in sorted(self._exhausted.items()))
            )
        view = EligibleGrid(self._grid, [self._roster.node_of[i] for i in eligible])
        started_from = result.arrays

        view.seed_sampling(self._settings.seed, server_round, TRAIN_STAGE)
        try:
            sent = list(
                self._strategy.configure_train(server_round, result.arrays, ConfigRecord(), view)  # type: ignore[arg-type]
            )
        except PrivacyBudgetExhausted as err:
            return f"before round {server_round}: institution-level privacy budget: {err}"
        except ProtocolAbort as err:
            aborted_round: dict[str, object] = {
                "round": server_round,
                "aggregated": False,
                "secagg": {"failure": str(err)},
            }
            return self._failed(server_round, aborted_round, str(err), result)
        replies = self._replies.training(sent, self._exchange(sent))
        self._exhausted.update(replies.refused)
        for name, figures in replies.privacy.items():  # rejected updates spent theirs too
            self._privacy.setdefault(name, {}).update(figures)
        rejected = (
            {}
            if self._validator is None
            else self._validator.screen(
                dict(replies.updates), server_round=server_round, global_arrays=result.arrays
            )
        )
        ok = [r for name, r in replies.updates.items() if name not in rejected]
        record: dict[str, object] = {
            "round": server_round,
            "selected": self._replies.selected(sent),
            "trained": sorted(self._replies.name(r) for r in ok),
            "refusals": replies.refused,
            "failures": replies.failures,
            "rejected": rejected,
            "update_sha256": replies.update_sha256,
        }
        if replies.resent:
            record["resent"] = replies.resent
        if self._privacy:
            record["epsilon"] = {
                k: v.get(messages.EPSILON) for k, v in sorted(self._privacy.items())
            }
        if len(ok) < self._settings.min_train_nodes:
            record["aggregated"] = False
            self._recorder.round(record)
            reasons = replies.reasons(rejected)
            return (
                f"round {server_round}: only {len(ok)} institutions returned a valid update "
                f"(need {self._settings.min_train_nodes})"
                + ("; " + "; ".join(reasons) if reasons else "")
            )
        withheld = self._withheld_loss(ok)
        arrays, train_metrics = self._strategy.aggregate_train(server_round, ok)
        secure_record = {} if self._secagg is None else self._secagg.records.get(server_round, {})
        if self._secagg is not None:
            record["secagg"] = secure_record
        if arrays is None:
            record["aggregated"] = False
            why = "the strategy could not aggregate the updates"
            if self._secagg is not None:
                why = f"secure aggregation failed closed: {secure_record.get('failure')}"
            return self._failed(server_round, record, why, result)
        result.arrays = arrays
        result.rounds_completed = server_round
        record["aggregated"] = True
        if self._secagg is not None:
            result.secagg["rounds_unmasked"] = int(result.secagg.get("rounds_unmasked", 0)) + 1  # type: ignore[call-overload]
        if self._dp is not None:
            spent = self._dp.privacy_spent()
            if spent is not None:
                result.institution_level = {
                    "epsilon": spent.epsilon,
                    "delta": spent.delta,
                    "releases": self._dp.accountant.num_releases,  # type: ignore[union-attr]
                }
                record["institution_level_epsilon"] = spent.epsilon
        record["train"] = {}
        if withheld:
            record["train"] = {"loss_withheld_by": withheld}
        elif train_metrics is not None and TRAIN_LOSS in train_metrics:
            record["train"] = {"loss": messages.number(train_metrics, TRAIN_LOSS)}

        trained_from = [self._roster.node_of[name] for name in self._replies.selected(sent)]
        federated = self._federated(server_round, started_from, trained_from, final=False)
        result.last_central = self._evaluate(arrays)
        record.update(
            federated.record(),
            federated_model=FEDERATED_MODEL,
            central=result.last_central,
            seconds=time.perf_counter() - started,
        )
        self._complete(server_round, record, result)
        return None

    def _withheld_loss(self, ok: list[Message]) -> list[str]:
        """Return the banks that withheld their training loss; then drop everyone's.

        A bank's policy may withhold its loss (``releases.train_loss``). Flower's
        strategies aggregate only replies whose metrics have the same keys, and a mean
        over some banks would mislead, so the round records who withheld it instead.
        Under secure aggregation the loss travels masked and only its mean is revealed.
        """
        if self._secagg is not None:
            return []
        records = {self._replies.name(r): messages.metrics_of(r.content) for r in ok}
        withheld = sorted(name for name, record in records.items() if TRAIN_LOSS not in record)
        if withheld:
            for record in records.values():
                record.pop(TRAIN_LOSS, None)
        return withheld

    def _complete(self, server_round: int, record: dict[str, object], result: LoopResult) -> None:
        """Checkpoint a completed round, then append its record to ``metrics.jsonl``."""
        self._checkpoint(server_round, result, [*self._recorder.history(), record])
        self._recorder.round(record)

    def _checkpoint(self, server_round: int, result: LoopResult, records: list) -> None:
        if self._checkpoints is not None:
            self._checkpoints.save(
                server_round,
                model=result.arrays,
                strategy=self._strategy,
                loop=loop_state(result),
                records=records,
            )

    def _restore(self, checkpoint: Checkpoint, result: LoopResult) -> int:
        """Take the loop's state from ``checkpoint``; return the first round to run."""
        restore_loop(result, checkpoint)  # its refusals join ``self._exhausted``
        restore_strategy(self._strategy, checkpoint.strategy)
        if self._validator is not None:
            self._validator.remember_records(checkpoint.records)
        return checkpoint.completed_round + 1

    def _failed(
        self, server_round: int, record: dict[str, object], why: str, result: LoopResult
    ) -> str | None:
        """Record a round that could not be aggregated; skip it or stop the run."""
        if self._secagg is None or not self._settings.skip_failed_rounds:
            self._recorder.round(record)
            return f"round {server_round}: {why}"
        failed = result.secagg.setdefault("failed_rounds", {})
        failed[str(server_round)] = why  # type: ignore[index]
        self._complete(server_round, record, result)
        return None

    def _exchange(self, sent: list[Message]) -> list[Message]:
        """Send and receive, returning replies sorted by institution."""
        if not sent:
            return []
        replies = self._grid.send_and_receive(sent, timeout=self._settings.timeout)
        return self._replies.in_institution_order(replies)


def _dp_wrapper(strategy: Strategy) -> DifferentialPrivacyFixedClippingBase | None:
    """Flower's DP wrapper inside ``strategy`` (possibly under secure aggregation)."""
    wrappers = (
        s for s in strategy_chain(strategy) if isinstance(s, DifferentialPrivacyFixedClippingBase)
    )
    return next(wrappers, None)
