"""Writing an `AuditReport` as ``report.json``."""

from __future__ import annotations

import json
from pathlib import Path

from fedrisk.audit.recompute import (
    INDEPENDENT_ATOL,
    INDEPENDENT_RTOL,
    SAME_LIBRARY_RTOL,
)
from fedrisk.audit.verify import AuditReport
from fedrisk.privacy.atomic_file import write_atomically

REPORT_FILE = "report.json"
REPORT_VERSION = 1

#: What the auditor checks, stated in the report so a reader need not consult the code.
METHOD = {
    "chain": "hash chain, sequence and Ed25519 signature of every entry (manifest keys)",
    "recompute": (
        "ε recomputed from the mechanism entries with the entry's Opacus accountant, "
        f"relative tolerance {SAME_LIBRARY_RTOL:g}: rdp entries at every entry, prv entries "
        "at the last entry of each run and the final entry"
    ),
    "independent": (
        "dp_accounting (RDP for rdp entries at every entry, PLD for prv entries at the last "
        f"entry of each run and the final entry), within {INDEPENDENT_RTOL:.0%} relative or "
        f"{INDEPENDENT_ATOL:g} absolute (Opacus PRV adds eps_error 0.01)"
    ),
    "budget": "claimed and recomputed ε ≤ budget ε, δ ≤ budget δ, recorded budget = manifest's",
    "digest": (
        "latest-run entries' update_sha256 equal the server's metrics.jsonl record, and "
        "every update the server received has an entry"
    ),
}


def write_report(report: AuditReport, out_dir: Path) -> Path:
    """Write ``report.json`` into ``out_dir`` atomically and return its path.

    Parameters
    ----------
    report : AuditReport
        The audit's outcome.
    out_dir : Path
        The folder (created if missing).

    Returns
    -------
    Path
        The written ``report.json``.

    Raises
    ------
    OSError
        If the report cannot be written; an existing report is then left intact.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {
        "version": REPORT_VERSION,
        "verdict": "pass" if report.passed else "fail",
        "passed": report.passed,
        "failed_checks": sum(not check.passed for check in report.checks),
        "checks": [
            {
                "name": check.name,
                "institution": check.institution,
                "passed": check.passed,
                "detail": check.detail,
            }
            for check in report.checks
        ],
        "institutions": report.institutions,
        "method": METHOD,
    }
    text = json.dumps(payload, indent=2, sort_keys=True, allow_nan=False) + "\n"
    path = out_dir / REPORT_FILE
    write_atomically(path, text.encode("utf-8"))
    return path
