"""The coordinator's checkpoint: everything needed to continue a run after a crash.

After every completed round the server writes ``RUN_DIR/checkpoint/``: the global
model and the strategy's state (FedAdam's moments ``m_t`` and ``v_t``) as one ``.npz``
(no pickle), and ``state.json`` with the round, the run id, the seed, the
configuration's digest, the loop's figures (privacy, refusals, last metrics), the
history of every DP wrapper's accountant (``privacy=central``: Flower's RDP accountant,
as its own ``state_dict()``) and every round's ``metrics.jsonl`` record so far.
``state.json`` names its ``.npz`` and is replaced last and atomically, so a crash at
any point leaves the previous complete checkpoint or the new one.

Node selection needs no saved RNG state: the loop reseeds Flower's sampling from
``(seed, round, stage)`` before every round (see `fedrisk.server.grid_view`), and the
institutions seed their training from ``(seed, institution, round)``; the checkpoint
records that derivation and the seed it was made with. Nor does ``privacy=central``'s
noise on the aggregate: it comes from ``(seed, round)`` too (see
`fedrisk.strategies.central_dp`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from flwr.app import Array, ArrayRecord
from flwr.serverapp.strategy import Strategy

from fedrisk.conf.root import FedriskConfig, settings_to_json
from fedrisk.server.records import write_json_atomic
from fedrisk.server.strategy_state import CheckpointError, StrategyState, strategy_state

CHECKPOINT_DIR = "checkpoint"
STATE_FILE = "state.json"
#: 2 added ``accountants``; a version-1 checkpoint reads as one without accountants.
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
SAMPLING = "random.seed(f'fedrisk/{seed}/{round}/{stage}') before each sampling"
_MODEL = "model"


@dataclass
class Checkpoint:
    """One completed round's state.

    Attributes
    ----------
    run_id : str
        fedrisk's run id (the ledgers' ``run_id``).
    completed_round : int
        The last round whose record is in ``records``; the run continues after it.
    seed : int
        The run's seed.
    config_sha256 : str
        Digest of the run's configuration (without ``resume``).
    model : dict[str, np.ndarray]
        The global model, in parameter order.
    strategy : StrategyState
        Saved strategy attributes (``m_t``, ``v_t``) and DP accountants.
    loop : dict[str, object]
        The round loop's figures (see `fedrisk.server.rounds.LoopResult`).
    records : list[dict]
        Every round's ``metrics.jsonl`` record so far.
    """

    run_id: str
    completed_round: int
    seed: int
    config_sha256: str
    model: dict[str, np.ndarray]
    strategy: StrategyState = field(default_factory=StrategyState)
    loop: dict[str, object] = field(default_factory=dict)
    records: list[dict] = field(default_factory=list)

    def model_record(self) -> ArrayRecord:
        """Return the global model as Flower's ArrayRecord."""
        return ArrayRecord({name: Array(array) for name, array in self.model.items()})

    def check_against(self, *, run_id: str, settings: FedriskConfig) -> None:
        """Check that this checkpoint belongs to the run being resumed.

        Raises
        ------
        CheckpointError
            If the run id or the configuration differ.
        """
        if run_id != self.run_id:
            raise CheckpointError(
                f"the checkpoint is of run {self.run_id}; the resumed run is {run_id}"
            )
        if config_digest(settings) != self.config_sha256:
            raise CheckpointError(
                "the checkpoint was written under another configuration; resume the run "
                "with its own config.yaml"
            )


def config_digest(settings: FedriskConfig) -> str:
    """SHA-256 of the configuration, ignoring ``resume``."""
    return hashlib.sha256(settings_to_json(replace(settings, resume="")).encode()).hexdigest()


