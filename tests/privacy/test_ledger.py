from __future__ import annotations

import base64
import itertools
import json
import pickle
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedrisk.privacy.ledger import (
    GENESIS_HASH,
    LEDGER_SIGNATURE_CONTEXT,
    LedgerConflict,
    LedgerEntry,
    LedgerTampered,
    LedgerWriter,
    canonical_json,
    history,
    ledger_path,
    read_ledger,
)
from fedrisk.privacy.mechanism import PoissonGaussian
from fedrisk.secure.signing import generate_signing_key, save_private_key, sign

FINGERPRINT = "3f" * 32
INSTITUTION = "bank_a"
MECHANISM = PoissonGaussian(noise_multiplier=1.1, sample_rate=0.01, steps=32, max_grad_norm=1.0)
START = datetime(2025, 1, 1, tzinfo=UTC)
N_ENTRIES = 6


def _writer(path: Path, key: Ed25519PrivateKey) -> LedgerWriter:
    return LedgerWriter(
        path, signing_key=key, institution=INSTITUTION, dataset_fingerprint=FINGERPRINT
    )


def _append(writer: LedgerWriter, **overrides: object) -> LedgerEntry:
    i = len(writer.entries)
    arguments: dict[str, object] = {
        "run_id": "run-1",
        "round": i + 1,
        "mechanism": MECHANISM,
        "delta": 1e-5,
        "accountant": "rdp",
        "epsilon": 0.5 * (i + 1),
        "budget_epsilon": 8.0,
        "budget_delta": 1e-5,
        "update_sha256": f"{i:064x}",
        "extras": {"accountant_library": "opacus", "accountant_version": "1.6.0"},
        "now": START + timedelta(minutes=i),
    }
    arguments.update(overrides)
    return writer.append(**arguments)  # type: ignore[arg-type]


def _build(path: Path, key: Ed25519PrivateKey, n: int = N_ENTRIES) -> list[bytes]:
    writer = _writer(path, key)
    for _ in range(n):
        _append(writer)
    return path.read_bytes().split(b"\n")[:-1]


def _resign(line: bytes, key: Ed25519PrivateKey, **changes: object) -> bytes:
    obj = json.loads(line)
    obj.update(changes)
    del obj["signature"]
    signature = sign(key, canonical_json(obj), context=LEDGER_SIGNATURE_CONTEXT)
    obj["signature"] = base64.b64encode(signature).decode()
    return canonical_json(obj)


def _write_lines(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))


def _tampered(path: Path, key: Ed25519PrivateKey) -> LedgerTampered:
    with pytest.raises(LedgerTampered) as excinfo:
        read_ledger(
            path, key.public_key(), institution=INSTITUTION, dataset_fingerprint=FINGERPRINT
        )
    return excinfo.value


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, Ed25519PrivateKey]:
    key = generate_signing_key()
    path = tmp_path_factory.mktemp("ledger") / "bank_a.jsonl"
    _build(path, key)
    return path.read_bytes(), key


def test_round_trip(tmp_path: Path) -> None:
    key = generate_signing_key()
    path = tmp_path / "bank_a.jsonl"
    writer = _writer(path, key)
    written = [_append(writer) for _ in range(N_ENTRIES)]

    entries = read_ledger(path, key.public_key())

    assert entries == written == list(writer.entries)
    assert [e.seq for e in entries] == list(range(N_ENTRIES))
    assert entries[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.line_hash() for a, b in itertools.pairwise(entries))
    assert entries[2].extras == {"accountant_library": "opacus", "accountant_version": "1.6.0"}
    assert entries[2].time == "2025-01-01T00:02:00.000000+00:00"
    assert entries[2].budget == {"epsilon": 8.0, "delta": 1e-5}
    assert history(entries) == [MECHANISM] * N_ENTRIES
    first = json.loads(path.read_bytes().split(b"\n")[0])
    assert first == entries[0].to_json()
    assert set(first) >= {
        "version", "seq", "prev_hash", "time", "run_id", "round", "institution",
        "dataset_fingerprint", "mechanism", "delta", "accountant", "epsilon", "budget",
        "update_sha256", "signature",
    }  # fmt: skip


