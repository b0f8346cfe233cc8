"""Soak: many rounds over many banks, random dropouts and a faulty bank; is memory flat.

Runs one real ``fedrisk simulate`` subprocess (Flower's simulation engine, Ray backend)
with ``--banks`` generated banks for ``--rounds`` rounds, a tiny model and few rows,
seeded random dropouts at training and at evaluation, and one bank that sends a
corrupt update every round (rejected by the server's update validation). While it runs,
the script samples the resident set size (``VmRSS`` from ``/proc``) of

* the server: the ``fedrisk simulate`` process, which runs the ServerApp;
* the Ray workers: the processes running ClientApps (``ray::`` workers);
* Ray's own daemons (raylet, GCS, …), reported apart;

and notes, at the moment each round's line appears in ``metrics.jsonl``, the RSS of
each group. Growth per round is the least-squares slope of that series over the
rounds after ``--warmup``; flat memory means a slope near zero (a few kB per round are
allocator noise). Usage::

    python benchmarks/soak.py                      # 50 rounds x 20 banks
    python benchmarks/soak.py --rounds 10 --banks 5 --out /tmp/soak.json

It prints a table and writes every sample to ``--out`` (default
``benchmarks/results/soak.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PAGE_KB = 1024


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def _descendants(root: int) -> list[int]:
    tree, found, todo = _children(), [], [root]
    while todo:
        pid = todo.pop()
        for child in tree.get(pid, []):
            found.append(child)
            todo.append(child)
    return found


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / PAGE_KB
    except OSError:
        pass
    return 0.0


def _is_worker(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    return cmdline.startswith("ray::") or "default_worker.py" in cmdline


def sample(server: int) -> dict[str, float]:
    """Measure the RSS in MB of the server process, the Ray workers and Ray's daemons."""
    workers = daemons = 0.0
    n_workers = 0
    for pid in _descendants(server):
        if _is_worker(pid):
            workers += _rss_mb(pid)
            n_workers += 1
        else:
            daemons += _rss_mb(pid)
    return {
        "server": _rss_mb(server),
        "workers": workers,
        "daemons": daemons,
        "n_workers": n_workers,
    }


def overrides(rounds: int, banks: int, run_dir: Path) -> list[str]:
    """Build the ``fedrisk simulate`` arguments of the soak run."""
    return [
        f"hydra.run.dir={run_dir}",
        "consortium=banks_20_skewed",
        f"consortium.generate.count={banks}",
        f"consortium.generate.total_rows={300 * banks}",
        "consortium.generate.min_rows=200",
        "consortium.test_rows=2000",
        f"rounds={rounds}",
        "seed=8",
        "task.model.hidden=[8]",
        "task.train.epochs=1",
        "simulation.baselines=false",
        "strategy.min_train_nodes=2",
        "round_timeout=120",
        "faults.random_dropouts=[{probability:0.1,stage:train},{probability:0.1,stage:evaluate}]",
        "faults.corrupt=[{institution:bank_01,kind:nan}]",
    ]


def slope(rounds: list[int], values: list[float]) -> float:
    """Fit the least-squares growth per round (MB/round)."""
    if len(rounds) < 2:
        return float("nan")
    return float(np.polyfit(np.asarray(rounds, float), np.asarray(values, float), 1)[0])


def main(argv: list[str] | None = None) -> int:
    """Run the soak and report wall time, peak RSS and RSS growth per round."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--banks", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5, help="rounds left out of the fit")
    parser.add_argument("--interval", type=float, default=0.25, help="seconds between samples")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/soak.json"))
    parser.add_argument("--work-dir", type=Path, default=None)
    args = parser.parse_args(argv)

    work = args.work_dir or Path(tempfile.mkdtemp(prefix="fedrisk-soak-"))
    run_dir = work / "run"
    work.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "fedrisk",
        "simulate",
        *overrides(args.rounds, args.banks, run_dir),
    ]
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    samples: list[dict[str, float]] = []
    per_round: dict[int, dict[str, float]] = {}
    metrics = run_dir / "metrics.jsonl"
    while process.poll() is None:
        now = sample(process.pid)
        now["t"] = time.perf_counter() - started
        samples.append(now)
        if metrics.exists():
            done = len(metrics.read_text().splitlines())
            for round_ in range(1, done + 1):
                per_round.setdefault(round_, now)
        time.sleep(args.interval)
    wall = time.perf_counter() - started
    stderr = process.stderr.read() if process.stderr else ""
    if process.returncode != 0:
        print(stderr[-3000:], file=sys.stderr)
        return 1
    summary = json.loads((run_dir / "summary.json").read_text())
    lines = [json.loads(x) for x in metrics.read_text().splitlines()]
    fitted = sorted(r for r in per_round if r > args.warmup)
    report: dict[str, object] = {
        "rounds": args.rounds,
        "banks": args.banks,
        "rounds_completed": summary["rounds_completed"],
        "stop_reason": summary["stop_reason"],
        "wall_seconds": wall,
        "load_average": os.getloadavg(),
        "rejected": sum(len(x.get("rejected", {})) for x in lines),
        "train_dropouts": sum(len(x.get("failures", {})) for x in lines),
        "peak_mb": {k: max(s[k] for s in samples) for k in ("server", "workers", "daemons")},
        "growth_mb_per_round": {
            k: slope(fitted, [per_round[r][k] for r in fitted])
            for k in ("server", "workers", "daemons")
        },
        "first_last_mb": {
            k: (per_round[fitted[0]][k], per_round[fitted[-1]][k]) if fitted else None
            for k in ("server", "workers", "daemons")
        },
        "samples": samples,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(
        f"soak: {args.rounds} rounds x {args.banks} banks, {report['rounds_completed']} completed"
    )
    print(f"wall time {wall:.1f} s; load average {os.getloadavg()[0]:.1f}")
    print(f"rejected updates {report['rejected']}, train failures {report['train_dropouts']}")
    print(f"{'':10}{'peak MB':>10}{'MB/round':>12}{'after warm-up':>22}")
    for key in ("server", "workers", "daemons"):
        first_last = report["first_last_mb"][key]  # type: ignore[index]
        span = f"{first_last[0]:.1f} -> {first_last[1]:.1f}" if first_last else "-"
        print(
            f"{key:10}{report['peak_mb'][key]:>10.1f}"  # type: ignore[index]
            f"{report['growth_mb_per_round'][key]:>12.3f}{span:>22}"  # type: ignore[index]
        )
    print(f"samples: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
