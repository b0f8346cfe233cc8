"""Child processes of ``fedrisk server`` and ``fedrisk node``: start, watch, stop.

Flower's SuperLink and SuperNode start their own children (SuperExec, the
ServerApp and ClientApp processes). A child either gets a process group of its own
(``own_group=True``: a test or a supervisor stopping everything it started) or stays
in its parent's group, so that Ctrl-C at a terminal reaches it too. On Linux it also
receives SIGTERM if its parent dies. Stopping sends SIGTERM, then SIGKILL after a
grace period, to the child and to every descendant it has left. Output is copied to a
log file and, line by line, to a callback.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType

STOP_GRACE_S = 10.0
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class ChildFailed(RuntimeError):
    """A child process exited, or did not become ready, when it should be running."""


class Child:
    """One child process group with its output copied to ``log``.

    Parameters
    ----------
    name : str
        Shown before each copied line.
    argv : Sequence[str]
        The command.
    log : Path
        Every output line is appended here.
    env : dict[str, str] | None (default: None)
        The environment (default: this process's).
    echo : Callable[[str], None] | None (default: None)
        Receives each output line (without colour codes); ``None`` copies nothing.
    own_group : bool (default: True)
        Start the child in a new session (its own process group).

    Raises
    ------
    OSError
        If the command cannot be started.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log: Path,
        env: dict[str, str] | None = None,
        echo: Callable[[str], None] | None = None,
        own_group: bool = True,
    ) -> None:
        self.name = name
        self.log = log
        self._lines: list[str] = []
        self._seen = threading.Condition()
        log.parent.mkdir(parents=True, exist_ok=True)
        self._process = subprocess.Popen(
            list(argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=own_group,
            preexec_fn=_die_with_parent,
            text=True,
            bufsize=1,
            errors="replace",
        )
        self._own_group = own_group
        self._echo = echo
        self._reader = threading.Thread(target=self._copy, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        """The child's process id (also its process-group id)."""
        return self._process.pid

    def running(self) -> bool:
        """Return whether the child has not exited."""
        return self._process.poll() is None

    def _copy(self) -> None:
        stream = self._process.stdout
        if stream is None:  # pragma: no cover - stdout is always a pipe here
            return
        with self.log.open("a", encoding="utf-8") as out:
            for raw in stream:
                line = _ANSI.sub("", raw.rstrip("\n"))
                out.write(line + "\n")
                out.flush()
                with self._seen:
                    self._lines.append(line)
                    self._seen.notify_all()
                if self._echo is not None:
                    self._echo(line)
        with self._seen:
            self._seen.notify_all()

    def wait_for(self, pattern: str, *, timeout: float) -> str:
        """Wait until an output line matches ``pattern``; return that line.

        Raises
        ------
        ChildFailed
            If the child exits first or ``timeout`` seconds pass; the message quotes
            its last lines and names the log.
        """
        wanted = re.compile(pattern)
        deadline = time.monotonic() + timeout
        checked = 0
        with self._seen:
            while True:
                for line in self._lines[checked:]:
                    if wanted.search(line):
                        return line
                checked = len(self._lines)
                left = deadline - time.monotonic()
                if left <= 0 or (not self.running() and not self._reader.is_alive()):
                    break
                self._seen.wait(min(left, 0.2))
        state = "exited" if not self.running() else f"was not ready after {timeout:g} s"
        raise ChildFailed(f"{self.name} {state}; last output:\n{self.tail()}\n(log: {self.log})")

    def tail(self, lines: int = 8) -> str:
        """Return the last output lines."""
        with self._seen:
            return "\n".join(f"  {line}" for line in self._lines[-lines:])

    def wait(self) -> int:
        """Wait for the child to exit and return its exit code."""
        code = self._process.wait()
        self._reader.join(timeout=5)
        return code

    def wait_exit(self, *, timeout: float) -> int:
        """Wait at most ``timeout`` seconds for the child to exit; return its exit code.

        Raises
        ------
        ChildFailed
            If it is still running then; the message quotes its last lines.
        """
        try:
            code = self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ChildFailed(
                f"{self.name} still running after {timeout:g} s; last output:\n"
                f"{self.tail()}\n(log: {self.log})"
            ) from None
        self._reader.join(timeout=5)
        return code

    def stop(self, grace: float = STOP_GRACE_S) -> int | None:
        """Stop the child and its descendants: SIGTERM, then SIGKILL after ``grace`` s.

        Returns
        -------
        int | None
            The child's exit code (None if it could not be reaped).
        """
        leftovers = _descendants(self._process.pid)
        self._signal(signal.SIGTERM)
        try:
            self._process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=5.0)
        leftovers += _descendants(self._process.pid)
        for pid in leftovers:  # e.g. a SuperExec that detached into its own session
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        self._reader.join(timeout=5)
        return self._process.poll()

    def kill(self) -> None:
        """Kill the child and its descendants at once (SIGKILL), as a crash would."""
        leftovers = _descendants(self._process.pid)
        self._signal(signal.SIGKILL)
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout=5.0)
        self._reader.join(timeout=5)

    def _signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if self._own_group:
                os.killpg(self._process.pid, sig)
            else:
                os.kill(self._process.pid, sig)


def _descendants(pid: int) -> list[int]:
    """Return the process ids below ``pid`` (Linux ``/proc``; empty elsewhere)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = entry.read_text().rsplit(")", 1)[1].split()
            parents.setdefault(int(fields[1]), []).append(int(entry.parent.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _die_with_parent() -> None:
    """In the child before exec: ask Linux to send SIGTERM when the parent dies."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def stop_all(children: Sequence[Child]) -> None:
    """Stop every child, the last started first."""
    for child in reversed(children):
        child.stop()


@contextlib.contextmanager
def stop_requests() -> Iterator[threading.Event]:
    """While active, SIGINT (Ctrl-C) and SIGTERM set the yielded event instead of raising.

    Yields
    ------
    threading.Event
        Set once a stop was asked for; the command then stops its children itself.
    """
    event = threading.Event()

    def handle(signum: int, frame: FrameType | None) -> None:
        event.set()

    saved = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield event
    finally:
        for sig, previous in saved.items():
            signal.signal(sig, previous)


def echo_line(tag: str, line: str, *, problems_only: bool = False) -> None:
    """Print a child's output ``line`` as ``  [tag] line``.

    Every line goes to stdout; with ``problems_only`` only a line naming an ``ERROR``
    or a ``WARNING`` is printed, to stderr.
    """
    if not problems_only:
        print(f"  [{tag}] {line}", flush=True)
    elif "ERROR" in line or "WARNING" in line:
        print(f"  [{tag}] {line}", file=sys.stderr, flush=True)
