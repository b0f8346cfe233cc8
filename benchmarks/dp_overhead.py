"""Local training time with DP-SGD against without: same model, data and ``TrainSpec``.

One round is one call of local training (default ``TrainSpec``) on one synthetic bank
(``--rows`` rows, ``TableEncoder``) from the same initial weights, for the default MLP and
a ~100k-parameter one. Variants: ``plain`` (``train_local``); ``hooks``, ``functorch``,
``ew`` (``train_private`` with that ``GradSampleMode``); ``ghost``, Opacus ghost clipping,
which ``train_private`` does not support, so :func:`ghost_round` is a *benchmark-side*
loop built like it; and, for context, ``flower-example``: a client in the style of
Flower's Opacus example (``make_private`` on a ``DataLoader`` every round, Poisson
sampling, ``get_epsilon(delta=1e-5)`` at the end).

Correctness: each DP mode trains once with noise multiplier 1e-8 and the same seeded
sampling and noise; its final weights are compared with ``hooks`` (max |Δw| over the
largest weight change of the round). Modes within ``--tolerance`` count as correct.
Timing: one thread (torch and BLAS), one warm-up per variant, then ``--repeats`` interleaved runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import opacus
import torch
from opacus import PrivacyEngine
from opacus.grad_sample import GradSampleModuleFastGradientClipping
from opacus.optimizers import DPOptimizerFastGradientClipping
from opacus.utils.fast_gradient_clipping_utils import DPLossFastGradientClipping
from opacus.utils.uniform_sampler import UniformWithReplacementSampler
from threadpoolctl import threadpool_limits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from fedrisk.client.dp_trainer import (
    DPSettings,
    GradSampleMode,
    NoiseSource,
    _poisson_batches,
    planned_mechanism,
    train_private,
)
from fedrisk.client.trainer import build_optimizer, train_local
from fedrisk.data import BankProfile, TableEncoder, generate_credit_consortium
from fedrisk.models import (
    ModelSpec,
    TrainSpec,
    build_model,
    class_weighted_bce,
    count_parameters,
    resolve_pos_weight,
)

HIDDEN = {"default": [64, 32], "100k": [256, 256, 128]}
DELTA = 1e-5
Data = tuple[np.ndarray, np.ndarray]
Round = Callable[[nn.Module, Data, TrainSpec, DPSettings, int], dict[str, float]]


def plain_round(
    model: nn.Module, data: Data, spec: TrainSpec, _dp: DPSettings, seed: int
) -> dict[str, float]:
    train_local(model, *data, spec, seed=seed)
    return {}


def private_round(mode: GradSampleMode) -> Round:
    """Return a round of ``train_private`` with ``mode`` as its per-sample-gradient engine."""

    def run(
        model: nn.Module, data: Data, spec: TrainSpec, dp: DPSettings, seed: int
    ) -> dict[str, float]:
        settings = DPSettings(dp.noise_multiplier, dp.max_grad_norm, dp.noise_source, mode)
        train_private(model, *data, spec, settings, seed=seed)
        return {}

    return run


def ghost_round(
    model: nn.Module, data: Data, spec: TrainSpec, dp: DPSettings, seed: int
) -> dict[str, float]:
    """One round of DP-SGD with ghost clipping, built like ``train_private`` (benchmark-only).

    The seeds, Poisson sampler, batches (``_poisson_batches``, with OS reseeding in
    ``os_entropy`` mode), expected batch size and noise generator are those of
    ``train_private``; the per-sample clip factors ``min(1, C / (‖g_i‖ + 1e-6))`` come from
    per-sample norms computed without materialising per-sample gradients, and a second
    backward pass of ``Σ_i c_i ℓ_i`` yields the clipped sum. No FedProx term.
    """
    x, y = data
    n = int(y.shape[0])
    mechanism = planned_mechanism(spec, n, dp)
    features = torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32))
    labels = torch.as_tensor(np.ascontiguousarray(y, dtype=np.float32))
    sampling_seed, noise_seed, dropout_seed = np.random.SeedSequence(seed).generate_state(3)
    sampling = torch.Generator().manual_seed(int(sampling_seed))
    noise = torch.Generator().manual_seed(int(noise_seed))
    gsm = GradSampleModuleFastGradientClipping(
        model, max_grad_norm=dp.max_grad_norm, use_ghost_clipping=True, loss_reduction="mean"
    )
    optimizer = DPOptimizerFastGradientClipping(
        build_optimizer(gsm, spec),
        noise_multiplier=dp.noise_multiplier,
        max_grad_norm=dp.max_grad_norm,
        expected_batch_size=max(1, round(mechanism.sample_rate * n)),
        loss_reduction="mean",
        generator=noise,
    )
    pos_weight = torch.tensor(resolve_pos_weight(spec.pos_weight, y))
    criterion = nn.BCEWithLogitsLoss(pos_weight=pos_weight, reduction="mean")
    dp_loss = DPLossFastGradientClipping(gsm, optimizer, criterion, loss_reduction="mean")
    sampler = UniformWithReplacementSampler(
        num_samples=n, sample_rate=mechanism.sample_rate, generator=sampling
    )
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        torch.manual_seed(int(dropout_seed))
        gsm.train()
        try:
            for _ in range(spec.epochs):
                batches = _poisson_batches(
                    features, labels, sampler, reseed=dp.noise_source, generators=(sampling, noise)
                )
                for xb, yb in batches:
                    optimizer.zero_grad(set_to_none=True)
                    if yb.shape[0]:
                        dp_loss(gsm(xb), yb).backward()
                    else:  # an empty Poisson batch still releases noise
                        for p in optimizer.params:
                            p.grad = torch.zeros_like(p)
                    optimizer.step()
        finally:
            gsm._close()
    return {}


def flower_example_round(
    model: nn.Module, data: Data, spec: TrainSpec, dp: DPSettings, seed: int
) -> dict[str, float]:
    """One round as in Flower's Opacus example: engine rebuilt, ε queried at the end."""
    x, y = data
    torch.manual_seed(seed)
    dataset = TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    loader = DataLoader(dataset, batch_size=spec.batch_size, shuffle=True)
    pos_weight = resolve_pos_weight(spec.pos_weight, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # secure_mode off, backward-hook notices
        started = time.perf_counter()
        engine = PrivacyEngine(secure_mode=False)
        private, optimizer, loader = engine.make_private(
            module=model,
            optimizer=build_optimizer(model, spec),
            data_loader=loader,
            noise_multiplier=dp.noise_multiplier,
            max_grad_norm=dp.max_grad_norm,
        )
        engine_s = time.perf_counter() - started
        private.train()
        for _ in range(spec.epochs):
            for xb, yb in loader:
                optimizer.zero_grad()
                class_weighted_bce(private(xb), yb, pos_weight=pos_weight).backward()
                optimizer.step()
        started = time.perf_counter()
        engine.get_epsilon(delta=DELTA)
        epsilon_s = time.perf_counter() - started
    private._close()
    return {"engine_s": engine_s, "epsilon_s": epsilon_s}


VARIANTS: dict[str, Round] = {
    "plain": plain_round,
    **{m.value: private_round(m) for m in GradSampleMode},
    "ghost": ghost_round,
    "flower-example": flower_example_round,
}
SUPPORTED = tuple(m.value for m in GradSampleMode)  # what `train_private` offers
DP_MODES = (*SUPPORTED, "ghost")


def bank_data(rows: int, seed: int) -> Data:
    """Return one synthetic bank's rows, encoded as the default task encodes them."""
    consortium = generate_credit_consortium([BankProfile("bank-a", rows)], test_rows=1, seed=seed)
    encoder, table = TableEncoder(consortium.schema), consortium.banks["bank-a"]
    return encoder.encode(table), encoder.labels(table)


def flat_weights(model: nn.Module) -> np.ndarray:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).numpy().copy()


