"""The audit and run reports of a real run, rendered by headless Chromium.

Named apart from ``tests/audit/test_html_reports.py``: the test folders are not packages,
so two test modules may not share a file name.
"""

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread
from shared_runs import DPSGD_SECAGG_BANKS, DPSGD_SECAGG_ROUNDS

pytestmark = pytest.mark.slow

BANKS = DPSGD_SECAGG_BANKS
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


class Dom(HTMLParser):
    """What the tests look at in a dumped DOM: rows' cells, images, links, ids."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.images: list[str] = []
        self.links: list[str] = []
        self.by_id: dict[str, str] = {}
        self._cell: list[str] | None = None
        self._id: str | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "tr":
            self.rows.append([])
        elif tag == "td":
            self._cell = []
        elif tag == "img":
            self.images.append(attributes.get("src") or "")
        elif tag == "a":
            self.links.append(attributes.get("href") or "")
        if attributes.get("id"):
            self._id = attributes["id"]
            self.by_id[self._id] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None
        if tag in ("p", "a"):
            self._id = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._id is not None:
            self.by_id[self._id] += data


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail(
            "chromium is not installed; this test needs it (apt-get install -y chromium; "
            ".ci/run installs it)"
        )
    return path


def browse(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, page.as_uri()],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def render(page: Path, tmp_path: Path) -> Dom:
    """The page's DOM after Chromium loaded it; and a screenshot that is not blank."""
    profile = tmp_path / "chromium-profile"
    dom = Dom(browse(page, profile, "--dump-dom").stdout)
    shot = tmp_path / f"{page.parent.name}-{page.stem}.png"
    browse(page, profile, f"--screenshot={shot}", "--window-size=1280,2000")
    assert shot.exists(), f"chromium wrote no screenshot of {page}"
    pixels = imread(shot)
    colours = np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)
    assert pixels.shape[:2] == (2000, 1280)
    assert len(colours) > 50, f"screenshot of {page} looks blank ({len(colours)} colours)"
    return dom


@pytest.fixture
def browser() -> str:
    """Chromium's path: asked for first, so a missing browser fails before any simulation."""
    return chromium()


@pytest.fixture
def audited_run(browser, dpsgd_secagg_run, dpsgd_secagg_audit) -> Path:
    """The session's shared DP-SGD + SecAgg+ run (4 rounds; conftest.py), audited."""
    audit = dpsgd_secagg_audit
    assert audit.returncode == 0, audit.stdout[-2000:] + audit.stderr[-2000:]
    return dpsgd_secagg_run


def test_audit_and_run_reports_render_in_chromium(audited_run, cli, tmp_path):
    run = audited_run
    report = cli("report", str(run), cwd=tmp_path)
    assert report.returncode == 0, report.stderr[-2000:]
    assert report.stdout.strip() == str(run / "report.html")

    audit_dom = render(run / "audit" / "report.html", tmp_path)
    first_cells = [row[0] for row in audit_dom.rows if row]
    assert all(bank in first_cells for bank in BANKS), first_cells
    assert audit_dom.by_id["verdict"].startswith("PASS"), audit_dom.by_id
    assert any(src.startswith("data:image/png;base64,") for src in audit_dom.images)
    assert "../report.html" in audit_dom.links
    assert (run / "audit" / "../report.html").resolve() == (run / "report.html").resolve()

    run_dom = render(run / "report.html", tmp_path)
    privacy_rows = [row for row in run_dom.rows if row and row[0] in BANKS]
    assert {row[0] for row in privacy_rows} == set(BANKS)
    assert any(src.startswith("data:image/png;base64,") for src in run_dom.images)
    assert "audit/report.html" in run_dom.links
    unmasked = [row for row in run_dom.rows if "unmasked" in row]
    # One secure-aggregation row per round.
    assert len(unmasked) == DPSGD_SECAGG_ROUNDS, run_dom.rows
