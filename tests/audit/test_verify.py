from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fedrisk.audit.report import write_report
from fedrisk.audit.rounds import run_mismatches
from fedrisk.audit.verify import AuditInputError, AuditReport, audit_path
from fedrisk.privacy.accountant import AccountantKind, epsilon_spent
from fedrisk.privacy.ledger import (
    LEDGER_SIGNATURE_CONTEXT,
    LedgerWriter,
    canonical_json,
    ledger_path,
)
from fedrisk.privacy.manifest import ConsortiumManifest, InstitutionRecord
from fedrisk.privacy.mechanism import PoissonGaussian
from fedrisk.privacy.resend import ResendStatement
from fedrisk.secure.signing import generate_signing_key, public_key_text, sign

FINGERPRINT = "ab" * 32
DELTA = 1e-5
MECHANISM = PoissonGaussian(noise_multiplier=1.1, sample_rate=0.01, steps=100, max_grad_norm=1.0)
ACCOUNTANTS = {"bank_a": AccountantKind.rdp, "bank_b": AccountantKind.prv}
ROUNDS = 3
RUN_ID = "run-1"


@dataclass
class Consortium:
    root: Path
    keys: dict[str, Ed25519PrivateKey]
    budget_epsilon: float

    def ledger(self, name: str) -> Path:
        return ledger_path(self.root / "ledgers", institution=name, dataset_fingerprint=FINGERPRINT)

    def writer(self, name: str) -> LedgerWriter:
        return LedgerWriter(
            self.ledger(name),
            signing_key=self.keys[name],
            institution=name,
            dataset_fingerprint=FINGERPRINT,
        )

    def append(self, name: str, round_: int, *, mechanism: PoissonGaussian = MECHANISM) -> None:
        writer = self.writer(name)
        history = [entry.mechanism_obj for entry in writer.entries] + [MECHANISM]
        accountant = ACCOUNTANTS[name]
        writer.append(
            run_id=RUN_ID,
            round=round_,
            mechanism=mechanism,  # ε is always MECHANISM's: a different one is a false claim
            delta=DELTA,
            accountant=accountant,
            epsilon=epsilon_spent(history, delta=DELTA, accountant=accountant),
            budget_epsilon=self.budget_epsilon,
            budget_delta=DELTA,
            update_sha256=digest(name, round_),
        )

    def write_metrics(self, rounds: int) -> None:
        lines = []
        for round_ in range(1, rounds + 1):
            updates = {name: digest(name, round_) for name in ACCOUNTANTS}
            lines.append(json.dumps({"round": round_, "update_sha256": updates}))
        (self.root / "metrics.jsonl").write_text("\n".join(lines) + "\n")

    def lines(self, name: str) -> list[bytes]:
        return self.ledger(name).read_bytes().splitlines()

    def rewrite(self, name: str, lines: list[bytes]) -> None:
        self.ledger(name).write_bytes(b"".join(line + b"\n" for line in lines))


def digest(name: str, round_: int) -> str:
    return hashlib.sha256(f"{name}/{round_}".encode()).hexdigest()


def build(root: Path, *, budget_epsilon: float = 10.0, rounds: int = ROUNDS) -> Consortium:
    keys = {name: generate_signing_key() for name in ACCOUNTANTS}
    manifest = ConsortiumManifest(
        "test-consortium",
        institutions=tuple(
            InstitutionRecord(name, public_key_text(key.public_key()), budget_epsilon, DELTA)
            for name, key in keys.items()
        ),
    )
    root.mkdir(parents=True, exist_ok=True)
    (root / "ledgers").mkdir()
    manifest.save(root / "consortium.json")
    consortium = Consortium(root, keys, budget_epsilon)
    for name in ACCOUNTANTS:
        for round_ in range(1, rounds + 1):
            consortium.append(name, round_)
    consortium.write_metrics(rounds)
    return consortium


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Consortium:
    return build(tmp_path_factory.mktemp("clean") / "run")


@pytest.fixture
def consortium(clean: Consortium, tmp_path: Path) -> Consortium:
    """A private copy of the clean consortium that a test may tamper with."""
    root = tmp_path / "run"
    (root / "ledgers").mkdir(parents=True)
    for file in clean.root.rglob("*"):
        if file.is_file():
            (root / file.relative_to(clean.root)).write_bytes(file.read_bytes())
    return Consortium(root, clean.keys, clean.budget_epsilon)


def failed(report: AuditReport) -> list[tuple[str, str | None, str]]:
    return [(c.name, c.institution, c.detail) for c in report.checks if not c.passed]


