"""Round time of fedrisk's SecAgg+ against a plaintext round and against Flower's SecAgg+.

What fedrisk's secure aggregation costs per round on Flower's simulation engine, next
to what Flower's own legacy ``SecAggPlusWorkflow`` costs (measured by
``benchmarks/flower_secagg.py``, whose methodology is copied here).

What is measured
----------------
Seven variants, each for every (clients, parameters) cell:

``fedrisk-plain``
    A Message-API ServerApp (``@ServerApp.main``) with ``flwr.serverapp.strategy``'s
    ``FedAvg`` weighting by ``num-examples``; one exchange per round, plaintext replies.
``fedrisk-floor``
    ``fedrisk-plain`` plus, after each aggregation, one query exchange with every
    client whose request and reply are empty. No protocol with one extra (unmask)
    exchange per round can be faster on this engine, so ``floor - plain`` bounds from
    below what any such SecAgg+ costs here.
``fedrisk-secagg``
    The same loop as ``fedrisk-plain`` with the ``FedAvg`` wrapped in fedrisk's
    ``SecureAggregation``
    (``degree`` 6, ``threshold`` 4, i.e. each self-mask in 7 shares of which 4 unmask,
    the counterpart of Flower's ``num_shares=7, reconstruction_threshold=4``). A round
    is the masked training exchange plus the unmask exchange; round 1 also carries the
    once-per-run exchange of round-key shares (``query.secagg_keys``).
``fedrisk-secagg-full``
    The same on the complete graph (``degree`` 0, majority threshold).
``flower-plain``, ``flower-secaggplus``, ``flower-secaggplus-full``
    ``flower_secagg.measure_flower`` with ``variant="plain"``, ``"secaggplus"`` (7/4)
    and ``"secaggplus"`` on :func:`flower_secagg.full_graph`.

Both harnesses use the same clients: every client holds one float32 vector of
``n_params`` entries and returns the received global vector plus a small update drawn
from a generator seeded by (seed, partition id, round), weighted by 600 to 990
examples (``flower_secagg.client_update`` / ``client_weight``). Every client trains in
every round; nothing is trained and nothing is evaluated. fedrisk's ClientApp is a
minimal one written here on fedrisk's node-side protocol steps
(``fedrisk.client.secagg_node``): the roll-call query answers with the institution
(``bank_000`` … from the partition id) and, under SecAgg+, its signed advertisement; the
train handler checks the round (``prepare_round``) and returns ``masked_records`` of the
update's delta; ``query.secagg_unmask`` and ``query.secagg_keys`` run ``unmask`` and
``key_shares``. The run config (state folder, manifest, institutions) is injected by a
ClientApp mod. Each measurement provisions a fresh consortium (one Ed25519 key per
bank and a manifest) in a temporary folder. The fixed-point encoding is
``Encoding.for_run`` with fedrisk's default word size (``secagg.bits``, 64 since
the 10-round parity measurement; 32 halves what travels) and ``max_rows`` = 1000, the counterpart of
Flower's ``max_weight`` (it only sets the precision, not the work).

How it is timed
---------------
As in ``flower_secagg.py``: ``time.time()`` on the server right after each round's
aggregation returns (for SecAgg+, after unmasking and decoding), round ``r`` lasting
from mark ``r - 1`` to mark ``r``; round 1 is dropped and ``rounds`` rounds give
``rounds - 1`` durations. Each run is a fresh subprocess (this script re-invoked with
``--worker``) in its own process group, killed with its Ray processes after
``--max-seconds``. One more mark is taken on fedrisk's server after the roll call,
just before round 1, so round 1 has a duration there: the *setup* reported is round 1
minus a steady round (the median of the others). The roll call (both fedrisk variants
run it, so the Ray actors are warm before round 1) is reported on its own.
Variants are interleaved within each repeat so load drift hits all of them.

Notes
-----
Flower 1.41's simulation engine polls twice per message exchange, every 0.1 s each
(``InMemoryGrid.send_and_receive``'s ``pull_interval`` and the Fleet side's queue,
``vce_api.add_messages_to_queue``; see the Notes of ``flower_secagg.py``). Both fedrisk
variants wait for replies through ``fedrisk.server.prompt_grid.PromptGrid``, as
fedrisk's ServerApp does, which removes the first; the Fleet side's tick remains, so
rounds still come out in steps of about 0.1 s per exchange: fedrisk's secure round
has two exchanges against plain's one, Flower's SecAgg+ round four. That
granularity is part of the cost on this engine and is left as it is.

``PromptGrid`` backs off geometrically from 2 ms between pulls, to 5 ms on Flower's
in-memory grid (simulations; 250 ms on a networked grid, where the backoff once also
applied to simulations and noticed replies up to about 0.19 s late).
``--pull-interval S`` replaces the schedule by a constant interval for the fedrisk
variants (a what-if).

Examples
--------
From a directory other than the repository root::

    python /work/main/benchmarks/secagg.py --check
    python /work/main/benchmarks/secagg.py --clients 10 --params 100000 --repeats 3
    python /work/main/benchmarks/secagg.py --clients 10 --params 10000,1000000
    python /work/main/benchmarks/secagg.py --clients 10 --variants fedrisk-plain,fedrisk-secagg
    python /work/main/benchmarks/secagg.py --clients 10 --params 100000 --pull-interval 0.005 \
        --variants fedrisk-plain,fedrisk-floor,fedrisk-secagg
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

from flower_secagg import (  # noqa: E402 - after putting the benchmarks folder on sys.path
    BACKEND_CONFIG,
    FlowerRunError,
    FlowerTimeoutError,
    client_update,
    client_weight,
    expected_final,
    full_graph,
    int_list,
    measure_flower,
    quiet_simulation,
    spawn_worker,
    spread,
)

if TYPE_CHECKING:
    from flwr.clientapp import ClientApp
    from flwr.serverapp import ServerApp

DEFAULT_CLIENTS = (10, 30, 50)
DEFAULT_PARAMS = (10_000, 100_000, 1_000_000)
FEDRISK_VARIANTS = ("fedrisk-plain", "fedrisk-floor", "fedrisk-secagg", "fedrisk-secagg-full")
FLOWER_VARIANTS = ("flower-plain", "flower-secaggplus", "flower-secaggplus-full")
VARIANTS = FEDRISK_VARIANTS + FLOWER_VARIANTS
DEGREE, THRESHOLD = 6, 4  # fedrisk's counterpart of Flower's num_shares=7, threshold=4
FLOWER_SHARES, FLOWER_THRESHOLD = 7, 4
MAX_ROWS = 1000  # Flower's max_weight
VECTOR = "vector"
TAG = "FEDRISK_SECAGG_JSON "
KEYSTREAM_WORDS = 2**24
#: Plaintext round plus one empty query exchange with every client: the least any
#: protocol with one extra (unmask) exchange per round can cost on this engine.
FLOOR = "fedrisk-floor"
NOOP_MESSAGE_TYPE = "query.benchmark_noop"


class SecAggRunError(RuntimeError):
    """A fedrisk measurement failed, did not report all rounds, or a round did not unmask."""


def institution_names(n_clients: int) -> list[str]:
    """Return the institution ids of a simulated consortium, in partition-id order."""
    return [f"bank_{i:03d}" for i in range(n_clients)]


def secagg_config(variant: str) -> Any:
    """Return the ``SecAggConfig`` of a fedrisk variant, or ``None`` for plaintext."""
    from fedrisk.conf.secagg import SecAggConfig

    if variant in ("fedrisk-plain", FLOOR):
        return None
    if variant == "fedrisk-secagg":
        return SecAggConfig(
            mode="secaggplus", degree=DEGREE, threshold=THRESHOLD, max_rows=MAX_ROWS
        )
    if variant == "fedrisk-secagg-full":
        return SecAggConfig(mode="secaggplus", degree=0, threshold=0, max_rows=MAX_ROWS)
    raise ValueError(f"variant must be one of {FEDRISK_VARIANTS}, not {variant!r}")


def provision(folder: Path, names: list[str]) -> tuple[Path, Path]:
    """Give every bank a signing key under ``folder`` and write the manifest.

    Returns
    -------
    tuple of Path
        The state root (one folder per bank) and the manifest path.
    """
    from fedrisk.client.node_keys import SIGNING_KEY_FILE
    from fedrisk.privacy.manifest import ConsortiumManifest, InstitutionRecord
    from fedrisk.secure.signing import generate_signing_key, public_key_text, save_private_key

    state_root = folder / "institutions"
    records = []
    for name in names:
        (state_root / name).mkdir(parents=True)
        key = generate_signing_key()
        save_private_key(key, state_root / name / SIGNING_KEY_FILE)
        records.append(
            InstitutionRecord(
                name=name,
                public_key=public_key_text(key.public_key()),
                budget_epsilon=1.0,
                budget_delta=1e-5,
            )
        )
    manifest_path = folder / "consortium.json"
    ConsortiumManifest(name="secagg-benchmark", institutions=tuple(records)).save(manifest_path)
    return state_root, manifest_path


def build_apps(
    spec: dict[str, Any],
    *,
    run_config: dict[str, str],
    manifest_path: Path,
    out: dict[str, Any],
) -> tuple[ServerApp, ClientApp]:
    """Build the Message-API ServerApp and ClientApp of one fedrisk variant.

    ``out`` receives ``marks`` (``time.time()`` after the roll call and after every
    round's aggregation), ``rollcall_s``, per-round ``records`` and, with
    ``spec["check"]``, the per-round ``check`` against the exact weighted mean.
    """
    import numpy as np
    from flwr.app import (
        Array,
        ArrayRecord,
        ConfigRecord,
        Context,
        Message,
        MetricRecord,
        RecordDict,
    )
    from flwr.clientapp import ClientApp
    from flwr.serverapp import Grid, ServerApp
    from flwr.serverapp.strategy import FedAvg

    from fedrisk.client import secagg_node
    from fedrisk.client.app import run_config_mod
    from fedrisk.privacy.manifest import ConsortiumManifest
    from fedrisk.server.prompt_grid import PromptGrid
    from fedrisk.server.roll_call import roll_call
    from fedrisk.strategies import messages
    from fedrisk.strategies.factory import WEIGHT_KEY
    from fedrisk.strategies.secagg import wire
    from fedrisk.strategies.secagg.encoding import Encoding
    from fedrisk.strategies.secagg.strategy import RunKeys, SecureAggregation

    n_clients, n_params = spec["n_clients"], spec["n_params"]
    rounds, seed, timeout = spec["rounds"], spec["seed"], spec["timeout"]
    names = institution_names(n_clients)
    cfg = secagg_config(spec["variant"])
    encoding = (
        None
        if cfg is None
        else Encoding.for_run(cfg, institutions=n_clients, uniform_weights=False)
    )
    marks: list[float] = out.setdefault("marks", [])
    records: list[dict[str, Any]] = out.setdefault("records", [])
    checks: list[dict[str, float]] = out.setdefault("check", [])

    server = ServerApp()

    @server.main()
    def _main(flower_grid: Grid, context: Context) -> None:
        grid = PromptGrid(flower_grid)  # as fedrisk's ServerApp does
        strategy = FedAvg(
            fraction_train=1.0,
            fraction_evaluate=0.0,
            min_train_nodes=n_clients,
            min_evaluate_nodes=0,
            min_available_nodes=n_clients,
            weighted_by_key=WEIGHT_KEY,
        )
        secure: SecureAggregation | None = None
        setup = None
        began = time.time()
        if cfg is not None and encoding is not None:
            manifest = ConsortiumManifest.load(manifest_path)
            keys = RunKeys.fresh({name: manifest.public_key(name) for name in names})
            secure = SecureAggregation(
                strategy,
                keys=keys,
                encoding=encoding,
                degree=cfg.degree,
                threshold=cfg.threshold,
                consistency_check=False,
                timeouts={
                    wire.Stage.keys: timeout,
                    wire.Stage.consistency: timeout,
                    wire.Stage.unmask: timeout,
                },
            )
            setup = {wire.SETUP: keys.setup_record()}
        roster = roll_call(
            grid, expected=names, minimum=n_clients, timeout=timeout, identities=None, setup=setup
        )
        if secure is not None:
            for name in names:
                secure.register(name, roster.node_of[name], roster.adverts[name])
        out["rollcall_s"] = time.time() - began
        marks.append(time.time())
        arrays = ArrayRecord({VECTOR: Array(np.zeros(n_params, np.float32))})
        active = strategy if secure is None else secure
        for rnd in range(1, rounds + 1):
            sent = list(active.configure_train(rnd, arrays, ConfigRecord(), grid))
            replies = list(grid.send_and_receive(sent, timeout=timeout))
            new, _ = active.aggregate_train(rnd, replies)
            if spec["variant"] == FLOOR:
                empty = [
                    Message(RecordDict(), dst_node_id=node, message_type=NOOP_MESSAGE_TYPE)
                    for node in roster.node_of.values()
                ]
                answered = list(grid.send_and_receive(empty, timeout=timeout))
                if len(answered) != n_clients or any(a.has_error() for a in answered):
                    raise SecAggRunError(f"round {rnd}: the empty exchange lost replies")
            marks.append(time.time())
            record: dict[str, Any] = {"round": rnd, "replies": len(replies)}
            record["errors"] = [
                messages.error_summary(r.error.reason) for r in replies if r.has_error()
            ]
            if secure is not None:
                record.update(secure.records.get(rnd, {}))
            records.append(record)
            if new is None:
                break
            if spec["check"]:
                checks.append(check_round(arrays, new, record, spec, rnd))
            arrays = new

    client = ClientApp(mods=[run_config_mod(run_config)])

    def identity(context: Context) -> tuple[int, str]:
        pid = int(context.node_config[messages.PARTITION_ID])
        return pid, names[pid]

    @client.query()
    def _query(msg: Message, context: Context) -> Message:
        _, name = identity(context)
        content = RecordDict(
            {
                messages.NODE: ConfigRecord({messages.INSTITUTION: name}),
                messages.METRICS: MetricRecord(),
            }
        )
        if cfg is not None:
            setup = msg.content.config_records[wire.SETUP]
            advert = secagg_node.advertisement(context, name, setup, rounds=rounds)
            content[wire.ADVERT] = ConfigRecord({wire.ADVERT_KEY: advert})
        return Message(content=content, reply_to=msg)

    @client.train()
    def _train(msg: Message, context: Context) -> Message:
        pid, name = identity(context)
        server_round = int(msg.content.config_records[messages.CONFIG][messages.SERVER_ROUND])
        prepared = None
        if cfg is not None:
            prepared = secagg_node.prepare_round(
                msg,
                context,
                secagg=cfg,
                institution=name,
                server_round=server_round,
                rounds=rounds,
            )
        received = msg.content.array_records[messages.ARRAYS][VECTOR].numpy()
        vector = np.asarray(received, dtype=np.float32) + client_update(
            seed, pid, server_round, n_params
        )
        weight = client_weight(pid)
        if prepared is None or encoding is None:
            content = RecordDict(
                {
                    messages.ARRAYS: ArrayRecord({VECTOR: Array(vector)}),
                    messages.METRICS: MetricRecord({WEIGHT_KEY: weight}),
                }
            )
        else:
            delta = [vector.astype(np.float64) - received.astype(np.float64)]
            content = RecordDict(
                secagg_node.masked_records(
                    prepared,
                    context,
                    delta=delta,
                    weight=weight,
                    loss=0.0,
                    encoding=encoding,
                    institution=name,
                    rng=np.random.default_rng([seed, pid, server_round]),
                )
            )
            content[messages.METRICS] = MetricRecord()
        return Message(content=content, reply_to=msg)

    @client.query(wire.UNMASK_MESSAGE_TYPE.split(".", 1)[1])
    def _unmask(msg: Message, context: Context) -> Message:
        _, name = identity(context)
        content = secagg_node.unmask(msg, context, secagg=cfg, institution=name)
        return Message(content=content, reply_to=msg)

    @client.query(NOOP_MESSAGE_TYPE.split(".", 1)[1])
    def _noop(msg: Message, context: Context) -> Message:
        return Message(content=RecordDict(), reply_to=msg)

    @client.query(wire.KEYS_MESSAGE_TYPE.split(".", 1)[1])
    def _keys(msg: Message, context: Context) -> Message:
        _, name = identity(context)
        return Message(content=secagg_node.key_shares(msg, context, institution=name), reply_to=msg)

    return server, client


def check_round(
    before: Any, after: Any, record: dict[str, Any], spec: dict[str, Any], rnd: int
) -> dict[str, float]:
    """Compare one round's aggregate with the exact weighted mean of the clients' vectors.

    The exact mean is computed in float64 from the global vector the round started
    from. ``tolerance`` is the encoding's ``error_bound`` (0 for plaintext) plus
    ``n_clients`` float32 spacings of the result: Flower's ``FedAvg`` sums float32
    replies in float32, the plaintext ones and, under SecAgg+, the identical stand-ins
    ``SecureAggregation`` hands it (measured: up to about one spacing on their own).
    """
    import numpy as np

    glob = before[VECTOR].numpy().astype(np.float32)
    n_clients, n_params, seed = spec["n_clients"], spec["n_params"], spec["seed"]
    weights = np.array([client_weight(p) for p in range(n_clients)], dtype=np.float64)
    total = np.zeros(n_params, dtype=np.float64)
    for pid in range(n_clients):
        local = glob + client_update(seed, pid, rnd, n_params)
        total += weights[pid] * local.astype(np.float64)
    exact = total / weights.sum()
    got = after[VECTOR].numpy().astype(np.float64)
    bound = float(record.get("error_bound", 0.0))  # type: ignore[arg-type]
    spacing = float(np.max(np.spacing(np.abs(exact).astype(np.float32))))
    diff = float(np.max(np.abs(got - exact)))
    tolerance = bound + spacing * n_clients
    return {
        "round": rnd,
        "max_abs_diff": diff,
        "error_bound": bound,
        "tolerance": tolerance,
        "within": float(diff <= tolerance),
    }


def run_in_process(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one fedrisk simulation here (a ``--worker`` process) and return what it saw.

    Not for repeated use in one process: Ray does not restart cleanly.
    """
    quiet_simulation()
    from flwr.simulation import run_simulation

    if spec.get("pull_interval"):  # what-if: a constant interval instead of PromptGrid's
        from fedrisk.strategies import exchange

        interval = float(spec["pull_interval"])
        exchange.pull_delays = lambda longest=None: itertools.repeat(interval)  # type: ignore[assignment]

    names = institution_names(spec["n_clients"])
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="fedrisk-secagg-bench-") as tmp:
        state_root, manifest_path = provision(Path(tmp), names)
        run_config = {
            "state-dir": str(state_root),
            "manifest": str(manifest_path),
            "institutions": json.dumps(names),
        }
        server, client = build_apps(
            spec, run_config=run_config, manifest_path=manifest_path, out=out
        )
        run_simulation(
            server,
            client,
            spec["n_clients"],
            backend_config=json.loads(json.dumps(BACKEND_CONFIG)),
        )
    return out