def check_modes(spec: ModelSpec, data: Data, runs: dict[str, Round], seed: int) -> dict[str, dict]:
    """Train each DP mode once with noise 1e-8 and seeded randomness; compare with hooks.

    Returns ``{mode: {max_abs_diff, relative, update}}``, ``relative`` being the largest
    weight difference over the largest weight change of the hooks round, or
    ``{mode: {"error": message}}`` if the mode fails.
    """
    dp, n_inputs = DPSettings(1e-8, 1.0, NoiseSource.seeded), data[0].shape[1]
    start = flat_weights(build_model(spec, n_inputs, seed=seed))
    final: dict[str, np.ndarray] = {}
    out: dict[str, dict] = {}
    for mode in DP_MODES:
        model = build_model(spec, n_inputs, seed=seed)
        try:
            runs[mode](model, data, TrainSpec(), dp, seed)
        except Exception as error:  # reported, and the mode is skipped
            out[mode] = {"error": f"{type(error).__name__}: {str(error).splitlines()[0][:100]}"}
            continue
        final[mode] = flat_weights(model)
    change = float(np.abs(final["hooks"] - start).max())
    for mode, weights in final.items():
        diff = float(np.abs(weights - final["hooks"]).max())
        out[mode] = {"max_abs_diff": diff, "relative": diff / change, "update": change}
    return out