def only_failure(report: AuditReport, name: str, institution: str) -> str:
    assert not report.passed
    failures = failed(report)
    assert [(n, i) for n, i, _ in failures] == [(name, institution)], failures
    assert report.institutions[institution]["verdict"] == "fail"
    return failures[0][2]


def resign(line: bytes, key: Ed25519PrivateKey, **changes: object) -> bytes:
    obj = json.loads(line)
    mechanism = dict(obj["mechanism"])
    mechanism.update(changes)
    obj["mechanism"] = mechanism
    del obj["signature"]
    signature = sign(key, canonical_json(obj), context=LEDGER_SIGNATURE_CONTEXT)
    obj["signature"] = base64.b64encode(signature).decode("ascii")
    return canonical_json(obj)


def test_clean_consortium_passes_every_check(clean: Consortium, tmp_path: Path) -> None:
    report = audit_path(clean.root)

    assert report.passed, failed(report)
    names = {(c.name, c.institution) for c in report.checks}
    for institution in ACCOUNTANTS:
        for check in ("chain", "recompute", "independent", "budget", "digest"):
            assert (check, institution) in names
    a, b = report.institutions["bank_a"], report.institutions["bank_b"]
    assert a["verdict"] == b["verdict"] == "pass"
    assert a["entries"] == a["rounds"] == ROUNDS
    assert a["recomputed_epsilon"]["opacus-rdp"] == pytest.approx(a["claimed_epsilon"], 1e-9)
    assert a["independent_epsilon"]["dp_accounting-rdp"] == pytest.approx(
        a["claimed_epsilon"], rel=0.01
    )
    assert b["recomputed_epsilon"]["opacus-prv"] == pytest.approx(b["claimed_epsilon"], 1e-9)
    # Both libraries' other accountant is reported too, for comparison (tighter or looser,
    # never checked against the claim): PRV/PLD below RDP for the same history.
    assert set(a["recomputed_epsilon"]) == {"opacus-rdp", "opacus-prv"}
    assert set(a["independent_epsilon"]) == {"dp_accounting-rdp", "dp_accounting-pld"}
    assert a["recomputed_epsilon"]["opacus-prv"] < a["recomputed_epsilon"]["opacus-rdp"]
    assert b["independent_epsilon"]["dp_accounting-rdp"] > b["claimed_epsilon"]
    assert b["independent_epsilon"]["dp_accounting-pld"] == pytest.approx(
        b["claimed_epsilon"], abs=0.011, rel=0.01
    )

    path = write_report(report, tmp_path / "out")
    written = json.loads(path.read_text())
    assert written["verdict"] == "pass" and written["passed"] is True
    assert len(written["checks"]) == len(report.checks)
    assert set(written["checks"][0]) == {"name", "institution", "passed", "detail"}
    assert written["institutions"]["bank_a"]["verdict"] == "pass"


def test_folder_of_ledgers_and_single_ledger_file(clean: Consortium, tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "consortium.json").write_bytes((clean.root / "consortium.json").read_bytes())
    for file in (clean.root / "ledgers").iterdir():
        (folder / file.name).write_bytes(file.read_bytes())

    assert audit_path(folder).passed
    single = audit_path(clean.ledger("bank_a"))
    assert single.passed
    assert list(single.institutions) == ["bank_a"]


def test_edited_epsilon_breaks_the_signature(consortium: Consortium) -> None:
    lines = consortium.lines("bank_a")
    obj = json.loads(lines[1])
    obj["epsilon"] = obj["epsilon"] / 2
    lines[1] = canonical_json(obj)
    consortium.rewrite("bank_a", lines)

    detail = only_failure(audit_path(consortium.root), "chain", "bank_a")
    assert "entry 1 (line 2)" in detail and "signature" in detail


def test_false_epsilon_signed_with_own_key_fails_recomputation(consortium: Consortium) -> None:
    consortium.write_metrics(ROUNDS + 1)
    weaker = PoissonGaussian(noise_multiplier=0.6, sample_rate=0.01, steps=100, max_grad_norm=1.0)
    consortium.append("bank_a", ROUNDS + 1, mechanism=weaker)

    report = audit_path(consortium.root)
    recompute = [d for n, i, d in failed(report) if (n, i) == ("recompute", "bank_a")]
    assert recompute and f"entry {ROUNDS}" in recompute[0]
    assert not report.passed
    assert ("chain", "bank_a") not in [(n, i) for n, i, _ in failed(report)]


