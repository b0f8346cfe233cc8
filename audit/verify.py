"""Auditing a run or a folder of ledgers against the consortium manifest.

`audit_path` verifies every ledger with the institution's key from ``consortium.json``,
recomputes every ε from the mechanism entries (`fedrisk.audit.recompute`), checks the
budgets, and compares update digests with the coordinator's ``metrics.jsonl``
(`fedrisk.audit.digests`). It reads files only: ``fedrisk.audit`` never imports the
client, the server or the simulations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fedrisk.audit.budget import budget_problems
from fedrisk.audit.digests import (
    MetricsUnreadable,
    ServerRecord,
    entry_mismatches,
    read_server_record,
    unrecorded_updates,
)
from fedrisk.audit.recompute import INDEPENDENT_OF, EpsilonPoint, epsilon_curve, recompute
from fedrisk.audit.rounds import round_problems, run_mismatches
from fedrisk.privacy.accountant import AccountantKind, epsilon_spent, independent_epsilon
from fedrisk.privacy.ledger import LedgerEntry, LedgerTampered, history, read_ledger
from fedrisk.privacy.ledger_format import LEDGER_FILE_NAME, LEDGERS_DIR
from fedrisk.privacy.manifest import MANIFEST_FILE, ConsortiumManifest, InstitutionRecord
from fedrisk.secure.signing import public_key_from_text

METRICS_FILE = "metrics.jsonl"


class AuditInputError(Exception):
    """The input cannot be audited at all (no manifest, no ledgers, unreadable files)."""


@dataclass(frozen=True)
class Check:
    """One audit check and its outcome.

    Attributes
    ----------
    name : str
        ``chain``, ``recompute``, ``independent``, ``budget``, ``digest`` or ``manifest``.
    institution : str | None
        Whose ledger, or ``None`` for a check about the input as a whole.
    passed : bool
        Whether the check passed.
    detail : str
        What was checked, or what failed (naming the file and entry).
    """

    name: str
    institution: str | None
    passed: bool
    detail: str


@dataclass(frozen=True)
class AuditReport:
    """Every check made, and the per-institution summary.

    Attributes
    ----------
    checks : list[Check]
        In the order made.
    institutions : dict[str, dict]
        Per institution: ``entries``, ``rounds``, ``claimed_epsilon``,
        ``recomputed_epsilon``, ``independent_epsilon``, ``budget``, ``ledgers``,
        ``verdict``.
    curves : dict[str, list[EpsilonPoint]]
        Per verified ledger file name, its ε entry by entry (for plots; not in
        ``report.json``).
    """

    checks: list[Check]
    institutions: dict[str, dict] = field(default_factory=dict)
    curves: dict[str, list[EpsilonPoint]] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """Whether every check passed."""
        return all(check.passed for check in self.checks)


def audit_path(path: Path) -> AuditReport:
    """Audit a run directory, a folder of ledgers, or one ledger file.

    Parameters
    ----------
    path : Path
        A run directory (``consortium.json``, ``ledgers/``, ``metrics.jsonl``), a folder
        holding ``consortium.json`` and ``ledger-*.jsonl`` files, or one ledger file
        (the manifest is looked for next to it and in the run directory above
        ``ledgers/``).

    Returns
    -------
    AuditReport
        Every check; ``report.passed`` is False on any violation.

    Raises
    ------
    AuditInputError
        With a one-line message naming the path, if there is no manifest, no ledger, or
        a file that is not what it should be (not a ledger, unreadable JSON).
    """
    path = Path(path)
    root, files = _locate(path)
    manifest = _load_manifest(root / MANIFEST_FILE)
    server = _load_server_record(root / METRICS_FILE)
    checks: list[Check] = []
    by_institution: dict[str, list[tuple[Path, list[LedgerEntry] | None]]] = {}
    known = {record.name for record in manifest.institutions}
    for file in files:
        institution, fingerprint16 = _ledger_name(file)
        if institution not in known:
            detail = f"{file.name}: ledger of {institution!r}, which the manifest does not list"
            checks.append(Check("manifest", institution, False, detail))
            continue
        entries = _verify_chain(file, institution, fingerprint16, manifest, checks)
        by_institution.setdefault(institution, []).append((file, entries))
    audited = [
        record
        for record in manifest.institutions
        if path.is_dir() or record.name in by_institution  # one ledger file: its owner only
    ]
    rows: dict[str, list[dict]] = {}
    curves: dict[str, list[EpsilonPoint]] = {}
    for record in audited:
        ledgers = by_institution.get(record.name, [])
        rows[record.name] = [
            _audit_ledger(file, entries, record, server, checks, curves)
            for file, entries in ledgers
        ]
        if server is not None and all(entries is not None for _, entries in ledgers):
            verified = [entries for _, entries in ledgers if entries is not None]
            problems = unrecorded_updates(record.name, verified, server)
            ok = "every update the server received is in a ledger"
            checks.append(_check("digest", record.name, "server record", problems, ok))
    if server is not None:
        latest = {
            record.name: entries[-1].run_id
            for record in audited
            for _, entries in by_institution.get(record.name, [])
            if entries
        }
        problems = run_mismatches(latest)
        checks.append(
            _check("rounds", None, "run directory", problems, "every bank's latest run is one run")
        )
    summaries = {
        record.name: _summary(
            record, rows[record.name], [c for c in checks if c.institution == record.name]
        )
        for record in audited
    }
    return AuditReport(checks=checks, institutions=summaries, curves=curves)


def _locate(path: Path) -> tuple[Path, list[Path]]:
    if not path.exists():
        raise AuditInputError(f"{path}: no such file or directory")
    if path.is_file():
        if not LEDGER_FILE_NAME.fullmatch(path.name):
            raise AuditInputError(
                f"{path}: not a ledger (expected ledger-<institution>-<fingerprint>.jsonl)"
            )
        folder = path.parent
        if not (folder / MANIFEST_FILE).exists() and folder.name == LEDGERS_DIR:
            folder = folder.parent
        if not (folder / MANIFEST_FILE).exists():
            raise AuditInputError(f"{path}: no {MANIFEST_FILE} next to the ledger or above it")
        return folder, [path]
    if not (path / MANIFEST_FILE).exists():
        raise AuditInputError(f"{path}: no {MANIFEST_FILE} (not a run directory or ledger folder)")
    folder = path / LEDGERS_DIR if (path / LEDGERS_DIR).is_dir() else path
    files = sorted(folder.glob("ledger-*.jsonl"))
    strays = [file.name for file in files if not LEDGER_FILE_NAME.fullmatch(file.name)]
    if strays:
        raise AuditInputError(f"{folder / strays[0]}: not a ledger file name")
    if not files:
        raise AuditInputError(f"{folder}: no ledger-*.jsonl files")
    return path, files


def _load_manifest(path: Path) -> ConsortiumManifest:
    try:
        return ConsortiumManifest.load(path)
    except (OSError, ValueError) as exc:
        raise AuditInputError(" ".join(f"{path}: {exc}".split())) from None


def _load_server_record(path: Path) -> ServerRecord | None:
    if not path.exists():
        return None
    try:
        return read_server_record(path)
    except (OSError, UnicodeDecodeError, MetricsUnreadable) as exc:
        raise AuditInputError(" ".join(f"{path}: {exc}".split())) from None


def _ledger_name(file: Path) -> tuple[str, str]:
    match = LEDGER_FILE_NAME.fullmatch(file.name)
    if match is None:
        raise AuditInputError(f"{file}: not a ledger file name")
    return match["institution"], match["fingerprint"]


def _verify_chain(
    file: Path,
    institution: str,
    fingerprint16: str,
    manifest: ConsortiumManifest,
    checks: list[Check],
) -> list[LedgerEntry] | None:
    try:
        entries = read_ledger(file, manifest.public_key(institution), institution=institution)
    except LedgerTampered as exc:
        where = f"line {exc.line}" if exc.seq is None else f"entry {exc.seq} (line {exc.line})"
        detail = f"{file.name}, {where}: {exc.reason}"
        checks.append(Check("chain", institution, False, detail))
        return None
    problem = None
    if not entries:
        problem = f"{file.name}: the ledger is empty (truncated?)"
    elif entries[0].dataset_fingerprint[:16] != fingerprint16:
        got = entries[0].dataset_fingerprint[:16]
        problem = f"{file.name}: entries carry dataset fingerprint {got}…, not the file name's"
    if problem is not None:
        checks.append(Check("chain", institution, False, problem))
        return None
    detail = f"{file.name}: {len(entries)} entries, hash chain and signatures verify"
    checks.append(Check("chain", institution, True, detail))
    return entries


def _audit_ledger(
    file: Path,
    entries: list[LedgerEntry] | None,
    record: InstitutionRecord,
    server: ServerRecord | None,
    checks: list[Check],
    curves: dict[str, list[EpsilonPoint]],
) -> dict:
    row: dict = {"file": file.name}
    if entries is None:  # chain failed: the remaining checks are skipped
        return row
    name = record.name
    again = recompute(entries)
    curves[file.name] = epsilon_curve(entries, again)
    checks.append(
        _check(
            "recompute",
            name,
            file.name,
            again.same_library_failures,
            "claimed ε matches Opacus recomputed from the mechanisms",
        )
    )
    checks.append(
        _check(
            "independent",
            name,
            file.name,
            again.independent_failures,
            "claimed ε agrees with dp_accounting",
        )
    )
    checks.append(
        _check(
            "budget",
            name,
            file.name,
            budget_problems(entries, again.same_library, record),
            "within budget",
        )
    )
    checks.append(
        _check("rounds", name, file.name, round_problems(entries), "one release per round")
    )
    if server is not None:
        checks.append(
            _check(
                "digest",
                name,
                file.name,
                entry_mismatches(entries, server, public_key_from_text(record.public_key)),
                "update digests match the server's record",
            )
        )
    last = entries[-1]
    kind = AccountantKind(last.accountant)
    row.update(
        dataset_fingerprint=last.dataset_fingerprint,
        entries=len(entries),
        rounds=len({(entry.run_id, entry.round) for entry in entries}),
        runs=len({entry.run_id for entry in entries}),
        claimed_epsilon=last.epsilon,
        recomputed_epsilon={f"opacus-{kind.value}": again.same_library.get(last.seq)},
        independent_epsilon={
            f"dp_accounting-{INDEPENDENT_OF[kind].value}": again.independent.get(last.seq)
        },
    )
    # The other accountant of each library, on the whole history, for comparison only:
    # a different accountant gives a different (equally valid) ε, so no check uses it.
    other = AccountantKind.prv if kind is AccountantKind.rdp else AccountantKind.rdp
    releases = history(entries)
    row["recomputed_epsilon"][f"opacus-{other.value}"] = epsilon_spent(
        releases, delta=last.delta, accountant=other
    )
    row["independent_epsilon"][f"dp_accounting-{INDEPENDENT_OF[other].value}"] = (
        independent_epsilon(releases, delta=last.delta, method=INDEPENDENT_OF[other])
    )
    return row


def _check(name: str, institution: str | None, where: str, problems: list[str], ok: str) -> Check:
    if not problems:
        return Check(name, institution, True, f"{where}: {ok}")
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return Check(name, institution, False, f"{where}, {problems[0]}{more}")


def _summary(record: InstitutionRecord, rows: list[dict], checks: list[Check]) -> dict:
    audited = [row for row in rows if "entries" in row]
    recomputed: dict[str, float | None] = {}
    independent: dict[str, float | None] = {}
    for row in audited:
        recomputed.update(row["recomputed_epsilon"])
        independent.update(row["independent_epsilon"])
    if not all(check.passed for check in checks):
        verdict = "fail"
    else:
        verdict = "pass" if rows else "no ledger"
    return {
        "entries": sum(row["entries"] for row in audited),
        "rounds": sum(row["rounds"] for row in audited),
        "claimed_epsilon": max((row["claimed_epsilon"] for row in audited), default=None),
        "recomputed_epsilon": recomputed,
        "independent_epsilon": independent,
        "budget": {"epsilon": record.budget_epsilon, "delta": record.budget_delta},
        "ledgers": rows,
        "verdict": verdict,
    }