def test_missing_file_is_empty_ledger(tmp_path: Path) -> None:
    assert read_ledger(tmp_path / "none.jsonl", generate_signing_key().public_key()) == []


def test_ledger_path_naming(tmp_path: Path) -> None:
    path = ledger_path(tmp_path, institution="bank_a", dataset_fingerprint=FINGERPRINT)

    assert path == tmp_path / f"ledger-bank_a-{FINGERPRINT[:16]}.jsonl"
    with pytest.raises(ValueError, match="`institution` must match"):
        ledger_path(tmp_path, institution="../evil", dataset_fingerprint=FINGERPRINT)
    with pytest.raises(ValueError, match="`dataset_fingerprint` must be"):
        ledger_path(tmp_path, institution="bank_a", dataset_fingerprint="xyz")


def test_every_byte_of_an_entry_flipped_is_detected_and_named(
    ledger: tuple[bytes, Ed25519PrivateKey], tmp_path: Path
) -> None:
    raw, key = ledger
    path = tmp_path / "bank_a.jsonl"
    lines = raw.split(b"\n")
    start = sum(len(line) + 1 for line in lines[:3])  # entry 3 is on line 4
    end = start + len(lines[3]) + 1  # including its newline

    for position in range(start, end):
        damaged = bytearray(raw)
        damaged[position] ^= 0x01
        path.write_bytes(bytes(damaged))

        error = _tampered(path, key)

        assert (error.line, error.seq) in {(4, 3), (4, None)}, (position, error)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_byte_changed_anywhere_is_detected_and_named(
    ledger: tuple[bytes, Ed25519PrivateKey],
    tmp_path_factory: pytest.TempPathFactory,
    data: st.DataObject,
) -> None:
    raw, key = ledger
    position = data.draw(st.integers(0, len(raw) - 1), label="position")
    mask = data.draw(st.integers(1, 255), label="xor mask")
    damaged = bytearray(raw)
    damaged[position] ^= mask
    path = tmp_path_factory.getbasetemp() / "hypothesis-ledger.jsonl"
    path.write_bytes(bytes(damaged))

    error = _tampered(path, key)

    assert error.line == raw[:position].count(b"\n") + 1


def test_deleted_entry_is_named(tmp_path: Path) -> None:
    key = generate_signing_key()
    path = tmp_path / "bank_a.jsonl"
    lines = _build(path, key)
    _write_lines(path, lines[:2] + lines[3:])

    error = _tampered(path, key)

    assert (error.line, error.seq) == (3, 2)
    assert "`seq` must be 2; got 3" in error.reason


def test_swapped_entries_are_named(tmp_path: Path) -> None:
    key = generate_signing_key()
    path = tmp_path / "bank_a.jsonl"
    lines = _build(path, key)
    _write_lines(path, [*lines[:2], lines[3], lines[2], *lines[4:]])

    error = _tampered(path, key)

    assert (error.line, error.seq) == (3, 2)


def test_inserted_entry_is_named(tmp_path: Path) -> None:
    key = generate_signing_key()
    path = tmp_path / "bank_a.jsonl"
    lines = _build(path, key)
    forged = _resign(lines[2], key, seq=3)  # even with the right key: off the chain
    _write_lines(path, [*lines[:3], forged, *lines[3:]])

    error = _tampered(path, key)

    assert (error.line, error.seq) == (4, 3)
    assert "prev_hash" in error.reason


