"""Time per federated round and fixed start-up: fedrisk against bare Flower and no Flower.

Three variants run the same rounds on the same files (one per bank, 2,000 training plus
500 validation rows each, written once per consortium size by ``build_consortium``).
Every round trains each bank for one epoch from the global model, then evaluates the new
global model at every bank and on the coordinator's held-out set:

``floor``
    One process, no Flower: the banks train one after another; numpy averages.
``bare``
    A minimal Message-API app (``FedAvg.start`` with ``@train``/``@evaluate``) making
    the same training calls, run by ``run_simulation`` with fedrisk's backend config.
``fedrisk``
    fedrisk's ServerApp and ClientApp through ``fedrisk.simulations.engine``.

Both Flower variants run in a fresh subprocess per repetition (this script in a hidden
worker mode) and are timed alike: a wall-clock mark when a round's central evaluation
has finished (bare: end of ``evaluate_fn``; fedrisk: entry of ``RunRecorder.round``,
called right after it). Round ``r`` lasts from mark ``r - 1`` to mark ``r``; round 1
is dropped. Fixed start-up is the time from just before the subprocess is spawned to
the end of round 1, less one steady round (the run's median): imports, Ray, starting the
ClientApp actors (bare Flower pays it in round 1, fedrisk in its roll call), first data
loads. Hydra composition and data generation are outside both. fedrisk's own
``seconds`` (``metrics.jsonl``) is shown too; it leaves out the record's write and the
progress bar between rounds.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flwr.clientapp import ClientApp
    from flwr.serverapp import ServerApp
    from torch import nn

    from fedrisk.client.node_data import NodeData
    from fedrisk.conf.root import FedriskConfig
    from fedrisk.server.evaluation import HeldOutSet

ROWS_PER_BANK = 2500  # fedrisk.client.node_data keeps 20 % for validation: 2,000 train
HIDDEN = {"default": [64, 32], "large": [256, 256, 128]}
TAG = "ROUND_TIME_JSON "
VARIANTS = ("floor", "bare", "fedrisk")


def prepare(n: int, args: argparse.Namespace, root: Path) -> dict:
    """Compose the settings for ``n`` equal banks and write their data once."""
    from fedrisk.conf.root import settings_to_json
    from fedrisk.models import build_model, count_parameters
    from fedrisk.server.evaluation import HeldOutSet
    from fedrisk.simulations.consortium import build_consortium, institution_profiles
    from fedrisk.simulations.consortium import resolve_schema as resolve
    from fedrisk.simulations.engine import simulation_backend
    from fedrisk.simulations.entry import check_overrides
    from fedrisk.simulations.provision import provision

    generate = {"count": n, "total_rows": n * ROWS_PER_BANK, "size_exponent": 0}
    overrides = [f"consortium.generate.{k}={v}" for k, v in generate.items()]
    overrides += [f"consortium.generate.min_rows={ROWS_PER_BANK}", "simulation.baselines=false"]
    hidden = ",".join(map(str, HIDDEN[args.params]))
    overrides += [f"task.model.hidden=[{hidden}]", f"rounds={args.rounds}", f"seed={args.seed}"]
    settings = resolve(check_overrides(["consortium=banks_20_skewed", *overrides]))
    sizes = {i.rows for i in institution_profiles(settings.consortium, seed=settings.seed)}
    if sizes != {ROWS_PER_BANK}:
        raise SystemExit(f"banks must hold {ROWS_PER_BANK} rows each; got {sorted(sizes)}")
    built = build_consortium(settings, root / f"banks_{n}")
    # Nodes prove their institution in the roll call: keys and manifest, as in a simulation.
    profiles = institution_profiles(settings.consortium, seed=settings.seed)
    keys = provision(settings, profiles, run_dir=root / f"banks_{n}")
    held = HeldOutSet.load(built.test_path, built.schema)
    cpus = settings.simulation.cpus_per_client
    return {
        "settings": settings_to_json(settings),
        "paths": {
            "data_dir": str(built.data_dir),
            "test_path": str(built.test_path),
            "manifest": str(keys.manifest_path),
            "state_dir": str(keys.state_dir),
        },
        "institutions": built.institutions,
        "backend": simulation_backend(n_institutions=n, cpus_per_client=cpus),
        "parameters": count_parameters(build_model(settings.task.model, held.x.shape[1], seed=0)),
    }


def load_bank(spec: dict, settings: FedriskConfig, name: str) -> NodeData:
    """Load one bank's validated, encoded rows (cached per process, as at a node)."""
    from fedrisk.client.node_data import load_node_data

    path = Path(spec["paths"]["data_dir"]) / name / "train.parquet"
    schema, batch = settings.task.schema, settings.task.train.batch_size
    return load_node_data(path, schema, institution=name, min_rows=batch, seed=settings.seed)  # type: ignore[arg-type]