def spawn(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run :func:`run_in_process` in a fresh process group; kill it after ``timeout`` s."""
    env = dict(os.environ)  # Ray's workers must import flower_secagg as the driver does
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(BENCH_DIR), env.get("PYTHONPATH")) if p)
    try:
        return spawn_worker(Path(__file__), spec, timeout, tag=TAG, env=env)
    except FlowerRunError as err:
        raise SecAggRunError(str(err)) from None


def measure_fedrisk(
    n_clients: int,
    n_params: int,
    *,
    variant: str,
    rounds: int = 4,
    timeout: float = 600.0,
    seed: int = 0,
    check: bool = False,
    pull_interval: float | None = None,
) -> dict[str, Any]:
    """Time one fedrisk run.

    Parameters
    ----------
    n_clients : int
        Number of simulated SuperNodes (banks); all of them train every round.
    n_params : int
        Length of the float32 vector each client returns.
    variant : {"fedrisk-plain", "fedrisk-floor", "fedrisk-secagg", "fedrisk-secagg-full"}
        Plaintext FedAvg, plaintext plus one empty exchange, SecAgg+ of degree 6 /
        threshold 4, or the complete graph.
    rounds : int
        Rounds to run, at least 2.
    timeout : float
        Seconds after which the subprocess and its Ray processes are killed.
    seed : int
        Seed of the clients' updates.
    check : bool
        Compare every round's aggregate with the exact weighted mean.
    pull_interval : float | None (default: None)
        Seconds between the server's pulls for replies instead of ``PromptGrid``'s
        backoff (2 ms growing to 250 ms); a what-if, not what fedrisk's ServerApp does.

    Returns
    -------
    dict
        ``round_s`` (seconds of rounds 2, ..., ``rounds``), ``round1_s``,
        ``rollcall_s``, ``records`` (per round; SecAgg+ adds fedrisk's round record)
        and, with ``check``, ``check``.

    Raises
    ------
    FlowerTimeoutError
        The run took longer than ``timeout``.
    SecAggRunError
        The worker failed, a round is missing, or a SecAgg+ round did not unmask.
    """
    secagg_config(variant)  # validates the name
    if rounds < 2:
        raise ValueError("rounds must be at least 2: round 1 is warm-up")
    if n_clients < 3 or n_params < 1:
        raise ValueError("need at least 3 clients (SecAgg+) and 1 parameter")
    spec = {
        "n_clients": n_clients,
        "n_params": n_params,
        "variant": variant,
        "rounds": rounds,
        "seed": seed,
        "timeout": timeout,
        "check": check,
        "pull_interval": pull_interval,
    }
    out = spawn(spec, timeout)
    marks, records = out.get("marks", []), out.get("records", [])
    if len(marks) != rounds + 1:
        raise SecAggRunError(
            f"{variant}: expected {rounds + 1} marks, got {len(marks)}; records: {records}"
        )
    if secagg_config(variant) is not None:
        failed = [r for r in records if r.get("unmasked") is not True]
        if failed:
            raise SecAggRunError(f"{variant}: rounds not unmasked: {failed}")
    durations = [b - a for a, b in itertools.pairwise(marks)]
    return {
        "round_s": durations[1:],
        "round1_s": durations[0],
        "rollcall_s": out.get("rollcall_s"),
        "records": records,
        "check": out.get("check", []),
    }


def keystream_throughput(repeats: int = 5, words: int = KEYSTREAM_WORDS) -> dict[str, Any]:
    """Median MB/s (10^6 bytes) of ``mask_vector`` for ``words`` 32-bit words."""
    from fedrisk.secure.masks import mask_vector

    mask_vector(os.urandom(32), 1024, bits=32)  # first import and cipher set-up
    rates = []
    for _ in range(repeats):
        seed = os.urandom(32)
        began = time.perf_counter()
        mask_vector(seed, words, bits=32)
        rates.append(words * 4 / (time.perf_counter() - began) / 1e6)
    return {"words": words, "mb_per_s": rates, "median_mb_per_s": statistics.median(rates)}


def measure(
    variant: str,
    n_clients: int,
    n_params: int,
    *,
    rounds: int,
    timeout: float,
    pull_interval: float | None = None,
) -> dict[str, Any]:
    """Measure one variant once; fedrisk variants also return round 1 and the roll call."""
    if variant in FEDRISK_VARIANTS:
        return measure_fedrisk(
            n_clients,
            n_params,
            variant=variant,
            rounds=rounds,
            timeout=timeout,
            pull_interval=pull_interval,
        )
    shares, thr = (
        full_graph(n_clients)
        if variant == "flower-secaggplus-full"
        else (FLOWER_SHARES, FLOWER_THRESHOLD)
    )
    flower_variant = "plain" if variant == "flower-plain" else "secaggplus"
    durations = measure_flower(
        n_clients,
        n_params,
        variant=flower_variant,
        rounds=rounds,
        num_shares=shares,
        threshold=thr,
        timeout=timeout,
    )
    return {"round_s": durations, "shares": shares, "threshold": thr}


def run_grid(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Measure every (clients, params) cell, all variants interleaved per repeat."""
    rows = []
    for n, p in itertools.product(args.clients, args.params):
        row: dict[str, Any] = {"clients": n, "params": p}
        for v in args.variants:
            row[v] = {"round_s": [], "median_s": [], "run_wall_s": [], "skipped": None}
            if v in FEDRISK_VARIANTS:
                row[v].update(round1_s=[], setup_s=[], rollcall_s=[], unmasked_rounds=0)
        for rep in range(args.repeats):
            for v in args.variants:
                cell = row[v]
                if cell["skipped"]:
                    continue
                began = time.time()
                try:
                    res = measure(
                        v,
                        n,
                        p,
                        rounds=args.rounds,
                        timeout=args.max_seconds,
                        pull_interval=args.pull_interval,
                    )
                except FlowerTimeoutError as exc:
                    cell["skipped"] = str(exc)
                    print(f"  {n} clients, {p:,} params, {v}: {exc}", flush=True)
                    continue
                except (SecAggRunError, FlowerRunError) as exc:
                    cell["skipped"] = f"failed: {exc}"
                    print(f"  {n} clients, {p:,} params, {v}: FAILED\n{exc}", flush=True)
                    continue
                wall = time.time() - began
                steady = statistics.median(res["round_s"])
                cell["round_s"].append(res["round_s"])
                cell["median_s"].append(steady)
                cell["run_wall_s"].append(wall)
                extra = ""
                if v in FEDRISK_VARIANTS:
                    cell["round1_s"].append(res["round1_s"])
                    cell["setup_s"].append(res["round1_s"] - steady)
                    cell["rollcall_s"].append(res["rollcall_s"])
                    cell["unmasked_rounds"] += sum(
                        1 for r in res["records"] if r.get("unmasked") is True
                    )
                    extra = (
                        f", round 1 {res['round1_s']:.3f} s, roll call {res['rollcall_s']:.2f} s"
                    )
                shown = " ".join(f"{r:.3f}" for r in res["round_s"])
                print(
                    f"  {n} clients, {p:,} params, rep {rep + 1} {v}: rounds {shown} s"
                    f"{extra} (run {wall:.1f} s)",
                    flush=True,
                )
        row["summary"] = summarize(row, args.variants)
        rows.append(row)
    return rows


def _median(row: dict[str, Any], variant: str, key: str = "median_s") -> float | None:
    cell = row.get(variant)
    if not cell or not cell.get(key):
        return None
    return statistics.median(cell[key])


def summarize(row: dict[str, Any], variants: list[str]) -> dict[str, Any]:
    """Ratios secure/plain, overheads secure − plain, Flower's over fedrisk's, setup."""
    med = {v: _median(row, v) for v in variants}
    out: dict[str, Any] = {"median_s": med}
    pairs = {
        "degree6": ("fedrisk-secagg", "flower-secaggplus"),
        "full": ("fedrisk-secagg-full", "flower-secaggplus-full"),
    }
    fp, wp = med.get("fedrisk-plain"), med.get("flower-plain")
    for label, (fs, ws) in pairs.items():
        f_sec, w_sec = med.get(fs), med.get(ws)
        f_over = f_sec - fp if f_sec is not None and fp is not None else None
        w_over = w_sec - wp if w_sec is not None and wp is not None else None
        out[label] = {
            "fedrisk_ratio": f_sec / fp if f_sec is not None and fp else None,
            "flower_ratio": w_sec / wp if w_sec is not None and wp else None,
            "fedrisk_overhead_s": f_over,
            "flower_overhead_s": w_over,
            "overhead_ratio": (
                w_over / f_over
                if w_over is not None and f_over is not None and f_over > 0
                else None
            ),
        }
    floor = med.get(FLOOR)
    out["floor_overhead_s"] = floor - fp if floor is not None and fp is not None else None
    out["floor_ratio"] = floor / fp if floor is not None and fp else None
    plain_setup = _median(row, "fedrisk-plain", "setup_s")
    for v in ("fedrisk-secagg", "fedrisk-secagg-full"):
        setup = _median(row, v, "setup_s")
        out[f"{v}_setup_s"] = setup
        out[f"{v}_setup_net_s"] = (
            setup - plain_setup if setup is not None and plain_setup is not None else None
        )
    out["fedrisk-plain_setup_s"] = plain_setup
    return out


def _fmt(value: float | None, spec: str = ".3f", suffix: str = "") -> str:
    return "—" if value is None else f"{value:{spec}}{suffix}"


def report(rows: list[dict[str, Any]], variants: list[str]) -> None:
    """Print per cell the variants' round times, then ratios, overheads and setup."""
    print()
    print("seconds per round: median over repeats of each run's median (min–max)")
    head = f"{'clients':>7} {'params':>10}  " + "  ".join(f"{v:>24}" for v in variants)
    print(head)
    for row in rows:
        cells = []
        for v in variants:
            c = row[v]
            text = spread(c["median_s"])
            if c["skipped"] and not c["median_s"]:
                text = "skipped" if c["skipped"].startswith("skipped") else "FAILED"
            cells.append(f"{text:>24}")
        print(f"{row['clients']:>7} {row['params']:>10,}  " + "  ".join(cells))
    print()
    print(
        "graph   clients     params  fedrisk×  flower×  fedrisk +s  flower +s  "
        "flower/fedrisk overhead"
    )
    for row in rows:
        s = row["summary"]
        for label in ("degree6", "full"):
            g = s[label]
            print(
                f"{label:<7} {row['clients']:>7} {row['params']:>10,}  "
                f"{_fmt(g['fedrisk_ratio'], '.2f', '×'):>8}  "
                f"{_fmt(g['flower_ratio'], '.2f', '×'):>7}"
                f"  {_fmt(g['fedrisk_overhead_s']):>10}  {_fmt(g['flower_overhead_s']):>9}  "
                f"{_fmt(g['overhead_ratio'], '.1f', '×'):>23}"
            )
    if FLOOR in variants:
        print()
        print(
            "floor: plaintext round + one empty exchange (the least one unmask exchange "
            "can cost here)"
        )
        for row in rows:
            s = row["summary"]
            print(
                f"  {row['clients']:>3} clients, {row['params']:>9,} params: "
                f"{_fmt(s['floor_ratio'], '.2f', '×')} plain, "
                f"+{_fmt(s['floor_overhead_s'])} s"
            )
    print()
    print(
        "fedrisk round 1 minus a steady round (s): plain (warm-up), secagg, secagg-full; "
        "secagg net of plain's; roll call"
    )
    for row in rows:
        s = row["summary"]
        roll = {v: _median(row, v, "rollcall_s") for v in FEDRISK_VARIANTS if v in variants}
        print(
            f"  {row['clients']:>3} clients, {row['params']:>9,} params: "
            f"plain {_fmt(s['fedrisk-plain_setup_s'])}, "
            f"secagg {_fmt(s['fedrisk-secagg_setup_s'])} "
            f"(net {_fmt(s['fedrisk-secagg_setup_net_s'])}), "
            f"full {_fmt(s['fedrisk-secagg-full_setup_s'])} "
            f"(net {_fmt(s['fedrisk-secagg-full_setup_net_s'])}); roll call "
            + ", ".join(f"{v.removeprefix('fedrisk-')} {_fmt(t, '.2f')}" for v, t in roll.items())
        )


def run_check(args: argparse.Namespace) -> dict[str, Any]:
    """10 clients × 1000 params, 3 rounds: every fedrisk variant against the exact mean."""
    import numpy as np

    n, p, rounds = 10, 1000, 3
    result: dict[str, Any] = {}
    ok = True
    for variant in (v for v in FEDRISK_VARIANTS if v != FLOOR):
        res = measure_fedrisk(
            n, p, variant=variant, rounds=rounds, timeout=args.max_seconds, check=True
        )
        rows = res["check"]
        unmasked = [r.get("unmasked") for r in res["records"]]
        result[variant] = {"rounds": rows, "unmasked": unmasked}
        print(f"  {variant}: unmasked per round {unmasked}")
        for r in rows:
            print(
                f"    round {r['round']}: max |aggregate − exact mean| {r['max_abs_diff']:.3g}, "
                f"error_bound {r['error_bound']:.3g}, tolerance {r['tolerance']:.3g} "
                f"-> {'ok' if r['within'] else 'OUT OF BOUND'}"
            )
        ok &= len(rows) == rounds and all(r["within"] for r in rows)
    ref = expected_final(n, p, rounds, seed=0)
    result["max_abs_param"] = float(np.max(np.abs(ref)))
    result["ok"] = ok
    print(f"  check {'passed' if ok else 'FAILED'} (max |parameter| {result['max_abs_param']:.3g})")
    return result


def main() -> None:
    """Parse the command line and run the benchmark, the self-check or a worker."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int_list, default=list(DEFAULT_CLIENTS))
    parser.add_argument("--params", type=int_list, default=list(DEFAULT_PARAMS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=4, help="round 1 is dropped")
    parser.add_argument(
        "--variants",
        type=lambda s: [v.strip() for v in s.split(",") if v.strip()],
        default=list(VARIANTS),
        help=f"comma-separated subset of {','.join(VARIANTS)}",
    )
    parser.add_argument("--max-seconds", type=float, default=300.0, help="per measurement")
    parser.add_argument("--json", type=Path, help="default: benchmarks/results/secagg.json")
    parser.add_argument("--check", action="store_true", help="10 clients × 1000 params, exact")
    parser.add_argument("--no-keystream", action="store_true", help="skip the mask throughput")
    parser.add_argument(
        "--pull-interval",
        type=float,
        help="what-if: fedrisk variants pull for replies every this many seconds instead of "
        "PromptGrid's 2 ms → 250 ms backoff",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        print(TAG + json.dumps(run_in_process(json.loads(args.worker)), default=str), flush=True)
        return
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    out_path = args.json or BENCH_DIR / "results" / "secagg.json"
    out_path.parent.mkdir(parents=True, exist_ok=True)

    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    if args.check:
        began = time.time()
        res = run_check(args)
        print(f"check took {time.time() - began:.1f} s")
        out_path.write_text(json.dumps({"check": res}, indent=2, default=str))
        print(f"wrote {out_path}")
        if not res["ok"]:
            sys.exit(1)
        return

    keystream = None
    if not args.no_keystream:
        keystream = keystream_throughput()
        print(
            f"mask keystream: {keystream['median_mb_per_s']:.0f} MB/s median "
            f"(mask_vector, 2^24 32-bit words, {len(keystream['mb_per_s'])} runs)",
            flush=True,
        )
    rows = run_grid(args)
    report(rows, args.variants)
    meta = {k: v for k, v in vars(args).items() if k not in ("json", "worker", "check")}
    meta["loadavg_end"] = os.getloadavg()
    out_path.write_text(
        json.dumps({"args": meta, "keystream": keystream, "results": rows}, indent=2, default=str)
    )
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