def time_model(name: str, data: Data, args: argparse.Namespace) -> dict:
    """Check the DP modes, warm up, then time every variant ``args.repeats`` times, interleaved."""
    spec, train, n_inputs = ModelSpec(hidden=HIDDEN[name]), TrainSpec(), data[0].shape[1]
    correctness = check_modes(spec, data, VARIANTS, args.seed)
    runs = {k: v for k, v in VARIANTS.items() if "error" not in correctness.get(k, {})}
    dp = DPSettings(args.noise_multiplier, 1.0, NoiseSource(args.noise_source))
    times: dict[str, list[float]] = {k: [] for k in runs}
    cpu: dict[str, list[float]] = {k: [] for k in runs}  # robust to other processes' load
    extras: dict[str, list[dict]] = {k: [] for k in runs}
    for rep in range(args.repeats + 1):  # rep 0 is the warm-up
        for variant, run in runs.items():
            model = build_model(spec, n_inputs, seed=args.seed)
            started, cpu_started = time.perf_counter(), time.process_time()
            extra = run(model, data, train, dp, args.seed + rep)
            if rep:
                times[variant].append(time.perf_counter() - started)
                cpu[variant].append(time.process_time() - cpu_started)
                extras[variant].append(extra)
    plain, plain_cpu = statistics.median(times["plain"]), statistics.median(cpu["plain"])
    result: dict = {"hidden": HIDDEN[name], "variants": {}}
    result["parameters"] = count_parameters(build_model(spec, n_inputs, seed=0))
    for variant in VARIANTS:
        entry: dict = {"correctness": correctness[variant]} if variant in correctness else {}
        if variant in times:
            t = times[variant]
            entry |= {"seconds": t, "median_s": statistics.median(t), "min_s": min(t)}
            entry |= {"max_s": max(t), "ratio_to_plain": statistics.median(t) / plain}
            entry |= {
                "cpu_s": cpu[variant],
                "cpu_ratio": statistics.median(cpu[variant]) / plain_cpu,
            }
            for key in extras[variant][0]:
                entry[f"median_{key}"] = statistics.median(e[key] for e in extras[variant])
        if "relative" in entry.get("correctness", {}):
            entry["correct"] = entry["correctness"]["relative"] < args.tolerance
        result["variants"][variant] = entry
    correct = {k: v for k, v in result["variants"].items() if v.get("correct")}
    for key, pool in (("fastest_correct", DP_MODES), ("fastest_in_fedrisk", SUPPORTED)):
        best = min((k for k in correct if k in pool), key=lambda k: correct[k]["median_s"])
        result[key] = {"mode": best, "ratio_to_plain": correct[best]["ratio_to_plain"]}
    return result