def central(model: nn.Module, held: HeldOutSet, threshold: float) -> dict[str, float]:
    """Risk metrics of ``model`` on the held-out set (what both coordinators compute)."""
    from fedrisk.models import predict_proba, risk_metrics

    return risk_metrics(held.y, predict_proba(model, held.x), threshold=threshold)


def run_floor(spec: dict) -> dict:
    """Run the rounds one bank after another in this process; time each round."""
    import numpy as np
    import torch

    from fedrisk.client.node_data import institution_seed
    from fedrisk.client.trainer import evaluate_model, train_local
    from fedrisk.conf.root import load_settings
    from fedrisk.models import build_model
    from fedrisk.server.evaluation import HeldOutSet

    torch.set_num_threads(1)
    settings = load_settings(json.loads(spec["settings"]))
    spec_model, names = settings.task.model, spec["institutions"]
    held = HeldOutSet.load(spec["paths"]["test_path"], settings.task.schema)  # type: ignore[arg-type]
    model = build_model(spec_model, held.x.shape[1], seed=settings.seed)
    state = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    seconds = []
    for server_round in range(1, settings.rounds + 1):
        started = time.perf_counter()
        updates, weights = [], []
        for name in names:
            data = load_bank(spec, settings, name)
            local = build_model(spec_model, data.x_train.shape[1], seed=0)
            local.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
            seed = institution_seed(settings.seed, name, server_round)
            result = train_local(local, data.x_train, data.y_train, settings.task.train, seed=seed)
            updates.append({k: v.numpy().copy() for k, v in local.state_dict().items()})
            weights.append(result.n_examples)
        share = np.asarray(weights, dtype=np.float64) / sum(weights)
        state = {k: sum(w * u[k] for w, u in zip(share, updates, strict=True)) for k in state}
        model.load_state_dict({k: torch.from_numpy(v.astype(np.float32)) for k, v in state.items()})
        for name in names:
            data = load_bank(spec, settings, name)
            evaluate_model(model, data.x_val, data.y_val, threshold=settings.task.threshold)
        central(model, held, settings.task.threshold)
        seconds.append(time.perf_counter() - started)
    return {"round_s": seconds[1:], "startup_s": None}