def write_checkpoint(run_dir: Path, checkpoint: Checkpoint) -> None:
    """Write ``checkpoint`` into ``run_dir/checkpoint`` atomically (``state.json`` last)."""
    folder = run_dir / CHECKPOINT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    arrays_name = f"round-{checkpoint.completed_round:05d}.npz"
    tensors = {f"{_MODEL}:{k}": v for k, v in checkpoint.model.items()}
    for key, arrays in checkpoint.strategy.arrays.items():
        tensors.update({f"{key}:{k}": v for k, v in arrays.items()})
    tmp = folder / f".{arrays_name}.tmp.npz"
    np.savez(tmp, **tensors)  # type: ignore[arg-type]  # numpy's stub types **kwds as allow_pickle
    with tmp.open("rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, folder / arrays_name)
    write_json_atomic(
        folder / STATE_FILE,
        {
            "version": FORMAT_VERSION,
            "run_id": checkpoint.run_id,
            "completed_round": checkpoint.completed_round,
            "seed": checkpoint.seed,
            "sampling": SAMPLING,
            "config_sha256": checkpoint.config_sha256,
            "arrays_file": arrays_name,
            "model_order": list(checkpoint.model),
            "strategy_keys": sorted(checkpoint.strategy.arrays),
            "accountants": checkpoint.strategy.accountants,
            "loop": checkpoint.loop,
            "records": checkpoint.records,
        },
    )
    for stale in folder.glob("round-*.npz"):
        if stale.name != arrays_name:
            stale.unlink()


def has_checkpoint(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a checkpoint."""
    return (run_dir / CHECKPOINT_DIR / STATE_FILE).is_file()


def load_checkpoint(run_dir: Path) -> Checkpoint:
    """Read the checkpoint in ``run_dir``.

    Raises
    ------
    CheckpointError
        Naming the file, if the checkpoint is missing, unreadable or of another format.
    """
    folder = run_dir / CHECKPOINT_DIR
    state_path = folder / STATE_FILE
    try:
        state = json.loads(state_path.read_text(encoding="utf-8"))
        if state.get("version") not in READABLE_VERSIONS:
            raise CheckpointError(
                f"{state_path}: `version` must be one of {', '.join(map(str, READABLE_VERSIONS))}"
                f"; got {state.get('version')}"
            )
        with np.load(folder / str(state["arrays_file"]), allow_pickle=False) as archive:
            tensors = {name: archive[name] for name in archive.files}
        model = {k: tensors[f"{_MODEL}:{k}"] for k in state["model_order"]}
        strategy = StrategyState(
            arrays={
                key: {
                    n.split(":", 1)[1]: v for n, v in tensors.items() if n.split(":", 1)[0] == key
                }
                for key in state["strategy_keys"]
            },
            accountants={
                str(key): dict(accountant)
                for key, accountant in dict(state.get("accountants", {})).items()
            },
        )
        return Checkpoint(
            run_id=str(state["run_id"]),
            completed_round=int(state["completed_round"]),
            seed=int(state["seed"]),
            config_sha256=str(state["config_sha256"]),
            model=model,
            strategy=strategy,
            loop=dict(state["loop"]),
            records=list(state["records"]),
        )
    except FileNotFoundError as err:
        raise CheckpointError(
            f"{run_dir} holds no complete checkpoint ({err.filename} is missing); nothing to resume"
        ) from None
    except (KeyError, TypeError, ValueError, OSError) as err:
        if isinstance(err, CheckpointError):
            raise
        raise CheckpointError(f"{state_path}: unreadable checkpoint ({err})") from None


@dataclass(frozen=True)
class CheckpointWriter:
    """Writes a run's checkpoint after each completed round.

    Parameters
    ----------
    run_dir : Path
        The run directory.
    run_id : str
        fedrisk's run id.
    seed : int
        The run's seed.
    config_sha256 : str
        `config_digest` of the run's configuration.
    """

    run_dir: Path
    run_id: str
    seed: int
    config_sha256: str

    def save(
        self,
        completed_round: int,
        *,
        model: ArrayRecord,
        strategy: Strategy,
        loop: Mapping[str, object],
        records: list[dict],
    ) -> None:
        """Write the checkpoint of ``completed_round``."""
        write_checkpoint(
            self.run_dir,
            Checkpoint(
                run_id=self.run_id,
                completed_round=completed_round,
                seed=self.seed,
                config_sha256=self.config_sha256,
                model={name: np.asarray(array.numpy()) for name, array in model.items()},
                strategy=strategy_state(strategy),
                loop=dict(loop),
                records=records,
            ),
        )
