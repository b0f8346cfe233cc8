"""The HTML pages: audit/report.html and `fedrisk report RUN` (fast, no simulation)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_verify import build

from fedrisk.audit.recompute import EpsilonPoint
from fedrisk.audit.report_page import render_audit
from fedrisk.audit.verify import AuditReport, Check, audit_path
from fedrisk.cli import main
from fedrisk.privacy.ledger import canonical_json

EVIL = '<script>alert("x")</script>'
EVIL_MATH = r"$\frac{$ <img src=x onerror=alert(1)>"


def check_rows(page: str) -> list[str]:
    """The row classes of the checks table, in order."""
    checks = page.split("Checks (failed first)", 1)[1].split("</table>", 1)[0]
    return [part.split('"', 1)[0] for part in checks.split('<tr class="')[1:]]


def test_tampered_ledger_lists_the_failed_check_first(tmp_path: Path) -> None:
    consortium = build(tmp_path / "run")
    lines = consortium.lines("bank_b")
    obj = json.loads(lines[1])
    obj["epsilon"] = obj["epsilon"] / 2
    lines[1] = canonical_json(obj)
    consortium.rewrite("bank_b", lines)

    page = render_audit(audit_path(consortium.root), target="run", run_directory=False)

    rows = check_rows(page)
    assert rows[0] == "fail" and set(rows[1:]) == {"pass"}, rows
    assert "VIOLATIONS: 1 of" in page and "exits with code 1" in page
    assert 'href="../report.html"' not in page
    assert "data:image/png;base64," in page  # bank_a's ledger still verifies and is plotted


def test_strings_from_the_input_are_escaped() -> None:
    ledger = "ledger-x-0123456789abcdef.jsonl"
    report = AuditReport(
        checks=[
            Check("budget", EVIL_MATH, True, "within budget"),
            Check("chain", EVIL, False, f"{ledger}, entry 0 (line 1): {EVIL}"),
        ],
        institutions={
            name: {
                "entries": 1,
                "rounds": 1,
                "claimed_epsilon": 1.0,
                "recomputed_epsilon": {f"opacus-{EVIL}": 1.0},
                "independent_epsilon": {},
                "budget": {"epsilon": 2.0, "delta": 1e-5},
                "ledgers": [{"file": ledger}] if name == EVIL_MATH else [],
                "verdict": EVIL,
            }
            for name in (EVIL, EVIL_MATH)
        },
        curves={ledger: [EpsilonPoint(0, EVIL, 1, 1.0, 1.0, 0.9)]},
    )

    page = render_audit(report, target=EVIL, run_directory=True)

    assert "<script" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert check_rows(page) == ["fail", "pass"]
    assert 'href="../report.html"' in page


def test_audit_command_writes_the_html_beside_the_json(tmp_path: Path, capsys) -> None:
    consortium = build(tmp_path / "run")
    (consortium.root / "summary.json").write_text("{}")

    assert main(["audit", str(consortium.root)]) == 0

    page = (consortium.root / "audit" / "report.html").read_text()
    assert (consortium.root / "audit" / "report.json").exists()
    assert "PASS: all" in page and 'href="../report.html"' in page
    assert page.count("data:image/png;base64,") == 1
    assert "report.html" in capsys.readouterr().out


def write_run(root: Path, *, privacy: str = "dpsgd") -> Path:
    root.mkdir(parents=True)
    institutions = {
        name: {
            "epsilon_spent": 1.5,
            "epsilon_budget": 8.0,
            "delta": 1e-5,
            "noise_multiplier": 1.1,
            "accountant": "rdp",
            "n_train": None,
        }
        for name in ("bank_a", EVIL)
    }
    summary = {
        "consortium": "hand_written",
        "task": "credit_default",
        "strategy": "fedavg",
        "privacy": privacy,
        "secagg": "secaggplus",
        "rounds_completed": 1,
        "rounds_planned": 2,
        "stop_reason": f"round 2: {EVIL}",
        "seed": 7,
        "global": {"auc": 0.71, "log_loss": 0.4},
        "institutions": institutions,
        "institution_level": {"epsilon": 2.5, "delta": 1e-5, "releases": 1, "scope": EVIL},
        "secure_aggregation": {"rounds_unmasked": 1, "failed_rounds": {"2": EVIL}},
    }
    secagg = {
        "participants": ["bank_a", EVIL],
        "dropped": {"train": [], "unmask": [EVIL]},
        "unmasked": True,
        "aggregate_sha256": "ab" * 32,
    }
    rounds = [
        {"round": 1, "aggregated": True, "central": {"auc": 0.7, "log_loss": 0.41}},
        {"round": 2, "aggregated": False, "failures": {EVIL: EVIL}, "refusals": {}},
    ]
    rounds[0]["secagg"] = secagg
    rounds[1]["secagg"] = {**secagg, "unmasked": False, "failure": EVIL}
    (root / "summary.json").write_text(json.dumps(summary))
    (root / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rounds))
    (root / "config.yaml").write_text(f"rounds: 2\nnote: '{EVIL}'\n")
    return root


@pytest.mark.parametrize("privacy", ["dpsgd", "central"])
def test_run_report_from_a_hand_written_run(tmp_path: Path, capsys, privacy: str) -> None:
    run = write_run(tmp_path / "run", privacy=privacy)

    assert main(["report", str(run)]) == 0

    page = (run / "report.html").read_text()
    assert capsys.readouterr().out.strip() == str(run / "report.html")
    assert "<script" not in page and "&lt;script&gt;" in page
    assert "1 / 2" in page and "hand_written" in page and "0.7100" in page
    assert "data:image/png;base64," in page
    assert "Secure aggregation" in page and "ab" * 32 in page
    assert ("1.5000" in page) is (privacy == "dpsgd")
    assert ("Institution-level" in page) is (privacy == "central")


@pytest.mark.parametrize(
    "damage",
    [
        "missing",
        "no summary",
        "summary not json",
        "summary a list",
        "institutions a list",
        "metrics line not json",
        "metrics round missing",
        "config not yaml",
        "global a list",
        "secagg record malformed",
    ],
)
def test_report_of_an_unusable_directory_exits_2_with_one_line(
    tmp_path: Path, capsys, damage: str
) -> None:
    run = tmp_path / "nothing" if damage == "missing" else write_run(tmp_path / "run")
    summary = {} if damage == "missing" else json.loads((run / "summary.json").read_text())
    if damage == "no summary":
        (run / "summary.json").unlink()
    elif damage == "summary not json":
        (run / "summary.json").write_text("{")
    elif damage == "summary a list":
        (run / "summary.json").write_text("[]")
    elif damage == "institutions a list":
        (run / "summary.json").write_text(json.dumps({**summary, "institutions": []}))
    elif damage == "metrics line not json":
        (run / "metrics.jsonl").write_text('{"round": 1}\nnot json\n')
    elif damage == "metrics round missing":
        (run / "metrics.jsonl").write_text('{"central": {}}\n')
    elif damage == "config not yaml":
        (run / "config.yaml").write_text("a: [\n")
    elif damage == "global a list":
        (run / "summary.json").write_text(json.dumps({**summary, "global": []}))
    elif damage == "secagg record malformed":
        (run / "metrics.jsonl").write_text('{"round": 1, "secagg": {"dropped": ["x"]}}\n')

    code = main(["report", str(run)])

    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("fedrisk report: ") and "Traceback" not in err
    assert not (run / "report.html").exists()


def test_unusable_input_gets_a_page_saying_why(tmp_path: Path, capsys) -> None:
    consortium = build(tmp_path / "run", rounds=1)
    (consortium.root / "metrics.jsonl").write_text(f"not json {EVIL}\n")

    assert main(["audit", str(consortium.root)]) == 2

    page = (consortium.root / "audit" / "report.html").read_text()
    assert "UNUSABLE" in page and "exits with code 2" in page
    assert "metrics.jsonl" in page and "<script" not in page
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