def test_entry_resigned_with_another_key_is_named(tmp_path: Path) -> None:
    key = generate_signing_key()
    path = tmp_path / "bank_a.jsonl"
    lines = _build(path, key)
    lines[3] = _resign(lines[3], generate_signing_key(), epsilon=0.01)
    _write_lines(path, lines)

    error = _tampered(path, key)

    assert str(error) == "ledger bank_a.jsonl, entry 3 (line 4): signature does not verify"


def test_whole_ledger_rewritten_with_another_key_is_named(tmp_path: Path) -> None:
    key, forger = generate_signing_key(), generate_signing_key()
    path = tmp_path / "bank_a.jsonl"
    writer = _writer(path, forger)
    for _ in range(3):
        _append(writer, epsilon=0.0)

    error = _tampered(path, key)

    assert (error.line, error.seq, error.reason) == (1, 0, "signature does not verify")


def test_changed_extra_breaks_the_signature(tmp_path: Path) -> None:
    key = generate_signing_key()
    path = tmp_path / "bank_a.jsonl"
    lines = _build(path, key)
    obj = json.loads(lines[1])
    obj["accountant_library"] = "made-up"
    lines[1] = canonical_json(obj)
    _write_lines(path, lines)

    error = _tampered(path, key)

    assert (error.line, error.reason) == (2, "signature does not verify")


def test_truncated_mid_line_is_named(tmp_path: Path) -> None:
    key = generate_signing_key()
    path = tmp_path / "bank_a.jsonl"
    lines = _build(path, key)
    raw = path.read_bytes()
    cut = sum(len(line) + 1 for line in lines[:4]) + len(lines[4]) // 2
    path.write_bytes(raw[:cut])

    error = _tampered(path, key)

    assert (error.line, error.seq) == (5, None)
    assert error.reason == "incomplete last entry (torn write)"


def test_missing_final_newline_is_a_torn_write(tmp_path: Path) -> None:
    key = generate_signing_key()
    path = tmp_path / "bank_a.jsonl"
    _build(path, key)
    path.write_bytes(path.read_bytes()[:-1])

    error = _tampered(path, key)

    assert (error.line, error.reason) == (N_ENTRIES, "incomplete last entry (torn write)")


def test_non_canonical_and_duplicate_key_lines_are_rejected(tmp_path: Path) -> None:
    key = generate_signing_key()
    path = tmp_path / "bank_a.jsonl"
    lines = _build(path, key)
    obj = json.loads(lines[5])
    _write_lines(path, [*lines[:5], json.dumps(obj, sort_keys=True).encode()])
    assert "canonical" in _tampered(path, key).reason
    duplicate = b'{"epsilon":99.0,' + lines[5][1:]  # a JSON parser keeps the last value
    _write_lines(path, [*lines[:5], duplicate])
    assert (_tampered(path, key).line, _tampered(path, key).seq) == (6, None)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"epsilon": 0.1}, "`epsilon` must not decrease"),
        ({"round": 1}, "`round` must not decrease within run 'run-1'"),
        ({"version": 2}, "`version` must be 1; got 2"),
        ({"institution": "bank_b"}, "`institution` must be 'bank_a'"),
        ({"dataset_fingerprint": "00" * 32}, "`dataset_fingerprint` must be"),
        ({"accountant": "gdp"}, "`accountant` must be one of"),
        ({"delta": 0}, "`delta` must be of type float"),
        ({"time": "2025-01-01T00:00:00"}, "`time` must be ISO-8601 in UTC"),
        ({"mechanism": {**MECHANISM.to_record(), "type": "laplace"}}, "mechanism.type"),
    ],
)
def test_correctly_signed_but_invalid_entry_is_named(
    tmp_path: Path, changes: dict[str, object], reason: str
) -> None:
    key = generate_signing_key()
    path = tmp_path / "bank_a.jsonl"
    lines = _build(path, key)
    lines[3] = _resign(lines[3], key, **changes)
    _write_lines(path, lines)

    error = _tampered(path, key)

    assert (error.line, error.seq) == (4, 3)
    assert reason in error.reason