def report(results: dict, target: float) -> None:
    """Print one table: medians, min–max, ratio to plain and the correctness check."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="one round of local training, seconds: median of runs (min–max)")
    columns = ("model (params)", "variant", "median", "min–max", "÷ plain", "CPU ÷", "max|Δw|")
    for column in (*columns, "rel"):
        table.add_column(column, justify="right")
    for name, res in results.items():
        best = res["fastest_correct"]
        for i, (variant, e) in enumerate(res["variants"].items()):
            label = f"{name} ({res['parameters']:,})" if i == 0 else ""
            check = e.get("correctness", {})
            if "error" in check:
                table.add_row(label, variant, f"[red]skipped: {check['error']}", *[""] * 5)
                continue
            cells = [f"{e['median_s']:.3f}", f"{e['min_s']:.3f}–{e['max_s']:.3f}"]
            cells.append(f"{e['ratio_to_plain']:.2f}" + (" ★" if variant == best["mode"] else ""))
            cells.append(f"{e['cpu_ratio']:.2f}")
            if "median_epsilon_s" in e:
                ms = 1e3 * (e["median_engine_s"] + e["median_epsilon_s"])
                cells[0] += f" (engine + ε: {ms:.0f} ms)"
            if check:
                mark = "" if e["correct"] else " ✗"
                cells += [f"{check['max_abs_diff']:.1e}", f"{check['relative']:.1e}{mark}"]
            table.add_row(label, variant + ("*" if variant == "ghost" else ""), *cells)
        for key in ("fastest_correct", "fastest_in_fedrisk"):
            mode, ratio = res[key]["mode"], res[key]["ratio_to_plain"]
            verdict = f"{'meets' if ratio <= target else 'misses'} ≤ {target:g}×"
            cpu = f"{res['variants'][mode]['cpu_ratio']:.2f}"
            row = [key.replace("_", " ") + f": {mode}", "", "", f"{ratio:.2f}", cpu, verdict, ""]
            table.add_row("", *row, end_section=key == "fastest_in_fedrisk")
    Console(width=140).print(table)
    print("÷ plain: ratio of wall-clock medians; CPU ÷: of process CPU-time medians. max|Δw|,")
    print("rel: final weights against hooks (noise 1e-8, same seed), rel over the largest weight")
    print("change. ★ fastest correct. * ghost: a benchmark-side loop, not in fedrisk.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="default,100k", help=f"of {sorted(HIDDEN)}")
    parser.add_argument("--rows", type=int, default=4000, help="training rows of the bank")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per variant")
    parser.add_argument("--noise-multiplier", type=float, default=1.0, help="for timing")
    parser.add_argument(
        "--noise-source",
        choices=[s.value for s in NoiseSource],
        default="os_entropy",
        help="randomness of the timed DP runs",
    )
    parser.add_argument("--tolerance", type=float, default=1e-4, help="max relative |Δw|")
    parser.add_argument("--target", type=float, default=2.0, help="DP ÷ plain target")
    parser.add_argument("--seed", type=int, default=7, help="data, init and training seed")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/dp_overhead.json"))
    args = parser.parse_args()
    if args.repeats < 1:
        raise SystemExit(f"`--repeats` must be >= 1; got {args.repeats}")
    if unknown := set(args.models.split(",")) - set(HIDDEN):
        raise SystemExit(f"`--models` must be among {sorted(HIDDEN)}; got {sorted(unknown)}")
    torch.set_num_threads(1)
    threadpool_limits(limits=1)  # idle OpenBLAS threads (from ε's scipy) would spin on a core
    data = bank_data(args.rows, args.seed)
    print(f"{data[0].shape[0]:,} rows × {data[0].shape[1]} inputs; {TrainSpec()}")
    meta: dict = {"rows": int(data[0].shape[0]), "inputs": int(data[0].shape[1]), "threads": 1}
    meta |= {"repeats": args.repeats, "cpus": os.cpu_count(), "train": str(TrainSpec())}
    meta |= {"torch": torch.__version__, "opacus": opacus.__version__}
    meta |= {"noise_multiplier": args.noise_multiplier, "noise_source": args.noise_source}
    meta["load_avg_before"] = os.getloadavg()
    results = {name: time_model(name, data, args) for name in args.models.split(",")}
    meta["load_avg_after"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    report(results, args.target)
    print(f"load average before {meta['load_avg_before']}, after {meta['load_avg_after']}")
    print(f"results → {args.out}")


if __name__ == "__main__":
    main()
