"""A bank never contributes again to a round whose unmasking it answered before a crash."""

import json

import pytest
from flwr.app import Context, RecordDict

from fedrisk.client.revealed_rounds import FILE_NAME, note_revealed, revealed
from fedrisk.client.secure_handlers import check_not_revealed
from fedrisk.strategies import messages
from fedrisk.strategies.secagg.wire import ProtocolAbort, Stage


def _context(tmp_path, run_id: str) -> Context:
    run_config = {
        messages.STATE_DIR: str(tmp_path),
        messages.MANIFEST: str(tmp_path / "consortium.json"),
        messages.RUN_ID: run_id,
    }
    return Context(run_id=7, node_id=1, node_config={}, state=RecordDict(), run_config=run_config)


def test_noted_rounds_are_kept_per_run_and_survive_a_new_process(tmp_path) -> None:
    note_revealed(tmp_path, run_id="run-1", server_round=3)
    note_revealed(tmp_path, run_id="run-1", server_round=2)
    note_revealed(tmp_path, run_id="run-1", server_round=3)

    assert revealed(tmp_path, run_id="run-1") == [2, 3]
    assert revealed(tmp_path, run_id="run-2") == []
    assert json.loads((tmp_path / FILE_NAME).read_text()) == {"rounds": [2, 3], "run_id": "run-1"}
    note_revealed(tmp_path, run_id="run-2", server_round=1)  # a new run starts afresh
    assert revealed(tmp_path, run_id="run-2") == [1]
    assert revealed(tmp_path, run_id="run-1") == []


def test_nothing_noted_is_nothing_revealed(tmp_path) -> None:
    assert revealed(tmp_path / "absent", run_id="run-1") == []


@pytest.mark.parametrize("text", ["{oops", '{"run_id": "run-1"}', '{"run_id": 1, "rounds": [1]}'])
def test_an_unreadable_record_is_refused_naming_the_file(tmp_path, text: str) -> None:
    (tmp_path / FILE_NAME).write_text(text)

    with pytest.raises(ValueError, match=f"{FILE_NAME} must hold the revealed rounds"):
        revealed(tmp_path, run_id="run-1")


def test_a_bank_sits_out_a_resumed_round_it_had_helped_unmask(tmp_path) -> None:
    context = _context(tmp_path, "run-1")
    (tmp_path / "bank_a").mkdir()
    note_revealed(tmp_path / "bank_a", run_id="run-1", server_round=3)

    check_not_revealed(context, "bank_a", 2)  # other rounds, and other banks, go on
    check_not_revealed(context, "bank_b", 3)
    with pytest.raises(ProtocolAbort) as caught:
        check_not_revealed(context, "bank_a", 3)
    assert caught.value.stage is Stage.train
    assert "bank_a already answered the unmasking of round 3 of run run-1" in str(caught.value)
    check_not_revealed(_context(tmp_path, "run-2"), "bank_a", 3)  # another run's round 3