def bare_apps(
    spec: dict, settings: FedriskConfig, marks: list[float]
) -> tuple[ServerApp, ClientApp]:
    """Build the minimal ServerApp and ClientApp; ``marks`` gets the round-end times."""
    import torch
    from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp
    from flwr.serverapp import Grid, ServerApp
    from flwr.serverapp.strategy import FedAvg

    from fedrisk.client.node_data import institution_seed
    from fedrisk.client.trainer import evaluate_model, train_local
    from fedrisk.models import build_model
    from fedrisk.server.evaluation import HeldOutSet

    names, threshold = spec["institutions"], settings.task.threshold
    server, client = ServerApp(), ClientApp()

    @server.main()
    def main(grid: Grid, context: Context) -> None:
        torch.set_num_threads(1)
        held = HeldOutSet.load(spec["paths"]["test_path"], settings.task.schema)  # type: ignore[arg-type]
        model = build_model(settings.task.model, held.x.shape[1], seed=settings.seed)

        def evaluate_fn(server_round: int, arrays: ArrayRecord) -> MetricRecord:
            model.load_state_dict(arrays.to_torch_state_dict())
            metrics = central(model, held, threshold)
            marks.append(time.time())
            return MetricRecord(metrics)  # type: ignore[arg-type]

        n = len(names)
        strategy = FedAvg(min_train_nodes=n, min_evaluate_nodes=n, min_available_nodes=n)
        initial, rounds = ArrayRecord(model.state_dict()), settings.rounds
        strategy.start(
            grid=grid, initial_arrays=initial, num_rounds=rounds, evaluate_fn=evaluate_fn
        )

    def local(msg: Message, context: Context) -> tuple[str, NodeData, nn.Module]:
        torch.set_num_threads(1)
        name = names[int(context.node_config["partition-id"])]
        data = load_bank(spec, settings, name)
        model = build_model(settings.task.model, data.x_train.shape[1], seed=0)
        model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
        return name, data, model

    @client.train()
    def train(msg: Message, context: Context) -> Message:
        name, data, model = local(msg, context)
        seed = institution_seed(settings.seed, name, int(msg.content["config"]["server-round"]))
        result = train_local(model, data.x_train, data.y_train, settings.task.train, seed=seed)
        metrics = MetricRecord({"num-examples": result.n_examples, "train_loss": result.loss})
        content = RecordDict({"arrays": ArrayRecord(model.state_dict()), "metrics": metrics})
        return Message(content=content, reply_to=msg)

    @client.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        _, data, model = local(msg, context)
        scores = evaluate_model(model, data.x_val, data.y_val, threshold=threshold)
        finite = {k: v for k, v in scores.items() if v == v}  # NaN: one-class validation set
        metrics = MetricRecord({"num-examples": len(data.y_val), **finite})
        return Message(content=RecordDict({"metrics": metrics}), reply_to=msg)

    return server, client


def worker(kind: str, spec_path: Path, run_dir: Path) -> None:
    """Run one Flower variant and print its round marks as one tagged JSON line."""
    import logging

    from fedrisk.conf.root import load_settings

    spec = json.loads(spec_path.read_text())
    settings = load_settings(json.loads(spec["settings"]))
    n, marks, seconds = len(spec["institutions"]), [], []
    if kind == "bare":
        from flwr.simulation import run_simulation

        logging.getLogger("flwr").setLevel(logging.ERROR)  # as fedrisk's engine does
        logging.getLogger("flwr").propagate = False
        os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
        server, client = bare_apps(spec, settings, marks)
        run_simulation(server, client, n, backend_config=spec["backend"])
        marks.pop(0)  # the round-0 central evaluation, before round 1
    else:
        from fedrisk.server.records import RunRecorder
        from fedrisk.simulations.engine import run_consortium
        from fedrisk.strategies.messages import build_run_config

        record_round = RunRecorder.round

        def timed(self: RunRecorder, record: dict) -> None:
            marks.append(time.time())
            seconds.append(float(record["seconds"]))
            record_round(self, record)

        RunRecorder.round = timed  # type: ignore[method-assign]
        names = spec["institutions"]
        config = build_run_config(
            settings, run_dir=str(run_dir), institutions=names, **spec["paths"]
        )
        cpus = settings.simulation.cpus_per_client
        run_consortium(config, n_institutions=n, cpus_per_client=cpus, verbose=False)
    print(TAG + json.dumps({"marks": marks, "seconds": seconds}))


def spawn(kind: str, spec_path: Path, run_dir: Path, timeout: float) -> dict:
    """Run one repetition of a Flower variant in a fresh process group and time it."""
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", kind]
    command += ["--spec", str(spec_path), "--run-dir", str(run_dir)]
    spawned = time.time()
    pipe = subprocess.PIPE
    proc = subprocess.Popen(command, stdout=pipe, stderr=pipe, text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the worker and the Ray processes it started
        raise SystemExit(f"{kind} worker took more than {timeout:g} s") from None
    lines = [line for line in stdout.splitlines() if line.startswith(TAG)]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"{kind} worker failed ({proc.returncode}):\n{stderr[-3000:]}")
    out = json.loads(lines[-1][len(TAG) :])
    rounds = [b - a for a, b in itertools.pairwise(out["marks"])]
    startup = out["marks"][0] - spawned - statistics.median(rounds)
    return {"round_s": rounds, "startup_s": startup, "jsonl_s": out["seconds"][1:]}


