"""Round time of Flower's own legacy SecAgg+ against Flower's legacy plaintext round.

A baseline for ``benchmarks/secagg.py``: what Flower itself pays for secure
aggregation on its simulation engine, so fedrisk's own protocol can be put next to it.

What is measured
----------------
Two variants of the same legacy (``LegacyContext``) ServerApp, run by
``flwr.simulation.run_simulation`` on the Ray backend with one CPU per ClientApp:

``plain``
    ``DefaultWorkflow()`` with ``FedAvg``; the ClientApp has no mods.
``secaggplus``
    ``DefaultWorkflow(fit_workflow=SecAggPlusWorkflow(num_shares, threshold))`` with
    the same ``FedAvg``; the ClientApp runs ``secaggplus_mod``. A round is then four
    message exchanges (setup, share keys, collect masked vectors, unmask) instead of
    one. ``clipping_range``, ``quantization_range``, ``modulus_range`` and
    ``max_weight`` keep Flower's defaults (8.0, 2**22, 2**32, 1000.0).

Every client holds one float32 vector of ``n_params`` entries. Its ``fit`` returns the
received global vector plus a small update drawn from a generator seeded by
(seed, partition id, round), with ``num_examples`` between 600 and 990 (below
``max_weight``, so SecAgg+'s weight quantisation stays precise). ``FedAvg`` samples
every client (``fraction_fit=1.0``, ``min_fit_clients = min_available_clients = n``)
and evaluates nothing (``fraction_evaluate=0.0``), so a round is one fit round. The
initial global vector (zeros) comes from the strategy, not from a client.

How it is timed
---------------
``FedAvg.aggregate_fit`` is wrapped to append ``time.time()`` after it returns. Both
workflows call it once at the very end of the fit round: ``default_fit_workflow``
after collecting the replies, ``SecAggPlusWorkflow.unmask_stage`` after removing the
masks and dequantising. Round ``r`` lasts from mark ``r - 1`` to mark ``r``, so round
1 (Ray start-up, actor creation, first imports in the actors) has no duration and is
dropped; ``rounds`` rounds give ``rounds - 1`` durations. Each run happens in a fresh
subprocess (this script re-invoked with ``--worker``) in its own process group, which
is killed with its Ray processes after ``timeout`` seconds.

Notes
-----
Flower 1.41's simulation engine polls twice per message exchange, every 0.1 s each:
``InMemoryGrid.send_and_receive`` (``pull_interval=0.1``) and the Fleet side's
``add_messages_to_queue`` (``f_stop.wait(0.1)``). Small rounds therefore come out in
steps of about 0.1 s, and SecAgg+ pays its four exchanges against plain's one. This is
part of what Flower costs on this engine and is left as it is; with both intervals
patched to 5 ms (a diagnostic, not an option here) SecAgg+ at 10 and 30 clients ×
100,000 parameters was still about 4× the plain round.

Examples
--------
From a directory other than the repository root::

    python /work/main/benchmarks/flower_secagg.py --check
    python /work/main/benchmarks/flower_secagg.py --clients 10 --params 100000
    python /work/main/benchmarks/flower_secagg.py --clients 10,30 --full-graph --json out.json

From Python::

    from flower_secagg import measure_flower

    measure_flower(10, 100_000, variant="secaggplus")  # -> [s_round2, s_round3, s_round4]
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
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flwr.clientapp import ClientApp
    from flwr.serverapp import ServerApp

DEFAULT_CLIENTS = (10, 30, 50)
DEFAULT_PARAMS = (10_000, 100_000, 1_000_000)
VARIANTS = ("plain", "secaggplus")
TAG = "FLOWER_SECAGG_JSON "
BACKEND_CONFIG: dict[str, Any] = {
    "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
    "init_args": {"logging_level": 30, "log_to_driver": False},
}
UPDATE_SCALE = 0.05  # standard deviation of a client's per-round update


class FlowerTimeoutError(TimeoutError):
    """A measurement subprocess ran longer than its time limit and was killed."""


class FlowerRunError(RuntimeError):
    """A measurement subprocess failed or printed no result."""


def full_graph(n_clients: int) -> tuple[int, int]:
    """Return ``(num_shares, threshold)`` of the complete graph on ``n_clients`` nodes."""
    return n_clients, n_clients // 2 + 1


def client_weight(partition_id: int) -> int:
    """Return the ``num_examples`` a client reports: 600 to 990, below ``max_weight``."""
    return 600 + 10 * (partition_id % 40)


def client_update(seed: int, partition_id: int, server_round: int, n_params: int) -> Any:
    """Return the deterministic float32 update a client adds in ``server_round``."""
    import numpy as np

    rng = np.random.default_rng([seed, partition_id, server_round])
    return rng.normal(0.0, UPDATE_SCALE, n_params).astype(np.float32)


def expected_final(n_clients: int, n_params: int, rounds: int, seed: int) -> Any:
    """Return the global vector after ``rounds`` exact FedAvg rounds, in numpy."""
    import numpy as np

    weights = np.array([client_weight(p) for p in range(n_clients)], dtype=np.float64)
    glob = np.zeros(n_params, dtype=np.float64)
    for rnd in range(1, rounds + 1):
        local = [
            glob.astype(np.float32) + client_update(seed, p, rnd, n_params)
            for p in range(n_clients)
        ]
        glob = sum(w * v.astype(np.float64) for w, v in zip(weights, local, strict=True))
        glob = glob / weights.sum()
    return glob


def build_apps(
    n_clients: int,
    n_params: int,
    *,
    variant: str,
    rounds: int,
    num_shares: int | float,
    threshold: int | float,
    seed: int,
    marks: list[float],
    final: list[Any],
) -> tuple[ServerApp, ClientApp]:
    """Build the legacy ServerApp and ClientApp of one variant.

    ``marks`` receives a ``time.time()`` after every ``aggregate_fit``; ``final`` holds
    the latest aggregated ``Parameters`` (one element).
    """
    import numpy as np
    from flwr.client import NumPyClient
    from flwr.client.mod import secaggplus_mod
    from flwr.clientapp import ClientApp
    from flwr.common import Context, ndarrays_to_parameters
    from flwr.server import LegacyContext, ServerConfig
    from flwr.server.strategy import FedAvg
    from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
    from flwr.serverapp import Grid, ServerApp

    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, not {variant!r}")

    class TimedFedAvg(FedAvg):
        """FedAvg that marks the wall clock when a round's aggregation returns."""

        def aggregate_fit(self, server_round: int, results: Any, failures: Any) -> Any:
            out = super().aggregate_fit(server_round, results, failures)
            marks.append(time.time())
            final[:] = [out[0]]  # decoded after the run, outside the timed rounds
            return out

    server = ServerApp()

    @server.main()
    def _main(grid: Grid, context: Context) -> None:
        strategy = TimedFedAvg(
            fraction_fit=1.0,
            fraction_evaluate=0.0,
            min_fit_clients=n_clients,
            min_evaluate_clients=0,
            min_available_clients=n_clients,
            initial_parameters=ndarrays_to_parameters([np.zeros(n_params, np.float32)]),
            on_fit_config_fn=lambda rnd: {"server_round": rnd},
        )
        legacy = LegacyContext(
            context=context, config=ServerConfig(num_rounds=rounds), strategy=strategy
        )
        if variant == "secaggplus":
            fit = SecAggPlusWorkflow(num_shares=num_shares, reconstruction_threshold=threshold)
            workflow = DefaultWorkflow(fit_workflow=fit)
        else:
            workflow = DefaultWorkflow()
        workflow(grid, legacy)

    class VectorClient(NumPyClient):
        """One float32 vector; ``fit`` adds a seeded update, ``evaluate`` is trivial."""

        def __init__(self, partition_id: int) -> None:
            self.partition_id = partition_id

        def fit(self, parameters: list, config: dict) -> tuple[list, int, dict]:
            rnd = int(config["server_round"])
            delta = client_update(seed, self.partition_id, rnd, n_params)
            vec = np.asarray(parameters[0], dtype=np.float32) + delta
            return [vec], client_weight(self.partition_id), {}

        def evaluate(self, parameters: list, config: dict) -> tuple[float, int, dict]:
            return 0.0, 1, {}

    def client_fn(context: Context) -> Any:
        return VectorClient(int(context.node_config["partition-id"])).to_client()

    mods: list[Any] = [secaggplus_mod] if variant == "secaggplus" else []
    return server, ClientApp(client_fn=client_fn, mods=mods)


