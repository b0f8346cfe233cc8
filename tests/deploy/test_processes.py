import os
import sys
import time
from pathlib import Path

import pytest

from fedrisk.deploy.processes import Child, ChildFailed, echo_line, stop_all

# A parent that starts a grandchild in a session of its own (as Flower's SuperLink does
# with its SuperExec), prints both pids, then ignores SIGTERM for a while.
_TREE = """
import os, signal, subprocess, sys, time
grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"],
                              start_new_session=True)
print("grandchild", grandchild.pid, flush=True)
print("ready", flush=True)
signal.signal(signal.SIGTERM, signal.SIG_IGN if sys.argv[1] == "stubborn" else signal.SIG_DFL)
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")


def _tree(tmp_path: Path, mode: str) -> tuple[Child, int]:
    child = Child("tree", [sys.executable, "-c", _TREE, mode], log=tmp_path / "tree.log")
    line = child.wait_for(r"^grandchild \d+", timeout=30)
    child.wait_for("ready", timeout=30)
    return child, int(line.split()[1])


@pytest.mark.parametrize("mode", ["polite", "stubborn"])
def test_stop_ends_the_child_and_a_detached_grandchild(tmp_path: Path, mode: str) -> None:
    child, grandchild = _tree(tmp_path, mode)
    assert child.running() and _alive(grandchild)

    started = time.monotonic()
    child.stop(grace=1.0)

    assert not child.running()
    deadline = time.monotonic() + 5
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(grandchild)
    assert time.monotonic() - started < 10
    assert "ready" in (tmp_path / "tree.log").read_text()


def test_kill_is_immediate(tmp_path: Path) -> None:
    child, grandchild = _tree(tmp_path, "stubborn")
    child.kill()
    assert not child.running()
    time.sleep(0.2)
    assert not _alive(grandchild)


def test_wait_for_names_the_child_and_quotes_its_output_when_it_exits(tmp_path: Path) -> None:
    child = Child(
        "shorty",
        [sys.executable, "-c", "print('\\x1b[91mERROR\\x1b[0m: no such key'); raise SystemExit(3)"],
        log=tmp_path / "shorty.log",
    )
    with pytest.raises(ChildFailed, match=r"shorty exited; last output:\n  ERROR: no such key"):
        child.wait_for("never printed", timeout=30)
    assert child.wait() == 3
    assert (tmp_path / "shorty.log").read_text() == "ERROR: no such key\n"  # colour removed


def test_wait_for_times_out_and_wait_exit_too(tmp_path: Path) -> None:
    child = Child(
        "sleeper", [sys.executable, "-c", "import time; time.sleep(60)"], log=tmp_path / "s.log"
    )
    try:
        with pytest.raises(ChildFailed, match=r"was not ready after 0\.5 s"):
            child.wait_for("x", timeout=0.5)
        with pytest.raises(ChildFailed, match=r"still running after 0\.5 s"):
            child.wait_exit(timeout=0.5)
    finally:
        stop_all([child])
    assert not child.running()


def test_echo_receives_every_line(tmp_path: Path) -> None:
    seen: list[str] = []
    child = Child(
        "echo",
        [sys.executable, "-c", "print('one'); print('two')"],
        log=tmp_path / "e.log",
        echo=seen.append,
    )
    assert child.wait_exit(timeout=30) == 0
    assert seen == ["one", "two"]


def test_echo_line_tags_every_line_or_only_problems_on_stderr(capsys) -> None:
    echo_line("SuperNode", "INFO: connected")
    echo_line("SuperNode", "INFO: pulled a message", problems_only=True)
    echo_line("SuperNode", "ERROR: refused", problems_only=True)
    echo_line("SuperNode", "WARNING: slow", problems_only=True)
    out, err = capsys.readouterr()
    assert out == "  [SuperNode] INFO: connected\n"
    assert err == "  [SuperNode] ERROR: refused\n  [SuperNode] WARNING: slow\n"