@pytest.mark.parametrize(("field", "value"), [("noise_multiplier", 0.5), ("sample_rate", 0.2)])
def test_changed_mechanism_with_the_signature_left_as_is(
    consortium: Consortium, field: str, value: float
) -> None:
    lines = consortium.lines("bank_a")
    obj = json.loads(lines[2])
    obj["mechanism"] = {**obj["mechanism"], field: value}
    lines[2] = canonical_json(obj)
    consortium.rewrite("bank_a", lines)

    detail = only_failure(audit_path(consortium.root), "chain", "bank_a")
    assert "entry 2 (line 3)" in detail and "signature" in detail


def test_changed_noise_multiplier_resigned_with_another_key(consortium: Consortium) -> None:
    lines = consortium.lines("bank_a")
    lines[2] = resign(lines[2], generate_signing_key(), noise_multiplier=0.5)
    consortium.rewrite("bank_a", lines)

    detail = only_failure(audit_path(consortium.root), "chain", "bank_a")
    assert "entry 2 (line 3)" in detail and "signature" in detail


def test_deleted_entry(consortium: Consortium) -> None:
    lines = consortium.lines("bank_b")
    del lines[1]
    consortium.rewrite("bank_b", lines)

    detail = only_failure(audit_path(consortium.root), "chain", "bank_b")
    assert "entry 1 (line 2)" in detail and "seq" in detail


def test_swapped_entries(consortium: Consortium) -> None:
    lines = consortium.lines("bank_a")
    lines[0], lines[1] = lines[1], lines[0]
    consortium.rewrite("bank_a", lines)

    detail = only_failure(audit_path(consortium.root), "chain", "bank_a")
    assert "entry 0 (line 1)" in detail


def test_truncated_file(consortium: Consortium) -> None:
    raw = consortium.ledger("bank_a").read_bytes()
    consortium.ledger("bank_a").write_bytes(raw[: len(raw) - 40])

    detail = only_failure(audit_path(consortium.root), "chain", "bank_a")
    assert "line 3" in detail and "torn" in detail


def test_truncation_at_an_entry_boundary_shows_against_the_server(
    consortium: Consortium,
) -> None:
    consortium.rewrite("bank_a", consortium.lines("bank_a")[:-1])

    detail = only_failure(audit_path(consortium.root), "digest", "bank_a")
    assert f"round {ROUNDS}" in detail and "no ledger entry" in detail


def test_entry_after_the_budget_ran_out(tmp_path: Path) -> None:
    spent = epsilon_spent([MECHANISM] * ROUNDS, delta=DELTA, accountant=AccountantKind.rdp)
    consortium = build(tmp_path / "run", budget_epsilon=spent * 1.001)
    assert audit_path(consortium.root).passed
    consortium.append("bank_a", ROUNDS + 1)
    consortium.append("bank_b", ROUNDS + 1)
    consortium.write_metrics(ROUNDS + 1)

    report = audit_path(consortium.root)
    budget = {i: d for n, i, d in failed(report) if n == "budget"}
    assert f"entry {ROUNDS}" in budget["bank_a"] and "exceeds budget" in budget["bank_a"]
    assert {n for n, _, _ in failed(report)} == {"budget"}
    assert not report.passed


def test_update_digest_differs_from_server_record(consortium: Consortium) -> None:
    metrics = consortium.root / "metrics.jsonl"
    records = [json.loads(line) for line in metrics.read_text().splitlines()]
    records[1]["update_sha256"]["bank_b"] = "0" * 64
    metrics.write_text("".join(json.dumps(r) + "\n" for r in records))

    detail = only_failure(audit_path(consortium.root), "digest", "bank_b")
    assert "entry 1 (run run-1, round 2)" in detail and "differs" in detail


def test_update_the_server_never_received(consortium: Consortium) -> None:
    consortium.write_metrics(ROUNDS - 1)

    report = audit_path(consortium.root)
    details = [d for n, _, d in failed(report) if n == "digest"]
    assert len(details) == 2
    assert all("server has no record of this update" in d for d in details)


def test_edited_report_written_with_failures(consortium: Consortium, tmp_path: Path) -> None:
    consortium.rewrite("bank_a", consortium.lines("bank_a")[1:])

    report = audit_path(consortium.root)
    written = json.loads(write_report(report, tmp_path / "out").read_text())
    assert written["verdict"] == "fail" and written["failed_checks"] >= 1
    assert written["institutions"]["bank_a"]["verdict"] == "fail"
    assert written["institutions"]["bank_b"]["verdict"] == "pass"