def measure(n: int, args: argparse.Namespace, root: Path) -> dict:
    """Run every variant ``args.repeats`` times on ``n`` banks, interleaved."""
    spec = prepare(n, args, root)
    spec_path = root / f"banks_{n}.json"
    spec_path.write_text(json.dumps(spec))
    print(f"{n} banks × 2,000 train rows, {spec['parameters']:,} parameters → {root}")
    size: dict = {v: {"round": [], "startup": [], "jsonl": [], "runs": []} for v in VARIANTS}
    for rep in range(args.repeats):  # interleaved, so load drift hits every variant
        for v in VARIANTS:
            if v == "floor":
                run = run_floor(spec)
            else:
                run = spawn(v, spec_path, root / f"run_{n}_{v}_{rep}", args.timeout)
            size[v]["runs"].append(run)
            size[v]["round"].append(statistics.median(run["round_s"]))
            if run["startup_s"] is not None:
                size[v]["startup"].append(run["startup_s"])
            if run.get("jsonl_s"):
                size[v]["jsonl"].append(statistics.median(run["jsonl_s"]))
            print(f"  rep {rep + 1} {v}: {size[v]['round'][-1]:.3f} s/round", flush=True)
    return {"parameters": spec["parameters"], **size}


def spread(values: list[float]) -> str:
    """Format ``median (min–max)``."""
    med = statistics.median(values) if values else None
    return "—" if med is None else f"{med:.3f} ({min(values):.2f}–{max(values):.2f})"


def report(results: dict, args: argparse.Namespace) -> None:
    """Print medians over repetitions (min–max in brackets) and the ratios of medians."""
    from rich.console import Console
    from rich.table import Table

    title = f"per round (rounds 2–{args.rounds}) and fixed start-up, seconds; {args.params} model"
    table = Table(title=title)
    for column in ("banks", "params", "variant", "round", "start-up", "÷ bare", "÷ floor"):
        table.add_column(column, justify="right")
    for n, size in results.items():
        med = {v: statistics.median(size[v]["round"]) for v in VARIANTS}
        verdict = "✓" if med["fedrisk"] <= 1.1 * med["bare"] else "✗ (target 1.1)"
        for v in VARIANTS:
            table.add_row(
                *(str(n), f"{size['parameters']:,}") if v == "floor" else ("", ""),
                v,
                spread(size[v]["round"]),
                spread(size[v]["startup"]),
                f"{med[v] / med['bare']:.2f}" + (f" {verdict}" if v == "fedrisk" else ""),
                f"{med[v] / med['floor']:.2f}",
            )
        table.add_row("", "", "fedrisk `seconds`", spread(size["fedrisk"]["jsonl"]), *[""] * 3)
        table.add_section()
    Console(width=132).print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="3,10,30", help="banks per consortium, comma-separated")
    parser.add_argument("--repeats", type=int, default=3, help="runs per variant and size")
    parser.add_argument("--rounds", type=int, default=5, help="federated rounds per run")
    parser.add_argument("--params", choices=sorted(HIDDEN), default="default", help="MLP size")
    parser.add_argument("--seed", type=int, default=42, help="data, init and training seed")
    parser.add_argument("--timeout", type=float, default=1200.0, help="seconds per Flower run")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results/round_time.json"
    )
    parser.add_argument("--work-dir", type=Path, help="data and run folders (default: a temp dir)")
    parser.add_argument("--worker", choices=["bare", "fedrisk"], help=argparse.SUPPRESS)
    parser.add_argument("--spec", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--run-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.spec, args.run_dir)
        return
    if args.rounds < 2 or args.repeats < 1:
        raise SystemExit(f"`--rounds` must be >= 2 and `--repeats` >= 1; got {args.rounds}")
    root = args.work_dir or Path(tempfile.mkdtemp(prefix="fedrisk-round-time-"))
    meta = {"rounds": args.rounds, "repeats": args.repeats, "params": args.params}
    meta |= {"cpus": os.cpu_count(), "train_rows_per_bank": 2000, "work_dir": str(root)}
    results: dict[int, dict] = {}
    for n in (int(s) for s in args.sizes.split(",")):
        results[n] = measure(n, args, root)
        meta["load_avg_1_5_15"] = os.getloadavg()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    report(results, args)
    print(f"results → {args.out}")


if __name__ == "__main__":
    main()
