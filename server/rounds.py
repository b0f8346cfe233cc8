"""The coordinator's round loop over a ``flwr.serverapp.strategy`` strategy.

Each round: select eligible institutions (seeded), train, aggregate in a fixed
institution order (so the same seed gives the same model to the last digit),
evaluate federated and centrally, and append the round to ``metrics.jsonl``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from flwr.app import ArrayRecord, ConfigRecord, Message
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fedrisk.server.evaluation import federated_metrics
from fedrisk.server.grid_view import EligibleGrid
from fedrisk.server.records import RunRecorder
from fedrisk.server.roll_call import Roster
from fedrisk.strategies import messages

TRAIN_STAGE, EVALUATE_STAGE = 0, 1


@dataclass
class LoopResult:
    """How the loop ended."""

    arrays: ArrayRecord
    rounds_completed: int
    stop_reason: str
    last_central: dict[str, float] = field(default_factory=dict)
    last_federated: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class LoopSettings:
    """What the loop needs from the run's configuration."""

    rounds: int
    seed: int
    timeout: float
    min_train_nodes: int
    show_progress: bool = True


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
    """

    def __init__(
        self,
        grid: Grid,
        strategy: Strategy,
        roster: Roster,
        evaluate: Callable[[ArrayRecord], dict[str, float]],
        recorder: RunRecorder,
        settings: LoopSettings,
    ) -> None:
        self._grid = grid
        self._strategy = strategy
        self._roster = roster
        self._evaluate = evaluate
        self._recorder = recorder
        self._settings = settings
        self._institution_of = {node: name for name, node in roster.node_of.items()}

    def run(self, initial: ArrayRecord) -> LoopResult:
        """Train for the configured rounds or until too few institutions can train."""
        result = LoopResult(arrays=initial, rounds_completed=0, stop_reason="completed")
        columns = (
            TextColumn("[bold]federated rounds"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"),
        )
        with Progress(*columns, disable=not self._settings.show_progress) as bar:
            task = bar.add_task("rounds", total=self._settings.rounds, status="")
            for server_round in range(1, self._settings.rounds + 1):
                stop = self._round(server_round, result)
                if stop:
                    result.stop_reason = stop
                    break
                auc = result.last_central.get("auc", float("nan"))
                bar.update(task, advance=1, status=f"held-out AUC {auc:.4f}")
        return result

    def _round(self, server_round: int, result: LoopResult) -> str | None:
        started = time.perf_counter()
        view = EligibleGrid(
            self._grid, [self._roster.node_of[i] for i in self._roster.institutions]
        )
        if len(view.get_node_ids()) < self._settings.min_train_nodes:  # type: ignore[arg-type]
            return f"fewer than {self._settings.min_train_nodes} institutions can train"

        view.seed_sampling(self._settings.seed, server_round, TRAIN_STAGE)
        sent = list(
            self._strategy.configure_train(server_round, result.arrays, ConfigRecord(), view)  # type: ignore[arg-type]
        )
        replies = self._exchange(sent)
        ok = [r for r in replies if not r.has_error()]
        failures = self._failures(sent, replies)
        record: dict[str, object] = {
            "round": server_round,
            "selected": sorted(self._institution_of[m.metadata.dst_node_id] for m in sent),
            "trained": sorted(self._name(r) for r in ok),
            "failures": failures,
        }
        if len(ok) < self._settings.min_train_nodes:
            record["aggregated"] = False
            self._recorder.round(record)
            return (
                f"round {server_round}: only {len(ok)} institutions returned an update "
                f"(need {self._settings.min_train_nodes})"
            )
        arrays, train_metrics = self._strategy.aggregate_train(server_round, ok)
        if arrays is None:
            record["aggregated"] = False
            self._recorder.round(record)
            return f"round {server_round}: the strategy could not aggregate the updates"
        result.arrays = arrays
        result.rounds_completed = server_round
        record["aggregated"] = True
        record["train"] = (
            {"loss": messages.number(train_metrics, "train_loss")} if train_metrics else {}
        )

        view.seed_sampling(self._settings.seed, server_round, EVALUATE_STAGE)
        eval_sent = list(
            self._strategy.configure_evaluate(server_round, arrays, ConfigRecord(), view)  # type: ignore[arg-type]
        )
        federated, per_bank = federated_metrics(self._exchange(eval_sent), name_of=self._name)
        result.last_federated = federated
        result.last_central = self._evaluate(arrays)
        record.update(
            federated=federated,
            institutions=per_bank,
            central=result.last_central,
            seconds=time.perf_counter() - started,
        )
        self._recorder.round(record)
        return None

    def _exchange(self, sent: list[Message]) -> list[Message]:
        """Send and receive, returning replies sorted by institution."""
        if not sent:
            return []
        replies = self._grid.send_and_receive(sent, timeout=self._settings.timeout)
        known = [r for r in replies if r.metadata.src_node_id in self._institution_of]
        return sorted(known, key=lambda r: self._institution_of[r.metadata.src_node_id])

    def _name(self, reply: Message) -> str:
        return self._institution_of[reply.metadata.src_node_id]

    def _failures(self, sent: Iterable[Message], replies: list[Message]) -> dict[str, str]:
        failures = {self._name(r): f"error: {r.error.reason}" for r in replies if r.has_error()}
        answered = {r.metadata.src_node_id for r in replies}
        for message in sent:
            if message.metadata.dst_node_id not in answered:
                name = self._institution_of[message.metadata.dst_node_id]
                failures[name] = f"no reply within {self._settings.timeout:g} s"
        return dict(sorted(failures.items()))