def test_rounds_restart_in_a_new_run(tmp_path: Path) -> None:
    key = generate_signing_key()
    path = tmp_path / "bank_a.jsonl"
    writer = _writer(path, key)
    _append(writer, round=5)
    _append(writer, run_id="run-2", round=1)

    assert [e.round for e in read_ledger(path, key.public_key())] == [5, 1]
    with pytest.raises(ValueError, match="`round` must not decrease within run 'run-1'"):
        _append(writer, run_id="run-1", round=4)


def test_expected_identity_is_enforced(tmp_path: Path) -> None:
    key = generate_signing_key()
    path = tmp_path / "bank_a.jsonl"
    _build(path, key, n=2)

    with pytest.raises(LedgerTampered, match=r"entry 0 \(line 1\): `institution` must be 'bank_b'"):
        read_ledger(path, key.public_key(), institution="bank_b")
    with pytest.raises(LedgerTampered, match="`dataset_fingerprint` must be"):
        LedgerWriter(path, signing_key=key, institution=INSTITUTION, dataset_fingerprint="0" * 64)


def test_writer_refuses_a_tampered_ledger(tmp_path: Path) -> None:
    key = generate_signing_key()
    path = tmp_path / "bank_a.jsonl"
    lines = _build(path, key)
    _write_lines(path, lines[:2] + lines[3:])
    before = path.read_bytes()

    with pytest.raises(LedgerTampered, match=r"entry 2 \(line 3\)"):
        _writer(path, key)
    assert path.read_bytes() == before


def test_writer_detects_concurrent_modification(tmp_path: Path) -> None:
    key = generate_signing_key()
    path = tmp_path / "bank_a.jsonl"
    _build(path, key, n=2)
    first, second = _writer(path, key), _writer(path, key)
    _append(first)

    with pytest.raises(LedgerConflict, match="changed on disk"):
        _append(second)
    assert len(read_ledger(path, key.public_key())) == 3

    path.write_bytes(path.read_bytes().replace(b'"round":1', b'"round":7', 1))
    with pytest.raises(LedgerTampered, match=r"entry 0 \(line 1\)"):
        _append(first)


def test_append_validates_before_writing(tmp_path: Path) -> None:
    key = generate_signing_key()
    path = tmp_path / "bank_a.jsonl"
    writer = _writer(path, key)
    _append(writer, epsilon=2.0)
    before = path.read_bytes()

    with pytest.raises(ValueError, match="`epsilon` must not decrease"):
        _append(writer, epsilon=1.0)
    with pytest.raises(ValueError, match="`extras` must not redefine"):
        _append(writer, extras={"epsilon": 0.0})
    with pytest.raises(ValueError, match="`accountant` must be one of"):
        _append(writer, accountant="moments")
    with pytest.raises(ValueError, match="`update_sha256` must be 64 lowercase hex"):
        _append(writer, update_sha256="ABC")
    with pytest.raises(ValueError, match="`now` must be timezone-aware"):
        _append(writer, now=datetime(2025, 1, 1))
    with pytest.raises(ValueError):
        _append(writer, epsilon=float("nan"))
    assert path.read_bytes() == before
    assert len(writer.entries) == 1


def test_ledger_tampered_pickles() -> None:
    error = LedgerTampered(Path("x/bank_a.jsonl"), line=4, seq=3, reason="bad")

    copy = pickle.loads(pickle.dumps(error))

    assert (str(copy), copy.line, copy.seq, copy.reason) == (str(error), 4, 3, "bad")


