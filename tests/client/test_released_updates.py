"""The node's kept copy of its latest release (answers a resumed round without retraining)."""

import json

import numpy as np
from flwr.app import Array, ArrayRecord

from fedrisk.client.released_updates import ReleasedUpdate, find, keep, released_dir


def _update(round_: int) -> ReleasedUpdate:
    arrays = ArrayRecord({"w": Array(np.full((2, 2), round_, dtype=np.float32))})
    return ReleasedUpdate(
        run_id="r1",
        round=round_,
        arrays=arrays,
        n_examples=10,
        loss=0.5,
        received_sha256="g",
        sent_sha256=f"s{round_}",
    )


def test_the_latest_release_is_found_by_run_and_round_and_only_it(tmp_path) -> None:
    folder = released_dir(tmp_path / "ledger-bank_a-0123.jsonl", "bank_a")
    keep(folder, _update(1))
    keep(folder, _update(2))

    found = find(folder, run_id="r1", server_round=2)
    assert found is not None
    np.testing.assert_array_equal(found.arrays["w"].numpy(), np.full((2, 2), 2, np.float32))
    assert (found.n_examples, found.loss, found.received_sha256) == (10, 0.5, "g")
    assert found.sent_sha256 == "s2"
    assert find(folder, run_id="r1", server_round=1) is None
    assert find(folder, run_id="other", server_round=2) is None
    assert folder.name == "released-bank_a" and folder.parent == tmp_path


def test_nothing_kept_is_nothing_found(tmp_path) -> None:
    assert find(tmp_path / "none", run_id="r1", server_round=1) is None


def test_a_copy_kept_before_the_sent_digest_was_recorded_is_not_found(tmp_path) -> None:
    folder = tmp_path / "released-bank_a"
    keep(folder, _update(1))
    meta = json.loads((folder / "update.json").read_text())
    del meta["sent_sha256"]
    (folder / "update.json").write_text(json.dumps(meta))

    assert find(folder, run_id="r1", server_round=1) is None
