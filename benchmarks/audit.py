"""Time of ``fedrisk audit`` on long ledgers, and of each accountant's recomputation.

What is measured
----------------
A consortium of ``--banks`` institutions (default 10), each with a signed ledger of
``--rounds`` entries (default 1,000: one run, one DP-SGD release per round, the same
mechanism every round, as a planned run produces), a consortium manifest, and no
server record (so the digest check is skipped). Claimed ε per entry is computed with
Opacus's accountant when the ledger is written, exactly as a node does.

``audit``
    ``fedrisk.audit.verify.audit_path`` on the whole folder (hash chains, Ed25519
    signatures, every ε recomputed with Opacus and with dp_accounting, budgets): median
    wall seconds over ``--repeats``.
``recompute``
    One bank's full history composed once by each accountant the audit uses:
    Opacus RDP, dp_accounting RDP, Opacus PRV, dp_accounting PLD (median of
    ``--repeats``). PRV/PLD cost grows with the number of *distinct* mechanisms, not
    with rounds.

RDP ledgers are audited at every entry; PRV ledgers only at each run's last entry (see
``fedrisk.audit.recompute``), so the audit timing uses RDP ledgers, the costly case.

Examples
--------
::

    python benchmarks/audit.py                     # 10 banks × 1,000 rounds, ~5 minutes
    python benchmarks/audit.py --banks 3 --rounds 200 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

MECHANISM = {"noise_multiplier": 4.0, "sample_rate": 0.005, "steps": 20, "max_grad_norm": 1.0}
DELTA = 1e-5


def build_ledgers(folder: Path, *, banks: int, rounds: int) -> float:
    """Write a manifest and ``banks`` signed ledgers of ``rounds`` entries; return ε."""
    from fedrisk.privacy.accountant import AccountantKind, epsilon_spent
    from fedrisk.privacy.ledger import LedgerWriter, ledger_path
    from fedrisk.privacy.manifest import ConsortiumManifest, InstitutionRecord
    from fedrisk.privacy.mechanism import PoissonGaussian
    from fedrisk.secure.signing import generate_signing_key, public_key_text

    mechanism = PoissonGaussian(**MECHANISM)  # type: ignore[arg-type]
    claims = [
        epsilon_spent([mechanism] * (r + 1), delta=DELTA, accountant=AccountantKind.rdp)
        for r in range(rounds)
    ]
    budget = claims[-1] * 1.5
    ledgers = folder / "ledgers"
    ledgers.mkdir(parents=True)
    records = []
    for index in range(banks):
        name = f"bank_{index:02d}"
        key = generate_signing_key()
        records.append(
            InstitutionRecord(
                name=name,
                public_key=public_key_text(key.public_key()),
                budget_epsilon=budget,
                budget_delta=DELTA,
            )
        )
        fingerprint = f"{index:064x}"
        writer = LedgerWriter(
            ledger_path(ledgers, institution=name, dataset_fingerprint=fingerprint),
            signing_key=key,
            institution=name,
            dataset_fingerprint=fingerprint,
        )
        for server_round, claim in enumerate(claims, start=1):
            writer.append(
                run_id="benchmark",
                round=server_round,
                mechanism=mechanism,
                delta=DELTA,
                accountant="rdp",
                epsilon=claim,
                budget_epsilon=budget,
                budget_delta=DELTA,
                update_sha256=f"{server_round:064x}",
            )
    ConsortiumManifest(name="benchmark", institutions=tuple(records)).save(
        folder / "consortium.json"
    )
    return claims[-1]


def timed(action: Callable[[], object], repeats: int) -> list[float]:
    """Wall seconds of ``repeats`` calls of ``action``."""
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        seconds.append(time.perf_counter() - started)
    return seconds


def main(argv: list[str] | None = None) -> int:
    """Build the ledgers, time the audit and each accountant, print and save the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--banks", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/audit.json"))
    args = parser.parse_args(argv)

    from fedrisk.audit.verify import audit_path
    from fedrisk.privacy.accountant import (
        AccountantKind,
        IndependentMethod,
        epsilon_spent,
        independent_epsilon,
    )
    from fedrisk.privacy.mechanism import PoissonGaussian

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        epsilon = build_ledgers(folder, banks=args.banks, rounds=args.rounds)
        build_s = time.perf_counter() - started
        reports = []
        audit_s = timed(lambda: reports.append(audit_path(folder)), args.repeats)
        failed = [c for report in reports for c in report.checks if not c.passed]
        if failed:
            print(f"audit did not pass: {failed[0]}")
            return 1

    history = [PoissonGaussian(**MECHANISM)] * args.rounds  # type: ignore[arg-type]
    accountants: dict[str, Callable[[], object]] = {
        "opacus-rdp": lambda: epsilon_spent(history, delta=DELTA, accountant=AccountantKind.rdp),
        "dp_accounting-rdp": lambda: independent_epsilon(
            history, delta=DELTA, method=IndependentMethod.rdp
        ),
        "opacus-prv": lambda: epsilon_spent(history, delta=DELTA, accountant=AccountantKind.prv),
        "dp_accounting-pld": lambda: independent_epsilon(
            history, delta=DELTA, method=IndependentMethod.pld
        ),
    }
    recompute = {name: timed(action, args.repeats) for name, action in accountants.items()}
    entries = args.banks * args.rounds
    result = {
        "banks": args.banks,
        "rounds": args.rounds,
        "entries": entries,
        "final_epsilon": epsilon,
        "build_s": build_s,
        "audit_s": audit_s,
        "audit_median_s": statistics.median(audit_s),
        "audit_per_entry_ms": 1000 * statistics.median(audit_s) / entries,
        "recompute_s": recompute,
        "recompute_median_s": {k: statistics.median(v) for k, v in recompute.items()},
    }
    print(
        f"{args.banks} banks × {args.rounds} rounds = {entries} signed entries "
        f"(final ε {epsilon:.3f}; writing them took {build_s:.1f} s)"
    )
    print(
        f"fedrisk audit: {result['audit_median_s']:.2f} s median of {args.repeats} "
        f"({result['audit_per_entry_ms']:.2f} ms per entry; min {min(audit_s):.2f}, "
        f"max {max(audit_s):.2f})"
    )
    print(f"one bank's history of {args.rounds} releases, composed once:")
    for name, seconds in result["recompute_median_s"].items():
        print(f"  {name:<18} {seconds * 1000:9.1f} ms")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