_CRASH_CHILD = """
import os, signal, sys
from pathlib import Path
from fedrisk.privacy.ledger import LedgerWriter
from fedrisk.privacy.mechanism import PoissonGaussian
from fedrisk.secure.signing import load_private_key

key_path, ledger, fingerprint, inject = sys.argv[1:5]
key = load_private_key(Path(key_path))
mechanism = PoissonGaussian(noise_multiplier=1.1, sample_rate=0.01, steps=32, max_grad_norm=1.0)
if inject != "none":  # die at the start of the n-th call of os.<name> inside an append
    name, nth = inject.split(":")
    real, calls = getattr(os, name), [0]
    def dying(*args, **kwargs):
        calls[0] += 1
        if calls[0] == int(nth):
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)
    setattr(os, name, dying)
sys.stdin.readline()
writer = LedgerWriter(
    Path(ledger), signing_key=key, institution="bank_a", dataset_fingerprint=fingerprint
)
print("ready", flush=True)
n = len(writer.entries)
epsilon = writer.entries[-1].epsilon if writer.entries else 0.0
while True:
    epsilon += 0.01
    writer.append(
        run_id="crash", round=n, mechanism=mechanism, delta=1e-5, accountant="rdp",
        epsilon=epsilon, budget_epsilon=1e9, budget_delta=1e-5, update_sha256="%064x" % n,
    )
    n += 1
"""


def _spawn(key_path: Path, path: Path, inject: str = "none") -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-c", _CRASH_CHILD, str(key_path), str(path), FINGERPRINT, inject]
    return subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def _start(child: subprocess.Popen[bytes]) -> None:
    assert child.stdin is not None and child.stdout is not None
    child.stdin.write(b"go\n")
    child.stdin.flush()
    if child.stdout.readline() != b"ready\n":
        _, stderr = child.communicate(timeout=10)
        pytest.fail(f"child did not start: {stderr.decode()}")


def test_process_killed_mid_append_leaves_a_verifying_ledger(tmp_path: Path) -> None:
    key = generate_signing_key()
    key_path = tmp_path / "bank_a.pem"
    save_private_key(key, key_path)
    path = tmp_path / "bank_a.jsonl"
    rng = random.Random(20250101)
    counts = [0]
    child = _spawn(key_path, path)

    # 10 kills at random points of the append loop; each child imports fedrisk's privacy
    # package (opacus, torch: seconds on two cores), which bounds how many CI affords.
    for _ in range(10):
        upcoming = _spawn(key_path, path)  # imports while the current child appends
        _start(child)
        time.sleep(rng.uniform(0.0, 0.04))
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=10)
        assert child.returncode == -signal.SIGKILL

        entries = read_ledger(path, key.public_key(), institution=INSTITUTION)

        assert len(entries) >= counts[-1]
        counts.append(len(entries))
        child = upcoming
    child.kill()
    child.communicate(timeout=10)

    assert counts[-1] > 0
    writer = _writer(path, key)  # the writer carries on after the crashes
    _append(writer, run_id="after", round=0, epsilon=1e6)
    assert len(read_ledger(path, key.public_key())) == counts[-1] + 1


@pytest.mark.parametrize(
    ("inject", "committed"),
    [("fsync:1", False), ("replace:1", False), ("fsync:2", True)],
    ids=["before-file-fsync", "before-rename", "before-directory-fsync"],
)
def test_crash_at_each_step_of_an_append(tmp_path: Path, inject: str, committed: bool) -> None:
    key = generate_signing_key()
    key_path = tmp_path / "bank_a.pem"
    save_private_key(key, key_path)
    path = tmp_path / "bank_a.jsonl"
    _build(path, key, n=2)
    before = path.read_bytes()
    child = _spawn(key_path, path, inject)
    assert child.stdin is not None
    child.stdin.write(b"go\n")
    child.stdin.flush()

    _, stderr = child.communicate(timeout=10)

    assert child.returncode == -signal.SIGKILL, stderr.decode()
    entries = read_ledger(path, key.public_key())
    assert len(entries) == (3 if committed else 2)
    assert path.read_bytes().startswith(before)
    _append(_writer(path, key), run_id="after", round=0, epsilon=1e6)  # cleans up, carries on
    assert len(read_ledger(path, key.public_key())) == len(entries) + 1
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