def _one_line_error(path: Path) -> str:
    with pytest.raises(AuditInputError) as caught:
        audit_path(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message
    return message


def test_unusable_input(clean: Consortium, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "consortium.json" in _one_line_error(empty)

    no_manifest = tmp_path / "no_manifest"
    no_manifest.mkdir()
    (no_manifest / clean.ledger("bank_a").name).write_bytes(clean.ledger("bank_a").read_bytes())
    assert "consortium.json" in _one_line_error(no_manifest)

    notes = tmp_path / "notes.txt"
    notes.write_text("hello\n")
    assert "not a ledger" in _one_line_error(notes)

    assert "no such file" in _one_line_error(tmp_path / "missing")

    no_ledgers = tmp_path / "no_ledgers"
    no_ledgers.mkdir()
    (no_ledgers / "consortium.json").write_bytes((clean.root / "consortium.json").read_bytes())
    assert "no ledger" in _one_line_error(no_ledgers)

    bad_manifest = tmp_path / "bad_manifest"
    bad_manifest.mkdir()
    (bad_manifest / "consortium.json").write_text("{not json\n")
    _one_line_error(bad_manifest)


def test_unreadable_metrics(consortium: Consortium) -> None:
    (consortium.root / "metrics.jsonl").write_text('{"round": 1}\n{oops\n')

    with pytest.raises(AuditInputError, match=r"metrics\.jsonl, line 2"):
        audit_path(consortium.root)


def test_a_round_recorded_twice_in_one_run(consortium: Consortium) -> None:
    consortium.append("bank_a", ROUNDS)  # a second release for the last round

    detail = only_failure(audit_path(consortium.root), "rounds", "bank_a")
    assert f"round {ROUNDS}: 2 entries" in detail


def test_banks_whose_latest_runs_differ_are_named() -> None:
    assert run_mismatches({"bank_a": "r1", "bank_b": "r1", "bank_c": "r0"}) == [
        "the banks' latest runs differ: most are in run r1, but bank_c (r0)"
    ]
    assert run_mismatches({"bank_a": "r1", "bank_b": "r1"}) == []


def _resent(consortium: Consortium, *, key_of: str = "bank_a", **changes: object) -> str:
    """Record round 2 of bank_a as received again, masked anew, with a resend statement."""
    metrics = consortium.root / "metrics.jsonl"
    records = [json.loads(line) for line in metrics.read_text().splitlines()]
    entry = json.loads(consortium.lines("bank_a")[1])
    again = hashlib.sha256(b"bank_a/2/masked-again").hexdigest()
    fields: dict = {
        "run_id": entry["run_id"],
        "round": 2,
        "institution": "bank_a",
        "ledger_seq": entry["seq"],
        "ledger_sha256": entry["update_sha256"],
        "sent_sha256": again,
    }
    fields.update(changes)
    statement = ResendStatement(**fields).signed(consortium.keys[key_of])
    records[1]["update_sha256"]["bank_a"] = again
    records[1]["resent"] = {"bank_a": statement.to_json()}
    metrics.write_text("".join(json.dumps(r) + "\n" for r in records))
    return again


def test_a_round_sent_again_with_a_signed_statement_passes(consortium: Consortium) -> None:
    _resent(consortium)

    report = audit_path(consortium.root)
    assert report.passed, failed(report)


@pytest.mark.parametrize(
    ("key_of", "changes", "expected"),
    [
        ("bank_b", {}, "does not verify with its manifest key"),
        ("bank_a", {"ledger_seq": 0}, "(ledger_seq)"),
        ("bank_a", {"sent_sha256": "ab" * 32}, "(sent_sha256)"),
        ("bank_a", {"ledger_sha256": "cd" * 32}, "(ledger_sha256)"),
    ],
)
def test_a_resend_statement_that_does_not_account_for_the_digest_fails(
    consortium: Consortium, key_of: str, changes: dict, expected: str
) -> None:
    _resent(consortium, key_of=key_of, **changes)

    detail = only_failure(audit_path(consortium.root), "digest", "bank_a")
    assert "entry 1 (run run-1, round 2): " in detail and expected in detail


def test_a_malformed_resend_statement_is_an_unreadable_record(consortium: Consortium) -> None:
    metrics = consortium.root / "metrics.jsonl"
    records = [json.loads(line) for line in metrics.read_text().splitlines()]
    records[0]["resent"] = {"bank_a": {"round": 1}}
    metrics.write_text("".join(json.dumps(r) + "\n" for r in records))

    with pytest.raises(AuditInputError, match=r"metrics\.jsonl, line 1: .*missing"):
        audit_path(consortium.root)