def run_in_process(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one simulation here (a ``--worker`` process) and return marks (and vector).

    Not for repeated use in one process: Ray does not restart cleanly.
    """
    quiet_simulation()
    from flwr.simulation import run_simulation

    marks: list[float] = []
    final: list[Any] = []
    server, client = build_apps(
        spec["n_clients"],
        spec["n_params"],
        variant=spec["variant"],
        rounds=spec["rounds"],
        num_shares=spec["num_shares"],
        threshold=spec["threshold"],
        seed=spec["seed"],
        marks=marks,
        final=final,
    )
    run_simulation(
        server,
        client,
        spec["n_clients"],
        backend_config=json.loads(json.dumps(BACKEND_CONFIG)),
    )
    out: dict[str, Any] = {"marks": marks}
    if spec.get("return_params") and final and final[-1] is not None:
        from flwr.common import parameters_to_ndarrays

        out["params"] = [float(x) for x in parameters_to_ndarrays(final[-1])[0]]
    return out


def quiet_simulation() -> None:
    """Keep Ray and Flower to warnings in a worker process."""
    import logging

    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    for name in ("flwr", "flwr.common.logger"):
        logging.getLogger(name).setLevel(logging.WARNING)


def spawn_worker(
    script: Path,
    spec: dict[str, Any],
    timeout: float,
    *,
    tag: str,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run ``script --worker SPEC`` in a fresh process group and parse its ``tag`` line.

    Raises
    ------
    FlowerTimeoutError
        After ``timeout`` s (the worker and the Ray processes it started are killed).
    FlowerRunError
        If the worker fails or prints no result line.
    """
    command = [sys.executable, str(script.resolve()), "--worker", json.dumps(spec)]
    pipe = subprocess.PIPE
    proc = subprocess.Popen(
        command, stdout=pipe, stderr=pipe, text=True, start_new_session=True, env=env
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the worker and the Ray processes it started
        proc.communicate()
        raise FlowerTimeoutError(f"skipped: > {timeout:g} s") from None
    lines = [line for line in stdout.splitlines() if line.startswith(tag)]
    if proc.returncode != 0 or not lines:
        raise FlowerRunError(f"worker failed (exit {proc.returncode}):\n{stderr[-3000:]}")
    return json.loads(lines[-1][len(tag) :])


def spawn(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run :func:`run_in_process` in a fresh process group; kill it after ``timeout`` s."""
    return spawn_worker(Path(__file__), spec, timeout, tag=TAG)


def make_spec(
    n_clients: int,
    n_params: int,
    *,
    variant: str,
    rounds: int,
    num_shares: int | float,
    threshold: int | float,
    seed: int = 0,
    return_params: bool = False,
) -> dict[str, Any]:
    """Validate the arguments and pack them for a worker."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, not {variant!r}")
    if rounds < 2:
        raise ValueError("rounds must be at least 2: round 1 is warm-up")
    if n_clients < 2 or n_params < 1:
        raise ValueError("need at least 2 clients and 1 parameter")
    return {
        "n_clients": n_clients,
        "n_params": n_params,
        "variant": variant,
        "rounds": rounds,
        "num_shares": num_shares,
        "threshold": threshold,
        "seed": seed,
        "return_params": return_params,
    }


def measure_flower(
    n_clients: int,
    n_params: int,
    *,
    variant: str,
    rounds: int = 4,
    num_shares: int | float = 7,
    threshold: int | float = 4,
    timeout: float = 600.0,
) -> list[float]:
    """Return the wall seconds of each round after the first (round 1 is warm-up).

    Parameters
    ----------
    n_clients : int
        Number of simulated SuperNodes; all of them train every round.
    n_params : int
        Length of the float32 parameter vector each client returns.
    variant : {"plain", "secaggplus"}
        ``"plain"``: ``DefaultWorkflow`` with ``FedAvg``. ``"secaggplus"``: the same
        with ``SecAggPlusWorkflow`` as fit workflow and ``secaggplus_mod`` on clients.
    rounds : int
        Rounds to run, at least 2; ``rounds - 1`` durations are returned.
    num_shares, threshold : int or float
        ``SecAggPlusWorkflow(num_shares, reconstruction_threshold)``; ignored by
        ``"plain"``. Use :func:`full_graph` for the complete graph.
    timeout : float
        Seconds after which the subprocess and its Ray processes are killed.

    Returns
    -------
    list of float
        Seconds of rounds 2, ..., ``rounds``.

    Raises
    ------
    FlowerTimeoutError
        The run took longer than ``timeout`` (message ``"skipped: > N s"``).
    FlowerRunError
        The worker failed or did not report all rounds.
    """
    spec = make_spec(
        n_clients,
        n_params,
        variant=variant,
        rounds=rounds,
        num_shares=num_shares,
        threshold=threshold,
    )
    marks = spawn(spec, timeout)["marks"]
    if len(marks) != rounds:
        raise FlowerRunError(f"expected {rounds} round marks, got {len(marks)}")
    return [b - a for a, b in itertools.pairwise(marks)]


def check_flower(
    n_clients: int = 5,
    n_params: int = 1000,
    *,
    rounds: int = 2,
    num_shares: int | float = 7,
    threshold: int | float = 4,
    timeout: float = 600.0,
) -> dict[str, float]:
    """Run both variants once with identical client updates and compare the results.

    Returns
    -------
    dict
        ``plain_vs_numpy``, ``secaggplus_vs_plain`` and ``secaggplus_vs_numpy``: the
        max absolute difference between final global vectors; ``max_abs_param``.
    """
    import numpy as np

    final = {}
    for variant in VARIANTS:
        spec = make_spec(
            n_clients,
            n_params,
            variant=variant,
            rounds=rounds,
            num_shares=num_shares,
            threshold=threshold,
            return_params=True,
        )
        out = spawn(spec, timeout)
        if "params" not in out:
            raise FlowerRunError(f"{variant}: no aggregated parameters returned")
        final[variant] = np.asarray(out["params"], dtype=np.float64)
    ref = expected_final(n_clients, n_params, rounds, seed=0)
    return {
        "plain_vs_numpy": float(np.max(np.abs(final["plain"] - ref))),
        "secaggplus_vs_plain": float(np.max(np.abs(final["secaggplus"] - final["plain"]))),
        "secaggplus_vs_numpy": float(np.max(np.abs(final["secaggplus"] - ref))),
        "max_abs_param": float(np.max(np.abs(ref))),
    }


def spread(values: list[float]) -> str:
    """Format ``median (min–max)``, or a dash."""
    if not values:
        return "—"
    return f"{statistics.median(values):.3f} ({min(values):.3f}–{max(values):.3f})"


def int_list(text: str) -> list[int]:
    """Parse ``"10,30"`` (underscores allowed) into ``[10, 30]``."""
    return [int(x.replace("_", "")) for x in text.split(",") if x.strip()]


def run_grid(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Measure every (clients, params) cell, both variants interleaved per repeat."""
    rows = []
    for n, p in itertools.product(args.clients, args.params):
        shares, thr = full_graph(n) if args.full_graph else (args.shares, args.threshold)
        row: dict[str, Any] = {"clients": n, "params": p, "shares": shares, "threshold": thr}
        for v in VARIANTS:
            row[v] = {"round_s": [], "median_s": [], "run_wall_s": [], "skipped": None}
        for rep in range(args.repeats):  # interleaved, so load drift hits both variants
            for v in VARIANTS:
                cell = row[v]
                if cell["skipped"]:
                    continue
                began = time.time()
                try:
                    rounds = measure_flower(
                        n,
                        p,
                        variant=v,
                        rounds=args.rounds,
                        num_shares=shares,
                        threshold=thr,
                        timeout=args.max_seconds,
                    )
                except FlowerTimeoutError as exc:
                    cell["skipped"] = str(exc)
                    print(f"  {n} clients, {p:,} params, {v}: {exc}", flush=True)
                    continue
                wall = time.time() - began
                cell["round_s"].append(rounds)
                cell["median_s"].append(statistics.median(rounds))
                cell["run_wall_s"].append(wall)
                shown = " ".join(f"{r:.3f}" for r in rounds)
                print(
                    f"  {n} clients, {p:,} params, rep {rep + 1} {v}: rounds {shown} s"
                    f" (run {wall:.1f} s)",
                    flush=True,
                )
        plain, sec = row["plain"]["median_s"], row["secaggplus"]["median_s"]
        ratio = statistics.median(sec) / statistics.median(plain) if plain and sec else None
        row["ratio"] = ratio
        rows.append(row)
    return rows


def report(rows: list[dict[str, Any]]) -> None:
    """Print one line per cell: medians over repeats of per-run median round times."""
    head = f"{'clients':>7} {'params':>10} {'shares/thr':>10}  "
    head += f"{'plain s/round':>24}  {'secagg+ s/round':>24}  {'ratio':>6}"
    print(head)
    for row in rows:
        cells = []
        for v in VARIANTS:
            c = row[v]
            cells.append(
                c["skipped"] if c["skipped"] and not c["median_s"] else spread(c["median_s"])
            )
        ratio = "—" if row["ratio"] is None else f"{row['ratio']:.2f}×"
        graph = f"{row['shares']}/{row['threshold']}"
        print(
            f"{row['clients']:>7} {row['params']:>10,} {graph:>10}  "
            f"{cells[0]:>24}  {cells[1]:>24}  {ratio:>6}"
        )


def main() -> None:
    """Parse the command line and run the benchmark, the self-check or a worker."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int_list, default=list(DEFAULT_CLIENTS))
    parser.add_argument("--params", type=int_list, default=list(DEFAULT_PARAMS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=4, help="round 1 is dropped")
    parser.add_argument("--shares", type=float, default=7, help="SecAgg+ num_shares")
    parser.add_argument("--threshold", type=float, default=4, help="reconstruction threshold")
    parser.add_argument(
        "--full-graph",
        action="store_true",
        help="num_shares = clients, threshold = clients // 2 + 1",
    )
    parser.add_argument("--max-seconds", type=float, default=600.0, help="per measurement")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--check", action="store_true", help="5 clients × 1000 params, compare")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        print(TAG + json.dumps(run_in_process(json.loads(args.worker))), flush=True)
        return
    # An integral --shares/--threshold means a count, as Flower distinguishes int/float.
    for name in ("shares", "threshold"):
        value = getattr(args, name)
        setattr(args, name, int(value) if float(value).is_integer() else value)

    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    if args.check:
        began = time.time()
        res = check_flower(num_shares=args.shares, threshold=args.threshold)
        print(
            f"check (5 clients × 1,000 params, 2 rounds, shares {args.shares}, "
            f"threshold {args.threshold}), {time.time() - began:.1f} s:"
        )
        for k, v in res.items():
            print(f"  {k}: {v:.3g}")
        if args.json:
            args.json.write_text(json.dumps({"check": res}, indent=2))
        return

    rows = run_grid(args)
    report(rows)
    if args.json:
        meta = {k: v for k, v in vars(args).items() if k not in ("json", "worker", "check")}
        meta["loadavg_end"] = os.getloadavg()
        args.json.write_text(json.dumps({"args": meta, "results": rows}, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
